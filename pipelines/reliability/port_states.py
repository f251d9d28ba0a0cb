"""Per port (connector / 2.0.1 EVSE) and local day: the state intervals with the error the charger sent.

A private work table (`work/port_states/date=D/part-0.parquet`), written next to `work/availability`
from the same raw views. Unlike the station-hour minutes it keeps each port apart and keeps the
Faulted notification's errorCode, vendorId, vendorErrorCode and info, which the outages need.

A port's state holds from one StatusNotification to the next (the same rule as the availability
minutes); while its station is offline (`transforms.connectivity`: connection gaps longer than
`--outage-offline-after` heartbeat intervals, heartbeat silences, replayed queues) the state is
`offline` whatever the last status said; before the port's first status (within the 7-day
look-back) it is `unknown`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from ocpp_opendata.settings import Settings
from pipelines.raw_index import RawIndex
from pipelines.raw_reader import connector_sql
from pipelines.storage import work_path, write_parquet
from pipelines.transforms.connectivity import OfflinePeriod, offline_periods, register_connectivity_views
from pipelines.transforms.statuses import category

TS = pa.timestamp("us", tz="UTC")
PORT_STATES_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("connector_id", pa.int32(), nullable=False),
        pa.field("start", TS, nullable=False),
        pa.field("end", TS, nullable=False),
        pa.field("state", pa.string(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("error_code", pa.string()),
        pa.field("vendor_id", pa.string()),
        pa.field("vendor_error_code", pa.string()),
        pa.field("info", pa.string()),
    ]
)


def _status_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    # Consecutive notifications that change nothing (same status and error) are one state.
    return con.execute(
        f"""WITH s AS (
                SELECT charge_point_id AS cp, {connector_sql()} AS conn, event_time AS t, status,
                       nullif(error_code, 'NoError') AS error_code, vendor_id, vendor_error_code, info,
                       received_at
                FROM status_notifications WHERE status IS NOT NULL
            ),
            k AS (
                SELECT *, status || '|' || coalesce(error_code, '') || '|' || coalesce(vendor_error_code, '')
                    AS state_key
                FROM s WHERE conn IS NOT NULL AND conn > 0
            ),
            d AS (
                SELECT *, lag(state_key) OVER (PARTITION BY cp, conn ORDER BY t, received_at) AS prev_key
                FROM k
            )
            SELECT cp, conn, t, status, error_code, vendor_id, vendor_error_code, info FROM d
            WHERE prev_key IS DISTINCT FROM state_key
            ORDER BY cp, conn, t"""
    ).fetchall()


def offline_spans(
    periods: list[OfflinePeriod], start: datetime, end: datetime, min_gap: timedelta
) -> dict[str, list[tuple]]:
    """Per station: offline (from, to) within [start, end), from `transforms.connectivity`. A gap
    between two connections only counts when longer than `min_gap` (a reconnect is no outage);
    heartbeat silences and replayed queues are offline by their own definition."""
    out: dict[str, list[tuple]] = defaultdict(list)
    for p in periods:
        b = p.end or end
        if p.source == "connection" and b - p.start <= min_gap:
            continue
        lo, hi = max(p.start, start), min(b, end)
        if lo < hi:
            out[p.station_id].append((lo, hi))
    return out


def _cut(intervals: list[tuple], holes: list[tuple]) -> list[tuple]:
    """Pieces of (a, b, *rest) outside every (x, y) hole."""
    out = []
    for a, b, *rest in intervals:
        pieces = [(a, b)]
        for x, y in holes:
            pieces = [p for lo, hi in pieces for p in ((lo, min(hi, x)), (max(lo, y), hi)) if p[0] < p[1]]
        out += [(lo, hi, *rest) for lo, hi in pieces]
    return out


def build_port_states(
    con: duckdb.DuckDBPyConnection,
    day: date,
    day_start: datetime,
    day_end: datetime,
    offline: dict[str, list[tuple]],
) -> pa.Table:
    """State intervals of every port seen in the raw views, clipped to [day_start, day_end)."""
    by_port: dict[tuple[str, int], list[tuple]] = defaultdict(list)
    for cp, conn, t, status, code, vendor, vcode, info in _status_rows(con):
        by_port[(cp, int(conn))].append((t, status, code, vendor, vcode, info))
    cols: dict[str, list] = defaultdict(list)
    for (cp, conn), events in sorted(by_port.items()):
        spans: list[tuple] = []
        first = events[0][0]
        if first > day_start:
            spans.append((day_start, min(first, day_end), "unknown", None, None, None, None, None))
        for i, (t, status, code, vendor, vcode, info) in enumerate(events):
            nxt = events[i + 1][0] if i + 1 < len(events) else day_end
            a, b = max(t, day_start), min(nxt, day_end)
            if a < b:
                faulted = category(status) == "faulted"
                spans.append((a, b, category(status), status, *(
                    (code, vendor, vcode, info) if faulted else (None, None, None, None)
                )))  # fmt: skip
        holes = offline.get(cp, [])
        spans = _cut(spans, holes) + [(a, b, "offline", None, None, None, None, None) for a, b in holes]
        for a, b, state, status, code, vendor, vcode, info in sorted(spans, key=lambda s: s[0]):
            for name, value in zip(
                ("date", "station_id", "connector_id", "start", "end", "state", "status", "error_code",
                 "vendor_id", "vendor_error_code", "info"),
                (day, cp, conn, a, b, state, status, code, vendor, vcode, info),
                strict=True,
            ):  # fmt: skip
                cols[name].append(value)
    return pa.table(
        {f.name: pa.array(cols[f.name], f.type) for f in PORT_STATES_SCHEMA}, schema=PORT_STATES_SCHEMA
    )


def write_port_states(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    index: RawIndex,
    day: date,
    day_start: datetime,
    lookback_start: datetime,
    day_end: datetime,
    spans: dict[str, tuple] | None,
) -> Path:
    """Build and write one day's port states from the views `availability_for_day` registered, plus
    the connection log and frames `transforms.connectivity` reads."""
    # Frames from a heartbeat before the look-back on: enough to see the silences of the window.
    margin = timedelta(seconds=settings.heartbeat_interval * max(settings.outage_offline_after, 1) * 2)
    register_connectivity_views(con, index, settings.clock_skew_minutes, lookback_start - margin, day_end)
    periods = offline_periods(
        con,
        heartbeat_interval_s=settings.heartbeat_interval,
        offline_after=settings.outage_offline_after,
        spans=spans,
        until=min(day_end, datetime.now(UTC)),
    )
    min_gap = timedelta(seconds=settings.heartbeat_interval * settings.outage_offline_after)
    offline = offline_spans(periods, day_start, day_end, min_gap)
    table = build_port_states(con, day, day_start, day_end, offline)
    path = work_path(settings.data_dir, "port_states", day)
    write_parquet(table, path, ("station_id", "connector_id", "start"))
    return path
