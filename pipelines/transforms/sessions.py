"""Charging sessions from transaction events, status timelines and meter values.

Definitions (docs/pipeline.md):
- plug-in: the connector leaves Available for an occupied status (Preparing in 1.6, Occupied in
  2.0.1) in the episode that contains the transaction start; the transaction start when no status came.
- plug-out: the end of that episode (back to Available, or any non-occupied status); the transaction
  end when no status came.
- charging start/end: the first Charging status and the last transition out of Charging (1.6
  StatusNotification, 2.0.1 TransactionEvent.chargingState); failing those, the first/last meter
  sample above 100 W.
- energy: meterStop - meterStart (1.6) when consistent, otherwise the increases of the register over
  the session's samples (registers.py: out-of-order readings add nothing, a reset restarts from zero).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from pipelines.privacy import Pseudonymizer
from pipelines.raw_reader import connector_sql
from pipelines.transforms.registers import MAX_PLAUSIBLE_W, register_increments_sql
from pipelines.transforms.statuses import Episode, load_status_events, occupancy_episodes

CHARGING_POWER_W = 100.0
# A status change this close after the transaction start still belongs to its plug-in (2.0.1 chargers
# often start the transaction and report Occupied in the same instant, in either order).
PLUG_TOLERANCE = timedelta(minutes=2)
# A status-based charging end later than the last powered sample by more than this is not believed.
METER_GAP_S = 120.0

SESSION_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("connector_id", pa.int32()),
        pa.field("ocpp_version", pa.string()),
        pa.field("transaction_id", pa.string()),
        pa.field("user_pseudonym", pa.string()),
        pa.field("user_key", pa.string()),
        pa.field("plug_in", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("charging_start", pa.timestamp("us", tz="UTC")),
        pa.field("charging_end", pa.timestamp("us", tz="UTC")),
        pa.field("plug_out", pa.timestamp("us", tz="UTC")),
        pa.field("energy_wh", pa.float64(), nullable=False),
        pa.field("energy_source", pa.string(), nullable=False),
        pa.field("max_power_w", pa.float64()),
        pa.field("stop_reason", pa.string()),
        pa.field("clock_corrected", pa.bool_(), nullable=False),
        pa.field("left_open", pa.bool_(), nullable=False),
        pa.field("quality_flags", pa.string(), nullable=False),
    ]
)


@dataclass
class Transaction:
    station_id: str
    version: str
    transaction_id: str
    connector: int | None = None
    id_tag: str | None = None
    start: datetime | None = None
    stop: datetime | None = None
    meter_start: float | None = None
    meter_stop: float | None = None
    stop_reason: str | None = None
    clock_corrected: bool = False
    charging_states: list[tuple[datetime, str]] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


def _load_events(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        f"""SELECT charge_point_id, ocpp_version, event_type, event_time, clock_corrected, transaction_id,
                   {connector_sql()} AS connector, id_tag, meter_start_wh, meter_stop_wh, charging_state,
                   stopped_reason
            FROM transaction_events
            ORDER BY charge_point_id, event_time, coalesce(seq_no, 0), received_at"""
    ).fetchall()


def assemble_transactions(con: duckdb.DuckDBPyConnection) -> list[Transaction]:
    txs: dict[tuple[str, str], Transaction] = {}
    orphan_stops: list[tuple] = []
    for cp, version, etype, t, cc, tx_id, conn, tag, m_start, m_stop, state, reason in _load_events(con):
        if tx_id is None:
            continue
        key = (cp, tx_id)
        tx = txs.get(key)
        if tx is None:
            if version == "1.6" and etype == "Ended":
                orphan_stops.append((cp, t, cc, tx_id, m_stop, reason))
                continue
            tx = txs[key] = Transaction(cp, version, tx_id)
        _apply_event(tx, etype, t, bool(cc), conn, tag, m_start, m_stop, state, reason)
    for cp, t, cc, _tx_id, m_stop, reason in orphan_stops:
        target = _match_orphan_stop(txs, cp, t, m_stop)
        if target is None:
            continue
        target.flags.add("stop_unknown_id")
        _apply_event(target, "Ended", t, bool(cc), None, None, None, m_stop, None, reason)
    return [tx for tx in txs.values() if tx.start is not None]


def _apply_event(
    tx: Transaction,
    etype: str,
    t: datetime,
    cc: bool,
    conn: int | None,
    tag: str | None,
    m_start: float | None,
    m_stop: float | None,
    state: str | None,
    reason: str | None,
) -> None:
    tx.clock_corrected = tx.clock_corrected or cc
    if conn is not None and conn > 0 and tx.connector is None:
        tx.connector = int(conn)
    if tag and tx.id_tag is None:
        tx.id_tag = tag
    if etype == "Started" or tx.start is None:
        tx.start = t if tx.start is None else min(tx.start, t)
    if m_start is not None and tx.meter_start is None:
        tx.meter_start = m_start
    if state:
        tx.charging_states.append((t, state))
    if etype == "Ended":
        if tx.stop is None or t < tx.stop:
            tx.stop = t
        if m_stop is not None:
            tx.meter_stop = m_stop
        if reason:
            tx.stop_reason = reason


def _match_orphan_stop(
    txs: dict[tuple[str, str], Transaction], cp: str, t: datetime, m_stop: float | None
) -> Transaction | None:
    """A 1.6 StopTransaction whose id was never started here: the open transaction it most likely ends."""
    candidates = [
        tx
        for (c, _), tx in txs.items()
        if c == cp and tx.stop is None and tx.start is not None and tx.start <= t
    ]
    if not candidates:
        return None
    if m_stop is not None:
        fitting = [tx for tx in candidates if tx.meter_start is not None and tx.meter_start <= m_stop]
        if fitting:
            return max(fitting, key=lambda tx: (tx.meter_start or 0.0, tx.start))
    return max(candidates, key=lambda tx: tx.start)  # type: ignore[arg-type, return-value]


def _episode_for(episodes: list[Episode], start: datetime) -> Episode | None:
    best = None
    for ep in episodes:
        if ep.start <= start + PLUG_TOLERANCE and (ep.end is None or ep.end >= start):
            best = ep
    return best


def _state_charging_times(states: list[tuple[datetime, str]], stop: datetime | None) -> tuple:
    start = end = None
    charging = False
    for t, s in sorted(states):
        if s == "Charging" and not charging:
            charging = True
            start = start or t
        elif s != "Charging" and charging:
            charging = False
            end = t
    if charging:
        end = stop
    return start, end


@dataclass
class Session:
    tx: Transaction
    plug_in: datetime
    plug_out: datetime | None
    charging_start: datetime | None
    charging_end: datetime | None
    left_open: bool
    flags: set[str]


def resolve_sessions(con: duckdb.DuckDBPyConnection) -> list[Session]:
    txs = assemble_transactions(con)
    statuses = load_status_events(con)
    episodes = {key: occupancy_episodes(evs) for key, evs in statuses.items()}
    sessions: list[Session] = []
    for tx in txs:
        assert tx.start is not None
        flags = set(tx.flags)
        ep = _episode_for(episodes.get((tx.station_id, tx.connector or 0), []), tx.start)
        plug_in = min(ep.start, tx.start) if ep else tx.start
        if ep is not None and ep.end is not None and (tx.stop is None or ep.end >= tx.stop - PLUG_TOLERANCE):
            plug_out: datetime | None = max(ep.end, tx.stop) if tx.stop else ep.end
            if tx.stop is None:
                flags.add("no_stop_event")
        elif tx.stop is not None:
            plug_out = tx.stop
            if ep is None:
                flags.add("no_status")
        else:
            plug_out = None
        ch_start, ch_end = (ep.charging_start, ep.charging_end) if ep else (None, None)
        if ch_start is None and tx.charging_states:
            ch_start, ch_end = _state_charging_times(tx.charging_states, tx.stop or plug_out)
        if ch_start is not None and ch_end is None:
            ch_end = tx.stop or plug_out
        if ep is not None and ep.clock_corrected:
            tx.clock_corrected = True  # its plug-in, charging or plug-out time was corrected
        sessions.append(Session(tx, plug_in, plug_out, ch_start, ch_end, plug_out is None, flags))
    return _drop_duplicate_starts(sessions)


def _drop_duplicate_starts(sessions: list[Session]) -> list[Session]:
    """A retried 1.6 start that got a second transaction id yields a twin session: keep the one that
    has a stop (then the first id)."""
    best: dict[tuple, Session] = {}
    for s in sorted(sessions, key=lambda s: (s.left_open, s.tx.transaction_id)):
        key = (s.tx.station_id, s.tx.connector, s.tx.start)
        if key not in best:
            best[key] = s
        else:
            best[key].flags.add("retried_start")
    return sorted(best.values(), key=lambda s: (s.tx.station_id, s.plug_in, s.tx.transaction_id))


_METER_SQL = f"""
WITH m AS (
    SELECT charge_point_id AS cp, {connector_sql()} AS conn, transaction_id AS tx, event_time AS t,
           measurand, phase, value
    FROM meter_values
    WHERE value IS NOT NULL AND location = 'Outlet'
      AND measurand IN ('Energy.Active.Import.Register', 'Power.Active.Import')
),
j AS (
    SELECT s.idx, m.* FROM m JOIN sess s ON m.cp = s.cp AND m.tx = s.tx_id
    UNION ALL
    SELECT s.idx, m.* FROM m JOIN sess s
        ON m.cp = s.cp AND m.tx IS NULL AND m.conn = s.conn AND m.t >= s.t_from AND m.t <= s.t_to
),
reg AS (
    SELECT idx, t, value FROM j WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL
    UNION ALL SELECT idx, t, value FROM extra_registers
),
d AS ({register_increments_sql("reg", ("idx",))}),
e AS (
    SELECT idx, sum(coalesce(inc, 0)) AS energy, bool_or(reset) AS reset,
           bool_or(implausible) AS implausible, bool_or(backwards) AS backwards, count(*) AS samples,
           max(t) AS last_t,
           max(inc * 3600 / nullif(dt, 0)) AS max_delta_w
    FROM d GROUP BY idx
),
p AS (
    SELECT idx, t, coalesce(max(value) FILTER (WHERE phase IS NULL), sum(value)) AS w
    FROM j WHERE measurand = 'Power.Active.Import' GROUP BY idx, t
),
pw AS (
    SELECT idx, max(w) AS max_w,
           min(t) FILTER (WHERE w > {CHARGING_POWER_W}) AS first_on,
           max(t) FILTER (WHERE w > {CHARGING_POWER_W}) AS last_on
    FROM p GROUP BY idx
),
off AS (
    SELECT p.idx, min(p.t) AS first_off
    FROM p JOIN pw USING (idx) WHERE p.w <= {CHARGING_POWER_W} AND p.t > pw.last_on GROUP BY p.idx
)
SELECT sess.idx, e.energy, e.reset, e.implausible, e.samples, e.last_t, e.max_delta_w,
       pw.max_w, pw.first_on, pw.last_on, off.first_off, e.backwards
FROM sess LEFT JOIN e USING (idx) LEFT JOIN pw USING (idx) LEFT JOIN off USING (idx)
ORDER BY sess.idx
"""


def meter_facts(con: duckdb.DuckDBPyConnection, sessions: list[Session], horizon: datetime) -> list[tuple]:
    sess = pa.table(
        {
            "idx": pa.array(range(len(sessions)), pa.int64()),
            "cp": [s.tx.station_id for s in sessions],
            "conn": pa.array([s.tx.connector for s in sessions], pa.int32()),
            "tx_id": [s.tx.transaction_id for s in sessions],
            "t_from": pa.array([s.plug_in for s in sessions], pa.timestamp("us", tz="UTC")),
            "t_to": pa.array([s.plug_out or horizon for s in sessions], pa.timestamp("us", tz="UTC")),
        }
    )
    extra_idx, extra_t, extra_v = [], [], []
    for i, s in enumerate(sessions):
        if s.tx.meter_start is not None:
            extra_idx.append(i)
            extra_t.append(s.tx.start)
            extra_v.append(s.tx.meter_start)
        if s.tx.meter_stop is not None and s.tx.stop is not None:
            extra_idx.append(i)
            extra_t.append(s.tx.stop)
            extra_v.append(s.tx.meter_stop)
    extra = pa.table(
        {
            "idx": pa.array(extra_idx, pa.int64()),
            "t": pa.array(extra_t, pa.timestamp("us", tz="UTC")),
            "value": pa.array(extra_v, pa.float64()),
        }
    )
    con.register("sess", sess)
    con.register("extra_registers", extra)
    try:
        return con.execute(_METER_SQL).fetchall()
    finally:
        con.unregister("sess")
        con.unregister("extra_registers")


def build_sessions(
    con: duckdb.DuckDBPyConnection,
    day: date,
    day_start: datetime,
    day_end: datetime,
    horizon: datetime,
    pseudo: Pseudonymizer,
    register_meter_values: Callable[[datetime, datetime], None],
) -> pa.Table:
    """Sessions plugged in during [day_start, day_end), as the private work table (SESSION_SCHEMA).

    `register_meter_values(start, end)` creates the meter_values view once the sessions' time span is
    known, so only the meter files that overlap the sessions are read."""
    sessions = [s for s in resolve_sessions(con) if day_start <= s.plug_in < day_end]
    span_end = max((s.plug_out or horizon for s in sessions), default=day_end)
    register_meter_values(day_start - PLUG_TOLERANCE, min(span_end, horizon) + PLUG_TOLERANCE)
    facts = meter_facts(con, sessions, horizon)
    cols: dict[str, list] = defaultdict(list)
    for s, fact in zip(sessions, facts, strict=True):
        _, energy, reset, implausible, samples, last_t, max_delta_w, max_w, first_on, last_on, first_off = (
            fact[:11]
        )
        tx = s.tx
        flags = set(s.flags)
        ch_start, ch_end = s.charging_start, s.charging_end
        # Power stops between the last sample above 100 W and the next one: take the middle.
        meter_end = last_on + (first_off - last_on) / 2 if last_on and first_off else last_on
        if ch_start is None and first_on is not None:
            ch_start, ch_end = first_on, meter_end
            flags.add("charging_from_meter")
        elif ch_end is not None and last_on is not None and (ch_end - last_on).total_seconds() > METER_GAP_S:
            # No status said charging stopped (2.0.1 chargers often report no SuspendedEV): the
            # meter shows when it did.
            ch_end = meter_end
            flags.add("charging_end_from_meter")
        if reset:
            flags.add("register_reset")
        if implausible:
            flags.add("implausible_energy")
        if fact[11]:  # a drop that is no reset (quality rule register_backwards)
            flags.add("register_backwards")
        if last_t is not None and tx.stop is not None and last_t > tx.stop + timedelta(seconds=1):
            flags.add("late_meter_values")
        consistent_stop = (
            tx.meter_start is not None and tx.meter_stop is not None and tx.meter_stop >= tx.meter_start
        )
        if consistent_stop and not reset and not implausible:
            energy_wh, source = float(tx.meter_stop - tx.meter_start), "meter_stop"  # type: ignore[operator]
        elif samples and samples >= 2:
            energy_wh, source = float(energy), "meter_values"
        else:
            energy_wh, source = 0.0, "none"
        max_power = max_w if max_w is not None else max_delta_w
        if max_power is not None and max_power > MAX_PLAUSIBLE_W:
            flags.add("implausible_power")
        cols["date"].append(day)
        cols["session_id"].append(pseudo.session_id(tx.station_id, tx.transaction_id, tx.start))  # type: ignore[arg-type]
        cols["station_id"].append(tx.station_id)
        cols["connector_id"].append(tx.connector)
        cols["ocpp_version"].append(tx.version)
        cols["transaction_id"].append(tx.transaction_id)
        cols["user_pseudonym"].append(pseudo.user(tx.station_id, tx.id_tag, day) if tx.id_tag else None)
        cols["user_key"].append(pseudo.area_user("*", tx.id_tag, day) if tx.id_tag else None)
        cols["plug_in"].append(s.plug_in)
        cols["charging_start"].append(ch_start)
        cols["charging_end"].append(ch_end)
        cols["plug_out"].append(s.plug_out)
        cols["energy_wh"].append(energy_wh)
        cols["energy_source"].append(source)
        cols["max_power_w"].append(None if max_power is None else float(max_power))
        cols["stop_reason"].append(tx.stop_reason)
        cols["clock_corrected"].append(tx.clock_corrected)
        cols["left_open"].append(s.left_open)
        cols["quality_flags"].append(",".join(sorted(flags)))
    return pa.table({f.name: pa.array(cols[f.name], f.type) for f in SESSION_SCHEMA}, schema=SESSION_SCHEMA)
