"""`ocpp-opendata`: one command line for every stage.

Every option is generated from `Settings`, so each is also an environment variable and appears
in the README's configuration table. Options default to None here ("not given") so that the
precedence CLI > environment > default is decided in one place, `load_settings`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ocpp_opendata.logs import configure_logging
from ocpp_opendata.settings import (
    Settings,
    SettingsError,
    _base_type,
    env_name,
    flag_name,
    load_settings,
)

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
COMMON = ("data_dir", "log_format", "log_level")


def settings_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a click option for each named Settings field (plus the common ones)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed((*COMMON, *names)):
            f = _FIELDS[name]
            kind = _base_type(name)
            help_text = f"{f.metadata['help']} [env {env_name(name)}; default {f.default}]"
            flag = flag_name(f)
            if kind is bool:
                func = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)(func)
                continue
            if f.metadata.get("choices"):
                click_type: Any = click.Choice(f.metadata["choices"])
            elif kind is Path:
                click_type = click.Path(path_type=Path)
            else:
                click_type = kind
            func = click.option(flag, name, type=click_type, default=None, help=help_text)(func)
        return func

    return decorate


def settings_from(options: dict[str, Any]) -> Settings:
    try:
        settings = load_settings({k: v for k, v in options.items() if k in _FIELDS})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    configure_logging(settings.log_format, settings.log_level)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """Turn live OCPP traffic into privacy-safe open data."""


@main.command()
@settings_options(
    "listen_host",
    "listen_port",
    "subprotocols",
    "no_subprotocol",
    "heartbeat_interval",
    "authorize",
    "allowlist",
    "charge_points",
    "credentials",
    "tls_cert",
    "tls_key",
    "max_frame_bytes",
    "rate_limit",
    "rate_burst",
    "roll_seconds",
    "roll_bytes",
    "wal_dir",
    "wal_max_bytes",
    "strict",
)
def listen(**options: Any) -> None:
    """Run the OCPP listener (OCPP-J 1.6 and 2.0.1 over WebSocket) that writes the raw zone."""
    from ingest.server import run_listener

    settings = settings_from(options)
    sys.exit(run_listener(settings))


@main.command()
@settings_options("credentials")
@click.argument("charge_point_id")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt."
)
def credentials(charge_point_id: str, password_stdin: bool, **options: Any) -> None:
    """Add or replace a charge point's Basic-auth password (stored as a salted hash)."""
    from ingest.auth import set_password

    settings = settings_from(options)
    if settings.credentials is None:
        raise click.UsageError(f"--credentials (or {env_name('credentials')}) names the file to update")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(settings.credentials, charge_point_id, password)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"stored a salted hash for {charge_point_id} in {settings.credentials}")


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


if __name__ == "__main__":
    main()
