"""One local day's private work tables, read from the raw zone through the file index.

`materialize_day` writes work/{sessions,availability,station_minutes}/date=D/part-0.parquet. It
reads raw rows whose (corrected) event time lies in a window around the day: sessions look up to
`max_session_days` ahead for their end, statuses a week back for the state at midnight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from ocpp_opendata.logs import fields
from ocpp_opendata.settings import Settings
from pipelines.partitions import day_bounds
from pipelines.privacy import Pseudonymizer, load_master_key
from pipelines.raw_index import RawIndex
from pipelines.raw_reader import register_view
from pipelines.reliability.port_states import write_port_states
from pipelines.reliability.refusals import write_refusals
from pipelines.storage import work_path, write_parquet
from pipelines.transforms.availability import build_availability
from pipelines.transforms.connectivity import OfflinePeriod, offline_periods, register_connectivity_views
from pipelines.transforms.energy import SPLIT_LOOKAHEAD, build_station_minutes
from pipelines.transforms.sessions import build_sessions

log = logging.getLogger(__name__)

STATUS_LOOKBACK = timedelta(days=7)
SESSION_LOOKBACK = timedelta(days=1)
METER_LOOKBACK = timedelta(hours=2)
# Frames (heartbeats) are read by receipt time this far around the status window.
FRAME_MARGIN = timedelta(days=1)
WORK_TABLES = ("sessions", "availability", "station_minutes")


def connect(threads: int = 2) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET TimeZone = 'UTC'; SET threads = {threads}; SET preserve_insertion_order = false")
    return con


@dataclass(frozen=True)
class DayResult:
    day: date
    sessions: int
    open_sessions: int
    station_hours: int
    station_minutes: int
    paths: dict[str, Path]


def _view(
    con: duckdb.DuckDBPyConnection,
    index: RawIndex,
    table: str,
    start: datetime | None,
    end: datetime | None,
    settings: Settings,
    columns: tuple[str, ...] | None = None,
) -> None:
    # Timestamps are shifted by each connection's estimated charger clock offset (transforms/clock.py).
    index.register_clock_offsets(con)
    if start is None or end is None:
        files = index.all_files(table)
    else:
        files = index.files_overlapping(table, start, end)
    register_view(
        con, table, files, start, end, skew_minutes=settings.clock_skew_minutes, columns=columns,
        materialize=table != "meter_values",
    )  # fmt: skip


def sessions_for_day(settings: Settings, index: RawIndex, day: date, pseudo: Pseudonymizer) -> Path:
    start, end = day_bounds(day, settings.timezone)
    horizon = end + timedelta(days=settings.max_session_days)
    con = connect()
    try:
        _view(con, index, "transaction_events", start - SESSION_LOOKBACK, horizon, settings)
        _view(con, index, "status_notifications", start - SESSION_LOOKBACK, horizon, settings)

        def register_meter(a: datetime, b: datetime) -> None:
            cols = (
                "received_at", "charge_point_id", "ocpp_version", "timestamp", "connector_id", "evse_id",
                "transaction_id", "measurand", "phase", "location", "value",
            )  # fmt: skip
            _view(con, index, "meter_values", a, b, settings, cols)

        table = build_sessions(con, day, start, end, horizon, pseudo, register_meter)
        # Refused authorizations never become sessions; the reliability datasets count them as failed
        # starts (pipelines/reliability/refusals.py). Only the answers' small frames are read.
        cols = ("received_at", "charge_point_id", "connection_id", "direction", "message_type", "message_id",
                "action", "text")  # fmt: skip
        register_view(con, "frames", index.files_overlapping("frames", start, end), start, end,
                      skew_minutes=settings.clock_skew_minutes, columns=cols)  # fmt: skip
        write_refusals(con, settings.data_dir, day, start, end)
    finally:
        con.close()
    path = work_path(settings.data_dir, "sessions", day)
    write_parquet(table, path, ("station_id", "plug_in", "session_id"))
    return path


def station_offline_periods(
    settings: Settings,
    index: RawIndex,
    con: duckdb.DuckDBPyConnection,
    receipt_start: datetime,
    receipt_end: datetime,
    spans: dict[str, tuple],
) -> list[OfflinePeriod]:
    """Offline periods from the connection log and the frames received in the window (views
    `connections` and the timestamped tables must exist in `con`)."""
    register_connectivity_views(con, index, settings.clock_skew_minutes, receipt_start, receipt_end)
    return offline_periods(
        con, heartbeat_interval_s=float(settings.heartbeat_interval),
        offline_after=float(settings.outage_offline_after), spans=spans,
    )  # fmt: skip


def availability_for_day(settings: Settings, index: RawIndex, day: date) -> Path:
    start, end = day_bounds(day, settings.timezone)
    con = connect()
    try:
        _view(con, index, "status_notifications", start - STATUS_LOOKBACK, end, settings)
        _view(con, index, "transaction_events", start - STATUS_LOOKBACK, end, settings)
        # Connection events are in receipt time: all of them are read, whatever the charger's clock
        # said (a replayed or simulated past has them much later than its events).
        _view(con, index, "connections", None, None, settings)
        spans = index.connection_spans()
        offline = station_offline_periods(settings, index, con, start - STATUS_LOOKBACK - FRAME_MARGIN,
                                          end + FRAME_MARGIN, spans)  # fmt: skip
        table = build_availability(con, day, start, end, start - STATUS_LOOKBACK, spans, offline)
        # Per-port states for the reliability datasets, from the same views (pipelines/reliability).
        write_port_states(con, settings, index, day, start, start - STATUS_LOOKBACK, end, spans)
    finally:
        con.close()
    path = work_path(settings.data_dir, "availability", day)
    write_parquet(table, path, ("station_id", "hour_start"))
    return path


def station_minutes_for_day(settings: Settings, index: RawIndex, day: date) -> Path:
    start, end = day_bounds(day, settings.timezone)
    con = connect()
    try:
        cols = (
            "received_at", "charge_point_id", "ocpp_version", "timestamp", "connector_id", "evse_id",
            "transaction_id", "measurand", "phase", "location", "value",
        )  # fmt: skip
        # Samples just after the day still carry energy from before midnight (energy.SPLIT_LOOKAHEAD).
        _view(con, index, "meter_values", start - METER_LOOKBACK, end + SPLIT_LOOKAHEAD, settings, cols)
        # Samples name their connector only in some messages: the transaction's events (back to the
        # start of the longest session still running on the day) supply it for the others.
        tx_start = start - timedelta(days=settings.max_session_days) - SESSION_LOOKBACK
        _view(con, index, "transaction_events", tx_start, end + SPLIT_LOOKAHEAD, settings)
        table = build_station_minutes(con, day, start, end)
    finally:
        con.close()
    path = work_path(settings.data_dir, "station_minutes", day)
    write_parquet(table, path, ("station_id", "minute"))
    return path


def materialize_day(settings: Settings, day: date, index: RawIndex | None = None) -> dict[str, Path]:
    """All work tables of one day (the CLI and tests use this; Dagster runs the three steps as assets)."""
    pseudo = Pseudonymizer(load_master_key(settings), settings.pseudonym_period, settings.pseudonym_scope)
    index = index or RawIndex.of(settings)
    index.refresh()
    paths = {
        "sessions": sessions_for_day(settings, index, day, pseudo),
        "availability": availability_for_day(settings, index, day),
        "station_minutes": station_minutes_for_day(settings, index, day),
    }
    log.info("materialized day", extra=fields(day=day.isoformat()))
    return paths
