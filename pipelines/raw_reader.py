"""Reading the raw zone: one DuckDB view per raw table over the files that overlap a time window.

Every view adds `event_time` (the charger's timestamp, or the receipt time when the charger gave
none or its clock was more than `clock_skew_minutes` ahead of the receipt), `clock_corrected` and
`clock_offset_s`. Old timestamps are trusted: an offline charger's queue is legitimately old.

When the DuckDB connection holds a `clock_offsets` table (transforms/clock.register_offsets), the
timestamps of a connection with an estimated clock offset are shifted by it first (`clock_offset_s`,
`clock_corrected` true); the skew rule then applies to the shifted time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.schema import TABLES
from pipelines.transforms.clock import OFFSETS_TABLE, has_offsets

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


def _charger_time(shifted: bool) -> str:
    if not shifted:
        return '"timestamp"'
    return '("timestamp" - to_microseconds(coalesce(clock_offset_us, 0)))'


def event_time_sql(table: str, skew_minutes: float, shifted: bool = False) -> str:
    """`shifted`: the rows are joined with `clock_offsets` (column clock_offset_us)."""
    if not has_charger_clock(table):
        return "received_at"
    skew_us = int(skew_minutes * 60_000_000)
    ts = _charger_time(shifted)
    return (
        f"CASE WHEN {ts} IS NULL OR {ts} > received_at + to_microseconds({skew_us}) "
        f"THEN received_at ELSE {ts} END"
    )


def clock_corrected_sql(table: str, skew_minutes: float, shifted: bool = False) -> str:
    if not has_charger_clock(table):
        return "false"
    skew_us = int(skew_minutes * 60_000_000)
    ts = _charger_time(shifted)
    clamped = f"coalesce({ts} > received_at + to_microseconds({skew_us}), false)"
    return f"(coalesce(clock_offset_us, 0) <> 0 OR {clamped})" if shifted else clamped


def clock_offset_sql(table: str, shifted: bool) -> str:
    if not shifted or not has_charger_clock(table):
        return "0.0::DOUBLE"
    return "coalesce(clock_offset_us, 0) / 1e6"


def shifted_source(source: str) -> str:
    """`source` (a FROM item) joined with the connection's clock offset (clock.register_offsets)."""
    return (
        f"(SELECT * FROM {source} LEFT JOIN {OFFSETS_TABLE} "
        f"ON connection_id = {OFFSETS_TABLE}.clock_connection_id)"
    )


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
    shifted = has_charger_clock(table) and has_offsets(con)
    ev = event_time_sql(table, skew_minutes, shifted)
    cc = clock_corrected_sql(table, skew_minutes, shifted)
    off = clock_offset_sql(table, shifted)
    if files:
        source = (
            f"read_parquet([{', '.join(_quote(f) for f in files)}], union_by_name = true, "
            f"hive_partitioning = false)"
        )
    else:
        empty = pa.Table.from_batches([], schema=raw.schema)
        con.register(f"_empty_{view}", empty)
        source = f"_empty_{view}"
    if shifted:
        source = shifted_source(source)
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
            SELECT {select_cols}, {ev} AS event_time, {cc} AS clock_corrected,
                   {off} AS clock_offset_s
            FROM {source} {where_sql} {dedupe_sql}"""
    )
    return view


def connector_sql() -> str:
    """One connector number per physical outlet: 1.6 connectorId, 2.0.1 evseId (MeterValues carry only
    the EVSE in 2.0.1)."""
    return "CASE WHEN ocpp_version = '1.6' THEN connector_id ELSE coalesce(evse_id, connector_id) END"
