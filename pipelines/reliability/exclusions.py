"""The operator's outage exclusions: `DATA_DIR/outage_exclusions.csv`.

Columns: station_id, connector_id (empty: every port of the station), start, end (ISO 8601 with an
offset, or UTC when none is given), reason. The reasons are the outages 23 CFR 680.116(b)(4) lets
an operator exclude from T_outage as outside its control. An exclusion only ever reduces an outage
the data shows (docs/reliability.md): a declared period without an observed outage excludes nothing.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FILENAME = "outage_exclusions.csv"
# 680.116(b)(4): electric utility service interruptions, failure to charge due to the vehicle,
# scheduled maintenance, vandalism, natural disasters, and hours outside posted operating hours.
REASONS = (
    "utility_outage",
    "vehicle_fault",
    "scheduled_maintenance",
    "vandalism",
    "natural_disaster",
    "outside_operating_hours",
)
COLUMNS = ("station_id", "connector_id", "start", "end", "reason")


class ExclusionError(ValueError):
    """The exclusions file cannot be used; the message names the line."""


@dataclass(frozen=True)
class Exclusion:
    station_id: str
    connector_id: int | None
    start: datetime
    end: datetime
    reason: str

    def covers(self, station_id: str, connector_id: int) -> bool:
        return self.station_id == station_id and self.connector_id in (None, connector_id)


def _time(text: str, line: int, column: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ExclusionError(f"{FILENAME} line {line}: {column} is not an ISO 8601 time: {text!r}") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def load_exclusions(data_dir: Path) -> list[Exclusion]:
    path = data_dir / FILENAME
    if not path.exists():
        return []
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ExclusionError(f"{FILENAME}: missing columns {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            reason = (row["reason"] or "").strip()
            if reason not in REASONS:
                raise ExclusionError(
                    f"{FILENAME} line {line}: reason {reason!r} is not one of {', '.join(REASONS)}"
                )
            conn = (row["connector_id"] or "").strip()
            if conn and not conn.isdigit():
                raise ExclusionError(f"{FILENAME} line {line}: connector_id is not a number: {conn!r}")
            start, end = _time(row["start"] or "", line, "start"), _time(row["end"] or "", line, "end")
            if end <= start:
                raise ExclusionError(f"{FILENAME} line {line}: end is not after start")
            out.append(
                Exclusion((row["station_id"] or "").strip(), int(conn) if conn else None, start, end, reason)
            )
    return out
