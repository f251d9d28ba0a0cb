"""Generated sections of the docs, so that tables of columns and settings cannot drift from code.

A generated section sits between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`.
`ocpp-opendata docs` rewrites them; the test suite fails while any is stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def datasets_overview_markdown() -> str:
    """The README's one-line-per-dataset overview; docs/datasets.md has every column in full."""
    from pipelines.published_schema import DATASETS

    lines = ["| dataset | what | columns |", "|---|---|---|"]
    for ds in DATASETS.values():
        columns = ", ".join(f"`{c.name}`" for c in ds.columns)
        lines.append(f"| `{ds.name}` | {ds.title} | {columns} |")
    return "\n".join(lines) + "\n"


def _sections() -> dict[tuple[str, str], Callable[[], str]]:
    from ingest.schema import contract_markdown
    from ocpp_opendata.settings import settings_table_markdown
    from pipelines.published_schema import schema_markdown
    from pipelines.quality.rules import markdown_table

    return {
        ("docs/data-contract.md", "raw-tables"): contract_markdown,
        ("README.md", "settings"): settings_table_markdown,
        ("README.md", "datasets"): datasets_overview_markdown,
        ("docs/datasets.md", "datasets"): lambda: schema_markdown().strip() + "\n",
        ("docs/pipeline.md", "quality-rules"): lambda: markdown_table() + "\n",
    }


def _replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(<!-- END GENERATED: {re.escape(name)} -->)",
        re.S,
    )
    if not pattern.search(text):
        raise ValueError(f"no generated section named {name!r}")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def stale_sections(repo: Path = REPO) -> list[str]:
    stale = []
    for (rel, name), make in _sections().items():
        text = (repo / rel).read_text()
        if _replace(text, name, make()) != text:
            stale.append(f"{rel}#{name}")
    return stale


def regenerate(repo: Path = REPO) -> list[str]:
    changed = []
    for (rel, name), make in _sections().items():
        path = repo / rel
        text = path.read_text()
        new = _replace(text, name, make())
        if new != text:
            path.write_text(new)
            changed.append(f"{rel}#{name}")
    return changed
