"""Connector-minutes per status category per station and local hour (exact, private work table).

A connector's state holds from one status change to the next; while its station has no connection
to the backend the minutes count as offline whatever the last status said. Before the first status
of a connector its minutes are unknown.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from pipelines.transforms.connectivity import OfflinePeriod
from pipelines.transforms.statuses import OCCUPIED, category, load_status_events

CATEGORIES = ("available", "occupied", "charging", "reserved", "unavailable", "faulted", "offline", "unknown")

AVAILABILITY_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("hour_start", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("connectors", pa.int32(), nullable=False),
        *[pa.field(f"{c}_minutes", pa.float64(), nullable=False) for c in CATEGORIES],
        pa.field("all_busy_minutes", pa.float64(), nullable=False),
    ]
)


# A connection whose messages lag their receipt by more than this is a replay or a time-compressed
# simulation: its connect/disconnect receipt times say nothing about the charger's own time line.
REALTIME_LAG_S = 600.0
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def online_intervals(
    con: duckdb.DuckDBPyConnection, window_start: datetime, spans: dict[str, tuple] | None = None
) -> dict[str, list[tuple[datetime, bool]]]:
    """Per station: (time, online) changes, starting with the state at window_start.

    A connection counts from its `connected` to its `disconnected` receipt time when its messages
    arrive in real time (some message lags its receipt by less than REALTIME_LAG_S). Otherwise (a
    time-compressed simulation, a bulk backfill) receipt times say nothing about the charger's own
    time line: the connection counts from its first message's event time until the station's next
    connection begins, so offline time cannot be told apart there and counts as online. A station
    with no connection event counts as online: long-lived connections are normal."""
    spans = spans or {}
    rows = con.execute(
        """SELECT charge_point_id, connection_id, event, received_at FROM connections
           WHERE event IN ('connected', 'disconnected') AND charge_point_id IS NOT NULL
             AND connection_id IS NOT NULL
           ORDER BY charge_point_id, received_at, event DESC"""
    ).fetchall()
    bounds: dict[tuple[str, str], list[datetime | None]] = {}
    for cp, conn, event, t in rows:
        b = bounds.setdefault((cp, conn), [None, None])
        if event == "connected":
            b[0] = t if b[0] is None else min(b[0], t)
        else:
            b[1] = t if b[1] is None else max(b[1], t)
    intervals: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    replayed: dict[str, list[datetime]] = defaultdict(list)
    for (cp, conn), (start, end) in bounds.items():
        span = spans.get(conn)
        if span is not None and span[3] is not None and abs(span[3]) > REALTIME_LAG_S:
            replayed[cp].append(span[1])
        else:
            intervals[cp].append((start or FAR_PAST, end or FAR_FUTURE))
    for cp, starts in replayed.items():
        intervals[cp].append((min(starts), FAR_FUTURE))
    out: dict[str, list[tuple[datetime, bool]]] = {}
    for cp, ivs in intervals.items():
        changes: list[tuple[datetime, bool]] = []
        merged: list[list[datetime]] = []
        for a, b in sorted(ivs):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        online_at_start = any(a <= window_start < b for a, b in merged)
        changes.append((window_start, online_at_start))
        for a, b in merged:
            if a > window_start:
                changes.append((a, True))
            if b > window_start:
                changes.append((b, False))
        out[cp] = sorted(changes)
    return out


def apply_offline(
    changes: list[tuple[datetime, bool]], periods: list[OfflinePeriod]
) -> list[tuple[datetime, bool]]:
    """The (time, online) changes with the station's offline periods (connectivity.py) cut out."""
    if not periods:
        return changes
    base = _Timeline(changes, True)
    window_start = changes[0][0]
    cuts = {t for t, _ in changes}
    for p in periods:
        cuts.add(max(p.start, window_start))
        if p.end is not None and p.end > window_start:
            cuts.add(p.end)
    out: list[tuple[datetime, bool]] = []
    for t in sorted(cuts):
        online = bool(base.at(t)) and not any(p.start <= t and (p.end is None or t < p.end) for p in periods)
        if not out or out[-1][1] != online or t == window_start:
            out.append((t, online))
    return out


class _Timeline:
    """A step function from time-ordered (time, value) changes, looked up by bisection."""

    def __init__(self, changes: list[tuple[datetime, object]], default: object) -> None:
        self.times = [t for t, _ in changes]
        self.values = [v for _, v in changes]
        self.default = default

    def at(self, t: datetime) -> object:
        i = bisect_right(self.times, t)
        return self.values[i - 1] if i else self.default


def build_availability(
    con: duckdb.DuckDBPyConnection,
    day: date,
    day_start: datetime,
    day_end: datetime,
    lookback_start: datetime,
    spans: dict[str, tuple] | None = None,
    offline: list[OfflinePeriod] | None = None,
) -> pa.Table:
    """`offline`: the stations' offline periods (connectivity.offline_periods); their minutes count as
    offline whatever the last status said."""
    statuses = load_status_events(con)
    online = online_intervals(con, lookback_start, spans)
    by_station: dict[str, list[OfflinePeriod]] = defaultdict(list)
    for p in offline or []:
        if p.end is None or p.end > lookback_start:
            by_station[p.station_id].append(p)
    connectors: dict[str, list[int]] = defaultdict(list)
    for cp, conn in sorted(statuses):
        connectors[cp].append(conn)
    hours = []
    h = day_start
    while h < day_end:
        hours.append(h)
        h += timedelta(hours=1)
    cols: dict[str, list] = defaultdict(list)
    for cp in sorted(connectors):
        conns = connectors[cp]
        status_changes = {c: [(e.time, category(e.status)) for e in statuses[(cp, c)]] for c in conns}
        online_changes = apply_offline(online.get(cp, [(lookback_start, True)]), by_station.get(cp, []))
        cuts = {day_start, day_end, *hours}
        for c in conns:
            cuts.update(t for t, _ in status_changes[c] if day_start < t < day_end)
        cuts.update(t for t, _ in online_changes if day_start < t < day_end)
        points = sorted(cuts)
        online_line = _Timeline(online_changes, True)
        lines = {c: _Timeline(status_changes[c], "unknown") for c in conns}
        minutes: dict[datetime, dict[str, float]] = {hr: dict.fromkeys(CATEGORIES, 0.0) for hr in hours}
        busy: dict[datetime, float] = dict.fromkeys(hours, 0.0)
        hour_idx = 0
        for a, b in itertools.pairwise(points):
            while hour_idx + 1 < len(hours) and hours[hour_idx + 1] <= a:
                hour_idx += 1
            hr = hours[hour_idx]
            span = (b - a).total_seconds() / 60.0
            is_online = online_line.at(a)
            all_busy = bool(is_online)
            for c in conns:
                cat = "offline" if not is_online else str(lines[c].at(a))
                minutes[hr][cat] += span
                if cat == "charging":
                    minutes[hr]["occupied"] += span
                if cat not in OCCUPIED:
                    all_busy = False
            if all_busy:
                busy[hr] += span
        for hr in hours:
            cols["date"].append(day)
            cols["station_id"].append(cp)
            cols["hour_start"].append(hr)
            cols["connectors"].append(len(conns))
            for cat in CATEGORIES:
                cols[f"{cat}_minutes"].append(round(minutes[hr][cat], 6))
            cols["all_busy_minutes"].append(round(busy[hr], 6))
    return pa.table(
        {f.name: pa.array(cols[f.name], f.type) for f in AVAILABILITY_SCHEMA}, schema=AVAILABILITY_SCHEMA
    )
