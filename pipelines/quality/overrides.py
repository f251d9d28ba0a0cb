"""Operator overrides: `DATA_DIR/quality_overrides.csv`, a reviewed file, one row per station and rule.

Columns (header required): `station_id`, `rule` (an id of `rules.RULES`), `reason` (why the records
are sound, e.g. "350 kW HPC, registry rating outdated"), `reviewed_by`, `reviewed_on` (YYYY-MM-DD).
An overridden rule publishes the station's records as they are; each one is still listed in
`quality_issues` with action `overridden`. A row with an unknown rule, a missing field or a bad date is
an error: a typo must not silently drop an override, nor silently grant one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pipelines.quality.rules import RULES

FILENAME = "quality_overrides.csv"
COLUMNS = ("station_id", "rule", "reason", "reviewed_by", "reviewed_on")


class OverrideFileError(ValueError):
    """The overrides file is malformed; the message names the line."""


@dataclass(frozen=True)
class Override:
    station_id: str
    rule: str
    reason: str
    reviewed_by: str
    reviewed_on: date


def overrides_path(data_dir: Path) -> Path:
    return data_dir / FILENAME


def load_overrides(data_dir: Path) -> dict[tuple[str, str], Override]:
    """(station_id, rule) → override; empty when the file does not exist."""
    path = overrides_path(data_dir)
    if not path.exists():
        return {}
    out: dict[tuple[str, str], Override] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise OverrideFileError(f"{FILENAME}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            values = {c: (row.get(c) or "").strip() for c in COLUMNS}
            empty = [c for c, v in values.items() if not v]
            if empty:
                raise OverrideFileError(f"{FILENAME} line {line}: empty {', '.join(empty)}")
            if values["rule"] not in RULES:
                raise OverrideFileError(
                    f"{FILENAME} line {line}: unknown rule {values['rule']!r}; rules: {', '.join(RULES)}"
                )
            try:
                reviewed = date.fromisoformat(values["reviewed_on"])
            except ValueError as exc:
                raise OverrideFileError(f"{FILENAME} line {line}: reviewed_on must be YYYY-MM-DD") from exc
            o = Override(
                values["station_id"], values["rule"], values["reason"], values["reviewed_by"], reviewed
            )
            out[(o.station_id, o.rule)] = o
    return out
