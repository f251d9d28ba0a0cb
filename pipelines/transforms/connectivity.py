"""Per charger, when it had no working connection to the backend: offline periods from the raw zone.

Public entry point (stable: the reliability datasets build on it):

    offline_periods(con, *, heartbeat_interval_s, offline_after, spans=None, until=None)
        -> list[OfflinePeriod(station_id, start, end, source)]

It needs these views in `con` (see `register_connectivity_views`):
- `connections`: the connection log (received_at, event, charge_point_id, connection_id), every row;
- `frames` (optional): inbound frames (received_at, charge_point_id, connection_id, direction, action,
  text) for the heartbeat source and for the heartbeat interval the listener told each charger;
- `status_notifications` / `transaction_events` / `meter_values` (optional, any of them, with
  `event_time` and `received_at`): timestamped messages for the replay source.

Three sources, all in receipt time (the listener's clock; event times are on that scale once a
charger's clock offset is corrected, see clock.py):
- `connection`: from a connection's close to the station's next open. A connection whose close was
  never logged (listener killed) ends at its last frame when a later connection exists.
- `heartbeat`: on an open connection, a silence longer than `offline_after` heartbeat intervals
  (any inbound frame counts as a sign of life: OCPP 1.6 §4.6 lets a charger skip a Heartbeat when
  it sent another message) is offline from the first missed heartbeat (last frame + one interval)
  to the next frame.
- `replay`: a timestamped message received more than REPLAY_LAG_S after its event time on a
  connection whose other messages arrive in real time was queued while the charger was offline:
  the charger was offline from that event time until the connection that delivered it opened.

Connections whose every message lags its receipt by more than REPLAY_LAG_S (a bulk backfill, a
time-compressed simulation) say nothing about the charger's own time line by their receipt times
alone. When the replay ran at a constant rate (clock.estimate_replay_maps: a stable line event time
≈ a + b × received_at shared by the run), their open, close and first and last frame are mapped to
event time with it and the connection source works on the mapped times (heartbeat silences and the
replay source are not looked at there); otherwise they are skipped (docs/pipeline.md, "Replays at a
constant rate"). Overlapping periods of one station are merged; `source` then names every source that
saw it, joined by '+', in the order connection, heartbeat, replay. `end` is None while the station
is still offline at the end of the data (`until` defaults to the last receipt in the log).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from pipelines.transforms.clock import REPLAY_RATE_AGREEMENT, ReplayMap, estimate_replay_maps

# A message this much older than its receipt was not sent live (matches the availability rule).
REPLAY_LAG_S = 600.0
SOURCES = ("connection", "heartbeat", "replay")
TIMESTAMPED = ("status_notifications", "transaction_events", "meter_values")


@dataclass(frozen=True)
class OfflinePeriod:
    station_id: str
    start: datetime
    end: datetime | None
    source: str

    def minutes_in(self, a: datetime, b: datetime, until: datetime) -> float:
        """Minutes of [a, b) this period covers (an open period runs to `until`)."""
        lo, hi = max(a, self.start), min(b, self.end or until)
        return max(0.0, (hi - lo).total_seconds() / 60.0)


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $n", {"n": name}).fetchone()[0]  # type: ignore[index]
        or con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $n", {"n": name}).fetchone()[
            0
        ]  # type: ignore[index]
    )


def heartbeat_intervals(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Per station, the heartbeat interval (s) of the last BootNotification answer it got."""
    if not _has_view(con, "frames"):
        return {}
    rows = con.execute(
        """SELECT charge_point_id, arg_max(text, received_at) FROM frames
           WHERE direction = 'out' AND action = 'BootNotification' AND message_type = 3
           GROUP BY charge_point_id"""
    ).fetchall()
    out: dict[str, float] = {}
    for cp, text in rows:
        try:
            interval = json.loads(text)[2].get("interval")
        except (ValueError, TypeError, IndexError, AttributeError):
            continue
        if isinstance(interval, int | float) and interval > 0:
            out[cp] = float(interval)
    return out


def _connection_bounds(
    con: duckdb.DuckDBPyConnection,
) -> dict[str, list[tuple[str, datetime | None, datetime | None]]]:
    """Per station, its connections as (id, open, close) in order of opening."""
    rows = con.execute(
        """SELECT charge_point_id, connection_id,
                  min(received_at) FILTER (WHERE event = 'connected'),
                  max(received_at) FILTER (WHERE event = 'disconnected'),
                  min(received_at)
           FROM connections
           WHERE event IN ('connected', 'disconnected') AND charge_point_id IS NOT NULL
             AND connection_id IS NOT NULL
           GROUP BY ALL ORDER BY 1, 5, 2"""
    ).fetchall()
    out: dict[str, list[tuple[str, datetime | None, datetime | None]]] = defaultdict(list)
    for cp, conn, opened, closed, _first in rows:
        out[cp].append((conn, opened, closed))
    return out


@dataclass(frozen=True)
class _Life:
    """A connection's inbound frames, summarised: the first and last receipt and every silence
    between two consecutive frames longer than the shortest silence that can matter. A month of
    heartbeats is tens of millions of frames; the silences are a handful."""

    first: datetime
    last: datetime
    gaps: list[tuple[datetime, datetime]]


def _signs_of_life(con: duckdb.DuckDBPyConnection, min_silence_s: float) -> dict[str, _Life]:
    """Per connection, its inbound frames' receipt times as a `_Life` (in SQL: lists of every
    frame's time were the slowest part of the availability step)."""
    if not _has_view(con, "frames"):
        return {}
    rows = con.execute(
        """WITH f AS (
               SELECT connection_id, received_at AS t,
                      lag(received_at) OVER (PARTITION BY connection_id ORDER BY received_at) AS p
               FROM frames WHERE direction = 'in'
           )
           SELECT connection_id, min(t), max(t),
                  list(struct_pack(a := p, b := t) ORDER BY t) FILTER (WHERE epoch(t) - epoch(p) > $s)
           FROM f GROUP BY connection_id""",
        {"s": min_silence_s},
    ).fetchall()
    return {c: _Life(a, b, [(g["a"], g["b"]) for g in gaps or []]) for c, a, b, gaps in rows}


def _shifted(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """The predicate of a row whose timestamp was shifted by its clock offset (raw_reader views have
    `clock_offset_s`; tests may register plain tables without it)."""
    cols = {r[0] for r in con.execute(f'DESCRIBE "{view}"').fetchall()}
    return "clock_offset_s <> 0" if "clock_offset_s" in cols else "false"


def _timestamped_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The timestamped messages (connection_id, received_at, event_time) as one query; '' if none.
    Rows whose time was replaced by the receipt time say nothing; shifted ones do."""
    return " UNION ALL ".join(
        f"SELECT connection_id, received_at, event_time FROM {t} "
        f"WHERE NOT clock_corrected OR {_shifted(con, t)}"
        for t in TIMESTAMPED
        if _has_view(con, t)
    )


def _replayed(con: duckdb.DuckDBPyConnection) -> dict[str, datetime]:
    """Per connection: the earliest event time of a message it delivered late (see module doc)."""
    parts = _timestamped_sql(con)
    if not parts:
        return {}
    lag = "epoch(received_at) - epoch(event_time)"
    rows = con.execute(
        f"""SELECT connection_id, min(event_time) FILTER (WHERE {lag} > {REPLAY_LAG_S})
            FROM ({parts})
            GROUP BY connection_id
            HAVING min({lag}) <= {REPLAY_LAG_S} AND max({lag}) > {REPLAY_LAG_S}"""
    ).fetchall()
    return dict(rows)


def _lagging(spans: dict[str, tuple], conn: str) -> bool:
    """A connection whose every message lags its receipt by more than REPLAY_LAG_S."""
    span = spans.get(conn)
    return bool(span and span[3] is not None and span[3] > REPLAY_LAG_S)


def _replay_maps(
    con: duckdb.DuckDBPyConnection,
    bounds: dict[str, list[tuple[str, datetime | None, datetime | None]]],
    spans: dict[str, tuple],
) -> dict[str, ReplayMap]:
    """Connections of a constant-rate replay → their receipt-to-event-time map.

    A lagging connection with a line of its own uses it (unless its rate disagrees with the run's).
    Any other connection of a charger that has
    a lagging one, except those whose messages arrive in real time, uses the run's line (the pooled
    line of every lagging message) when the run covers its receipt times, else the line of the
    charger's nearest lagging connection with one, earlier first: a replay paces every connection of
    a charger by the same clock, and a quiet connection (heartbeats only, a reconnect that only
    delivered its queue) has too few timestamped messages for a line. Where none exists the
    connection stays skipped, as every lagging connection was before; without a run line (chargers
    replayed as fast as possible, each at its own pace) every lagging connection does."""
    lagging = [c for conns in bounds.values() for c, _, _ in conns if _lagging(spans, c)]
    fitted, run = estimate_replay_maps(con, _timestamped_sql(con), lagging)
    if run is None:
        return {}  # no shared pace: nothing says how receipt relates to event time
    # A connection's own line from a few messages is noisier than the run's from all of them.
    r = run.line.rate
    fitted = {c: m for c, m in fitted.items() if abs(m.rate - r) <= REPLAY_RATE_AGREEMENT * r}
    out: dict[str, ReplayMap] = dict(fitted)
    for conns in bounds.values():
        if not any(_lagging(spans, c) for c, _, _ in conns):
            continue
        order = [c for c, _, _ in conns if _lagging(spans, c)]
        for conn, opened, closed in conns:
            if conn in out or (conn in spans and not _lagging(spans, conn)):
                continue
            if run.covers(opened) or run.covers(closed):
                out[conn] = run.line
                continue
            if conn not in order:
                continue
            i = order.index(conn)
            near = [d for d in (*reversed(order[:i]), *order[i + 1 :]) if d in fitted]
            if near:
                f = fitted[near[0]]
                out[conn] = ReplayMap(f.received0, f.event0, f.rate, "carried")
    return out


def _merge(station: str, raw: list[tuple[datetime, datetime | None, str]]) -> list[OfflinePeriod]:
    out: list[OfflinePeriod] = []
    cur: list | None = None
    for start, end, source in sorted(raw, key=lambda r: (r[0], r[1] is None, r[1] or r[0])):
        if cur is not None and (cur[1] is None or start <= cur[1]):
            cur[1] = None if cur[1] is None or end is None else max(cur[1], end)
            cur[2].add(source)
            continue
        if cur is not None:
            out.append(OfflinePeriod(station, cur[0], cur[1], "+".join(s for s in SOURCES if s in cur[2])))
        cur = [start, end, {source}]
    if cur is not None:
        out.append(OfflinePeriod(station, cur[0], cur[1], "+".join(s for s in SOURCES if s in cur[2])))
    return out


def offline_periods(
    con: duckdb.DuckDBPyConnection,
    *,
    heartbeat_interval_s: float,
    offline_after: float = 2.0,
    spans: dict[str, tuple] | None = None,
    until: datetime | None = None,
) -> list[OfflinePeriod]:
    """Offline periods of every station, ordered by station and start (see the module doc).

    heartbeat_interval_s: the interval assumed where no BootNotification answer names one.
    offline_after: silence longer than this many heartbeat intervals is offline.
    spans: connection id → (station, first event, last event, smallest receipt lag in s), as
        `RawIndex.connection_spans()` gives; connections lagging more than REPLAY_LAG_S are skipped.
    """
    spans = spans or {}
    intervals = heartbeat_intervals(con)
    shortest = min([heartbeat_interval_s, *intervals.values()]) * offline_after
    life = _signs_of_life(con, shortest)
    replayed = _replayed(con)
    last_receipt = con.execute("SELECT max(received_at) FROM connections").fetchone()[0]  # type: ignore[index]
    last_frames = [v.last for v in life.values()]
    horizon = until or max([t for t in (last_receipt, *last_frames) if t is not None], default=None)
    periods: list[OfflinePeriod] = []
    bounds = _connection_bounds(con)
    maps = _replay_maps(con, bounds, spans)
    for cp, conns in bounds.items():
        live: list[tuple[str, datetime | None, datetime | None]] = []
        for conn, opened, closed in conns:
            m = maps.get(conn)
            if m is not None:  # a constant-rate replay: its receipt times mapped to event time
                live.append((conn, opened and m(opened), closed and m(closed)))
            elif not _lagging(spans, conn):
                live.append((conn, opened, closed))
        if any(c in maps for c, _, _ in conns):
            live.sort(key=lambda c: (c[1] is None, c[1] or c[2] or datetime.min.replace(tzinfo=UTC)))
        interval = timedelta(seconds=intervals.get(cp, heartbeat_interval_s))
        silence = interval * offline_after
        raw: list[tuple[datetime, datetime | None, str]] = []
        for i, (conn, opened, closed) in enumerate(live):
            signs = life.get(conn)
            m = maps.get(conn)
            if m is not None:
                # Frames of a replay are read by receipt window, which says nothing of event time:
                # its silences are not looked at (docs/pipeline.md), only its first and last frame.
                signs = _Life(m(signs.first), m(signs.last), []) if signs else None
            begin = opened or (signs.first if signs else None)
            nxt = live[i + 1][1] if i + 1 < len(live) else None
            end = closed
            if end is None and nxt is not None:
                end = max([begin, *([signs.last] if signs else [])]) if begin else None  # close never logged
            # Connection source: from this close to the next open (a replaced connection closes
            # after its successor opened: no gap).
            if end is not None and (nxt is None or nxt > end):
                raw.append((end, nxt, "connection"))
            # Heartbeat source: silences on the open connection (one still silent at the end of the
            # data is offline from its first missed heartbeat on): from the open to the first frame,
            # between frames, and from the last frame to the close.
            if m is not None:
                pairs = []
                final = end or (signs.last if signs else begin)
            elif signs is None:
                pairs = [(begin, end)]
                final = end or begin
            else:
                pairs = [(begin, signs.first), *signs.gaps, (signs.last, end)]
                final = end or signs.last
            for a, b in pairs:
                if a is not None and b is not None and b - a > silence:
                    raw.append((a + interval, b, "heartbeat"))
            # (Not on a replay: its mapped times and the receipt-time horizon are different clocks.)
            if (
                m is None
                and end is None
                and final is not None
                and horizon is not None
                and horizon - final > silence
            ):
                raw.append((final + interval, None, "heartbeat"))
            # Replay source: queued messages delivered on this connection.
            first_queued = replayed.get(conn) if m is None else None
            if first_queued is not None and begin is not None and first_queued < begin:
                raw.append((first_queued, begin, "replay"))
        periods.extend(p for p in _merge(cp, raw) if p.end is None or p.end > p.start)
    return sorted(periods, key=lambda p: (p.station_id, p.start))


def register_connectivity_views(
    con: duckdb.DuckDBPyConnection,
    index: object,
    skew_minutes: float,
    receipt_start: datetime | None = None,
    receipt_end: datetime | None = None,
) -> None:
    """Views `connections` (every file) and `frames` (inbound frames and BootNotification answers
    received in [receipt_start, receipt_end), all when None) for `offline_periods`, from a RawIndex."""
    from pipelines.raw_reader import register_view

    def files(table: str) -> list[Path]:
        if receipt_start is None or receipt_end is None:
            return index.all_files(table)  # type: ignore[attr-defined]
        return index.files_overlapping(table, receipt_start, receipt_end)  # type: ignore[attr-defined]

    all_connections = index.all_files("connections")  # type: ignore[attr-defined]
    register_view(con, "connections", all_connections, None, None, skew_minutes=skew_minutes,
                  materialize=True)  # fmt: skip
    cols = ("received_at", "charge_point_id", "connection_id", "direction", "message_type", "action", "text")
    register_view(con, "frames", files("frames"), receipt_start, receipt_end,
                  skew_minutes=skew_minutes, columns=cols, name="frames_all")  # fmt: skip
    # Only what offline_periods reads: inbound receipt times and the BootNotification answers' text.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE frames AS
           SELECT received_at, charge_point_id, connection_id, direction, message_type, action,
                  CASE WHEN direction = 'out' AND action = 'BootNotification' THEN text END AS text
           FROM frames_all WHERE direction = 'in' OR action = 'BootNotification'"""
    )
