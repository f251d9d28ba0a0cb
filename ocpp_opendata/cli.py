"""`ocpp-opendata`: one command line for every stage.

Every option is generated from `Settings` (see `options.py`), so each is also an environment
variable and appears in the README's configuration table.
"""

from __future__ import annotations

import sys

import click

from ocpp_opendata.commands.demo import demo
from ocpp_opendata.commands.listen import credentials, listen
from ocpp_opendata.commands.operate import chargers, operator_token
from ocpp_opendata.commands.pipeline import pipeline
from ocpp_opendata.commands.serve import serve
from ocpp_opendata.commands.simulate import simulate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """Turn live OCPP traffic into privacy-safe open data."""


@main.command()
@click.option("--check", is_flag=True, help="Only report stale sections; exit 1 if any.")
def docs(check: bool) -> None:
    """Regenerate the generated sections of README.md and docs/ from the code."""
    from ocpp_opendata.docgen import regenerate, stale_sections

    if check:
        stale = stale_sections()
        for name in stale:
            click.echo(f"stale: {name}")
        sys.exit(1 if stale else 0)
    for name in regenerate():
        click.echo(f"updated: {name}")


# Subcommands, one module each under ocpp_opendata/commands/.
main.add_command(listen)
main.add_command(credentials)
main.add_command(operator_token)
main.add_command(chargers)
main.add_command(demo)
main.add_command(pipeline)
main.add_command(serve)
main.add_command(simulate)

if __name__ == "__main__":
    main()
