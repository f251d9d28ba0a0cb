"""Per-connection charger clock offsets, estimated from the raw zone, and the rule that applies them.

A charger stamps its messages with its own clock; the listener stamps their receipt with its clock
(`received_at`). `offset = charger clock - listener clock` (positive: the charger runs ahead).

Public entry points:

    chunk_stats_sql(d, live)            per (raw file, connection) facts the index stores
    estimate_offsets(stats, rule)       -> {connection_id: ConnectionOffset}, from ConnectionStats
    register_offsets(con, offsets)      the `clock_offsets` table raw_reader joins
    RawIndex.clock_offsets()            the offsets of everything indexed (pipelines/raw_index.py)
    estimate_replay_maps(con, sql, ids) -> ({connection_id: ReplayMap}, ReplayRun | None): the
                                        receipt-to-event-time line of a replay at a constant rate
                                        (docs/pipeline.md, "Replays at a constant rate")

Three estimates, in this order (docs/pipeline.md, "Charger clocks"):

1. **live**: a connection whose messages arrive in real time. Its *live* messages are those whose
   timestamp is not more than REPLAY_LAG_S behind their receipt (older ones were queued while the
   charger was offline, or are a begin-of-transaction sample). When it has at least MIN_LIVE of them
   and their `timestamp - received_at` has a small spread (interquartile range and the spread of the
   per-file medians both at most `rule.max_spread_s`), the offset is their median (per raw file,
   averaged over the files by message count).
2. **fleet**: a bulk replay of past days (a backfill, a time-compressed simulation) has no live
   message at all: receipt times say nothing about any one charger's time line. When it starts many
   chargers at once (at least FLEET_MIN chargers whose first connection's first message arrives
   within FLEET_GAP_S of the previous one), those first messages were stamped at one shared
   instant; if at least two thirds of them agree within `rule.min_offset_s`, their median lag is
   the replay's clock and a charger's first message off that median by more than `rule.min_offset_s`
   (and at most `rule.max_offset_s`) gives its offset.
3. **carried**: a connection without enough live messages (a reconnect that only replays its queue,
   a retry, a reboot inside a replay), or whose live messages spread too widely (a queue replayed by
   a clock running ahead looks live but lags by its queueing time), keeps the offset of the
   charger's previous connection: a clock does not jump by itself.

Only offsets larger than `rule.min_offset_s` are applied, rounded to the second (smaller ones are
latency and honest clock error); the raw reader then subtracts the offset from every timestamp of
the connection (queued messages included: the same clock stamped them) and flags the rows
`clock_corrected`.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

# A message this much older than its receipt was not sent live (matches connectivity.REPLAY_LAG_S).
REPLAY_LAG_S = 600.0
MIN_LIVE = 3
FLEET_MIN = 5
FLEET_GAP_S = 10.0
FLEET_AGREEMENT = 2 / 3
OFFSETS_TABLE = "clock_offsets"


@dataclass(frozen=True)
class ClockRule:
    min_offset_s: float = 60.0
    max_spread_s: float = 30.0
    max_offset_s: float = 24 * 3600.0


@dataclass(frozen=True)
class ConnectionStats:
    """The timestamped messages (status notifications, transaction events) of one connection, from
    the per-raw-file facts the index stores (`chunk_stats_sql`). `d` = timestamp - received_at (s)."""

    connection_id: str
    charge_point_id: str
    live_n: int
    live_median_s: float | None  # the per-file medians of d over live messages, weighted by count
    live_median_spread_s: float | None  # largest minus smallest per-file median
    live_iqr_s: float | None  # the widest per-file interquartile range
    first_received: datetime
    first_d_s: float  # d of the connection's first received message

    def live_estimate(self, rule: ClockRule) -> tuple[str, float | None]:
        """('stable', offset) / ('unstable', None) / ('none', None) from its live messages."""
        if self.live_n < MIN_LIVE or self.live_median_s is None:
            return "none", None
        spread = max(self.live_iqr_s or 0.0, self.live_median_spread_s or 0.0)
        if spread > rule.max_spread_s:
            return "unstable", None
        return "stable", self.live_median_s


@dataclass(frozen=True)
class ConnectionOffset:
    charge_point_id: str
    offset_s: float
    source: str  # live, fleet, carried


def chunk_stats_sql(d: str, live: str) -> str:
    """Aggregates of one file's rows per connection (`d`: the timestamp-minus-receipt expression in
    seconds, `live`: the predicate of a live row): live count, median, first and third quartile,
    first receipt, d of the first received row."""
    return f"""count(*) FILTER (WHERE {live}),
               median({d}) FILTER (WHERE {live}),
               quantile_cont({d}, 0.25) FILTER (WHERE {live}),
               quantile_cont({d}, 0.75) FILTER (WHERE {live}),
               min(received_at),
               arg_min({d}, received_at)"""


def _fleet_offsets(firsts: list[ConnectionStats], rule: ClockRule) -> dict[str, float]:
    """Connection id → offset for the first connections of chargers a bulk replay started together."""
    out: dict[str, float] = {}
    firsts = sorted(firsts, key=lambda c: c.first_received)
    groups: list[list[ConnectionStats]] = []
    for c in firsts:
        if groups and (c.first_received - groups[-1][-1].first_received).total_seconds() <= FLEET_GAP_S:
            groups[-1].append(c)
        else:
            groups.append([c])
    for group in groups:
        if len({c.charge_point_id for c in group}) < FLEET_MIN:
            continue
        shared = statistics.median(c.first_d_s for c in group)
        agree = sum(abs(c.first_d_s - shared) <= rule.min_offset_s for c in group)
        if agree < FLEET_AGREEMENT * len(group):
            continue  # no shared replay clock: chargers that started at different times
        for c in group:
            off = c.first_d_s - shared
            if rule.min_offset_s < abs(off) <= rule.max_offset_s:
                out[c.connection_id] = off
    return out


def estimate_offsets(stats: list[ConnectionStats], rule: ClockRule) -> dict[str, ConnectionOffset]:
    """Every connection whose charger clock is off by more than rule.min_offset_s (module doc)."""
    by_cp: dict[str, list[ConnectionStats]] = defaultdict(list)
    for c in stats:
        by_cp[c.charge_point_id].append(c)
    for lst in by_cp.values():
        lst.sort(key=lambda c: (c.first_received, c.connection_id))
    replay_firsts = [lst[0] for lst in by_cp.values() if lst[0].live_n == 0]
    fleet = _fleet_offsets(replay_firsts, rule)
    out: dict[str, ConnectionOffset] = {}
    for cp, lst in by_cp.items():
        carried: float | None = None
        for c in lst:
            kind, value = c.live_estimate(rule)
            source = "live"
            if kind == "none" and c.connection_id in fleet:
                value, source = fleet[c.connection_id], "fleet"
            elif kind != "stable":
                value, source = carried, "carried"
            carried = value
            if value is not None and rule.min_offset_s < abs(value) <= rule.max_offset_s:
                # To the second: the estimate's error is the receipt jitter (milliseconds), and
                # charger clocks tick in seconds.
                out[c.connection_id] = ConnectionOffset(cp, float(round(value)), source)
    return out


def register_offsets(con: duckdb.DuckDBPyConnection, offsets: dict[str, ConnectionOffset]) -> None:
    """Table `clock_offsets` (clock_connection_id, clock_offset_us): the raw reader's views join it.
    Without any offset there is no table, and the views read the files as they are (a join, even
    with an empty table, may hand rows on in another order)."""
    if not offsets:
        con.execute(f"DROP TABLE IF EXISTS {OFFSETS_TABLE}")
        return
    table = pa.table(
        {
            "clock_connection_id": pa.array(list(offsets), pa.string()),
            "clock_offset_us": pa.array([round(o.offset_s * 1e6) for o in offsets.values()], pa.int64()),
        }
    )
    con.register("_clock_offsets_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {OFFSETS_TABLE} AS SELECT * FROM _clock_offsets_arrow")
    con.unregister("_clock_offsets_arrow")


def has_offsets(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $n AND temporary", {"n": OFFSETS_TABLE}
    ).fetchall()
    return bool(rows[0][0])


# Replays at a constant rate (docs/pipeline.md, "Replays at a constant rate").
REPLAY_MIN_RATE = 10.0  # event seconds per receipt second: below this a "replay" is a slow backfill
REPLAY_MAX_RATE = 1e6
REPLAY_TOLERANCE_S = 120.0  # event-time distance from the line that still counts as on it, or
REPLAY_JITTER_S = 0.25  # this much receipt time at the replay's rate (a loaded sender is late),
REPLAY_MAX_TOLERANCE_S = 600.0  # but never more: a line that loose says nothing
REPLAY_RUN_AGREEMENT = 2 / 3  # share of the run's connections that must lie on its line
REPLAY_INLIERS = 0.5  # share of a connection's messages that must lie on its line
REPLAY_RATE_AGREEMENT = 0.02  # a connection's own rate this far off the run's is noise: the run's wins
REPLAY_MIN_POINTS = 8
REPLAY_SAMPLE = 80  # messages per connection the slope is estimated from (pairs grow as n²)
# Pairs of messages received closer than this say nothing of the rate: their slope is receipt
# jitter (a charger's boot messages, stamped at one instant; a queue replayed in a burst).
REPLAY_MIN_DX_S = 1.0


@dataclass(frozen=True)
class ReplayMap:
    """event time ≈ event0 + rate × (received_at − received0), in epoch seconds: a connection
    replayed at a constant rate (a paced, time-compressed simulation; a throttled backfill)."""

    received0: float
    event0: float
    rate: float
    source: str  # fit (its own messages) or carried (the charger's neighbouring connection's)

    def __call__(self, t: datetime) -> datetime:
        return datetime.fromtimestamp(self.at(t.timestamp()), t.tzinfo)

    def at(self, received_s: float) -> float:
        return self.event0 + self.rate * (received_s - self.received0)


def _tolerance(rate: float) -> float:
    return min(REPLAY_MAX_TOLERANCE_S, max(REPLAY_TOLERANCE_S, rate * REPLAY_JITTER_S))


def _line(points: list[tuple[float, float]]) -> ReplayMap | None:
    """Theil–Sen slope (the median of pairwise slopes: robust to the queued messages a reconnect
    delivers in a burst, which lie far below the line), then the median intercept of the points on
    it; None unless a majority of the points lie within REPLAY_TOLERANCE_S of that line."""
    if len(points) < REPLAY_MIN_POINTS:
        return None
    x0, y0 = points[0]
    pts = [(x - x0, y - y0) for x, y in points]
    slopes = [
        (yj - yi) / (xj - xi) for i, (xi, yi) in enumerate(pts) for xj, yj in pts[i + 1 :] if xj - xi > 1e-3
    ]
    if not slopes:
        return None
    rate = statistics.median(slopes)
    if not REPLAY_MIN_RATE <= rate <= REPLAY_MAX_RATE:
        return None
    tol = _tolerance(rate)
    # Paced messages leave at their time or late, never early: the line is the points' upper edge.
    # The intercept is the median of those near the top (queued ones lie far below).
    resid = [y - rate * x for x, y in pts]
    top = max(resid)
    near = [r for r in resid if top - r <= 2 * tol]
    c = statistics.median(near)
    on_line = sum(abs(r - c) <= tol for r in resid)
    if on_line < REPLAY_INLIERS * len(pts):
        return None
    return ReplayMap(x0, y0 + c, rate, "fit")


def estimate_replay_maps(
    con: duckdb.DuckDBPyConnection, messages_sql: str, connection_ids: list[str]
) -> tuple[dict[str, ReplayMap], ReplayRun | None]:
    """Connection id → its ReplayMap, for those of `connection_ids` whose timestamped messages
    (`messages_sql` selects connection_id, received_at, event_time, clock offsets applied) lie on a
    line of slope ≫ 1 against receipt, and the line of the run they share if there is one."""
    if not messages_sql or not connection_ids:
        return {}, None
    parts = (
        f"SELECT * FROM ({messages_sql}) WHERE list_contains($ids, connection_id) "
        "AND event_time IS NOT NULL AND received_at IS NOT NULL"
    )
    rows = con.execute(
        f"""WITH m AS (
                SELECT connection_id, epoch(received_at) AS x, epoch(event_time) AS y,
                       row_number() OVER (PARTITION BY connection_id ORDER BY received_at, event_time) AS rn,
                       count(*) OVER (PARTITION BY connection_id) AS n
                FROM ({parts})
            )
            SELECT connection_id, x, y FROM m
            WHERE (rn - 1) % greatest(1, n // {REPLAY_SAMPLE}) = 0
            -- Messages stamped at one instant (a boot's) were sent one after the other: the first
            -- received is the one paced, the others only waited for answers.
            QUALIFY row_number() OVER (PARTITION BY connection_id, y ORDER BY x) = 1
            ORDER BY connection_id, x, y""",
        {"ids": connection_ids},
    ).fetchall()
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for conn, x, y in rows:
        points[conn].append((float(x), float(y)))
    out: dict[str, ReplayMap] = {}
    for conn, pts in points.items():
        fitted = _line(pts)
        if fitted is not None:
            out[conn] = fitted
    return out, _run_line(points)


@dataclass(frozen=True)
class ReplayRun:
    """The line shared by every lagging connection (a simulation paces all chargers by one clock),
    over the receipt times of the messages on it."""

    line: ReplayMap
    first_received: datetime
    last_received: datetime

    def covers(self, t: datetime | None) -> bool:
        """Whether t (a receipt time) is within the run, give or take half its length: the views
        hold one partition's messages, and a connection may open just past the last of them."""
        if t is None:
            return False
        slack = max(timedelta(seconds=60), (self.last_received - self.first_received) / 2)
        return self.first_received - slack <= t <= self.last_received + slack


def _run_line(points: dict[str, list[tuple[float, float]]]) -> ReplayRun | None:
    """The pooled line of all lagging messages (charger clock offsets already applied), from an even
    sample of them: quiet connections (only heartbeats, a few status notifications) have too few
    messages for a line of their own. None unless a majority of the messages lies on it and, of the
    connections with at least 3 messages, two thirds have most of theirs on it: chargers replayed as
    fast as possible (`--speed 0`) each run at their own, changing pace, and share no line."""
    pooled = sorted(p for pts in points.values() for p in pts)
    step = max(1, len(pooled) // (2 * REPLAY_SAMPLE))
    line = _line(pooled[::step])
    if line is None:
        return None
    tol = _tolerance(line.rate)

    def on(pts: list[tuple[float, float]]) -> list[float]:
        return [x for x, y in pts if abs(y - line.at(x)) <= tol]

    judged = [pts for pts in points.values() if len(pts) >= 3]
    agree = sum(2 * len(on(pts)) > len(pts) for pts in judged)
    if not judged or agree < REPLAY_RUN_AGREEMENT * len(judged):
        return None
    xs = on(pooled)
    return ReplayRun(
        ReplayMap(line.received0, line.event0, line.rate, "run"),
        datetime.fromtimestamp(min(xs), UTC),
        datetime.fromtimestamp(max(xs), UTC),
    )
