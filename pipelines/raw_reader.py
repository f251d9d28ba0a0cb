"""Reading the raw zone: one DuckDB view per raw table over the files that overlap a time window.

Every view adds `event_time` (the charger's timestamp, or the receipt time when the charger gave
none or its clock was more than `clock_skew_minutes` ahead of the receipt) and `clock_corrected`.
Old timestamps are trusted: an offline charger's queue is legitimately old.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.schema import TABLES

# Columns that identify a retried frame's rows: a charger resends the same CALL with a new message
# id (often on a new connection) after a lost answer, so identity is the content, never the id.
DEDUPE_KEYS: dict[str, tuple[str, ...]] = {
    "transaction_events": (
        "charge_point_id",
        "source_action",
        "event_type",
        "timestamp",
        "transaction_id",
        "connector_id",
        "evse_id",
        "id_tag",
        "meter_start_wh",
        "meter_stop_wh",
        "seq_no",
        "trigger_reason",
        "charging_state",
        "stopped_reason",
    ),
    "status_notifications": (
        "charge_point_id",
        "timestamp",
        "connector_id",
        "evse_id",
        "status",
        "error_code",
    ),
    "boot_notifications": ("charge_point_id", "connection_id", "message_id"),
}


def has_charger_clock(table: str) -> bool:
    return "timestamp" in TABLES[table].column_names


def event_time_sql(table: str, skew_minutes: float) -> str:
    if not has_charger_clock(table):
        return "received_at"
    skew_us = int(skew_minutes * 60_000_000)
    return (
        f'CASE WHEN "timestamp" IS NULL OR "timestamp" > received_at + to_microseconds({skew_us}) '
        f'THEN received_at ELSE "timestamp" END'
    )


def clock_corrected_sql(table: str, skew_minutes: float) -> str:
    if not has_charger_clock(table):
        return "false"
    skew_us = int(skew_minutes * 60_000_000)
    return f'coalesce("timestamp" > received_at + to_microseconds({skew_us}), false)'


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def register_view(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: list[Path],
    start: datetime | None,
    end: datetime | None,
    *,
    skew_minutes: float,
    columns: tuple[str, ...] | None = None,
    dedupe: bool = True,
    name: str | None = None,
    materialize: bool = False,
) -> str:
    """Create view `name` (default: the table name) of `table`'s rows with event_time in [start, end)."""
    view = name or table
    raw = TABLES[table]
    cols = columns or tuple(raw.column_names)
    select_cols = ", ".join(f'"{c}"' for c in cols)
    ev = event_time_sql(table, skew_minutes)
    cc = clock_corrected_sql(table, skew_minutes)
    if files:
        source = (
            f"read_parquet([{', '.join(_quote(f) for f in files)}], union_by_name = true, "
            f"hive_partitioning = false)"
        )
    else:
        empty = pa.Table.from_batches([], schema=raw.schema)
        con.register(f"_empty_{view}", empty)
        source = f"_empty_{view}"
    where = []
    if start is not None:
        where.append(f"{ev} >= TIMESTAMPTZ '{start.isoformat()}'")
    if end is not None:
        where.append(f"{ev} < TIMESTAMPTZ '{end.isoformat()}'")
    where_sql = ("WHERE " + " AND ".join(where)) if where else ""
    dedupe_sql = ""
    keys = DEDUPE_KEYS.get(table)
    if dedupe and keys:
        part = ", ".join(f'"{k}"' for k in keys)
        dedupe_sql = (
            f"QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY received_at, connection_id) = 1"
        )
    # Small tables are read once into memory (the transforms query them several times); the large
    # meter_values stays a view that DuckDB streams.
    kind = "TABLE" if materialize else "VIEW"
    con.execute(
        f"""CREATE OR REPLACE TEMP {kind} "{view}" AS
            SELECT {select_cols}, {ev} AS event_time, {cc} AS clock_corrected
            FROM {source} {where_sql} {dedupe_sql}"""
    )
    return view


def connector_sql() -> str:
    """One connector number per physical outlet: 1.6 connectorId, 2.0.1 evseId (MeterValues carry only
    the EVSE in 2.0.1)."""
    return "CASE WHEN ocpp_version = '1.6' THEN connector_id ELSE coalesce(evse_id, connector_id) END"
