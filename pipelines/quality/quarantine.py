"""One quality decision per work row, taken once before any dataset is built.

`decide` runs every rule of `rules.RULES` over the work tables registered in a DuckDB connection
(`w_sessions`, `w_station_minutes`, plus `reg`, `w_connectors` and `seen` from `pipelines.datasets`),
then replaces `w_sessions` and `w_station_minutes` by what may be published. Every dataset is built
from those two, so none publishes a session, or energy, that another withholds:

- a withheld **session** leaves `charging_sessions` and the session counts and energy of
  `station_usage_daily`, `station_usage_monthly` and `area_usage_daily`; the 15-minute intervals of
  its station that it spans are withheld too (their energy is the session's);
- a withheld **station-15-minute interval** (from the minute series) leaves `station_energy_15min`
  and `area_peak_15min`; the sessions of its station that span it are withheld too.

Propagation goes one step (a session withheld because of an interval withholds no further
intervals), so one bad reading never cascades over a station's day. Overlaps are also looked for
against the work sessions of the days just before the built ones (`context_days`): the later session
of a pair is the one withheld, so a decision never changes a day that is not rebuilt.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from pipelines.privacy import letters
from pipelines.quality import rules as R
from pipelines.quality.overrides import Override
from pipelines.transforms.sessions import SESSION_SCHEMA

ISSUE_SCHEMA = pa.schema(
    [
        pa.field("record", pa.string()),  # "session" | "station_15min"
        pa.field("record_id", pa.string()),
        pa.field("date", pa.date32()),
        pa.field("station_id", pa.string()),
        pa.field("interval_start", pa.timestamp("us", tz="UTC")),
        pa.field("rule", pa.string()),
        pa.field("action", pa.string()),
        pa.field("measured_value", pa.float64()),
        pa.field("limit_value", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("energy_wh", pa.float64()),
    ]
)

# Flags added to the published session row for flagged rules whose flag the transforms do not set.
_EXTRA_FLAGS = ("duplicate_transaction_id",)


@dataclass
class Quarantine:
    """The decisions: private rows (every station) that `report.py` turns into `quality_issues`."""

    issues: pa.Table
    # Withheld totals per local day, for the blocking recount against raw (which counts everything).
    withheld_sessions: dict[tuple[str, date], int] = field(default_factory=dict)
    withheld_energy_kwh: dict[tuple[str, date], float] = field(default_factory=dict)


def _ts(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _actions_sql() -> str:
    rows = ", ".join(f"('{r.id}', '{r.action.value}')" for r in R.RULES.values())
    return f"(VALUES {rows}) AS a(rule, action)"


def _limits(con: duckdb.DuckDBPyConnection) -> None:
    """`q_limit`: per station, the connector's plausible maximum (W), its connectors, its first sight."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE q_limit AS
            WITH ids AS (
                SELECT station_id, max(connector_id) AS max_conn
                FROM (SELECT station_id, connector_id FROM w_sessions
                      UNION ALL SELECT station_id, NULL FROM w_station_minutes)
                GROUP BY 1
            ),
            c AS (SELECT station_id, max(connectors) AS connectors FROM w_connectors GROUP BY 1)
            SELECT ids.station_id,
                   CASE WHEN r.max_power_kw > 0 THEN r.max_power_kw * {R.REGISTRY_POWER_MARGIN}
                        ELSE {R.DEFAULT_CONNECTOR_MAX_KW} END * 1000.0 AS limit_w,
                   greatest(coalesce(c.connectors, 0), coalesce(ids.max_conn, 0), 1) AS connectors,
                   seen.first_seen
            FROM ids LEFT JOIN reg r USING (station_id) LEFT JOIN c USING (station_id)
            LEFT JOIN seen USING (station_id)"""
    )


def _session_hits(con: duckdb.DuckDBPyConnection, now: datetime, skew_minutes: float) -> None:
    """`q_hits_s`: (session_id, rule, measured_value, limit_value, unit) for every rule a session breaks."""
    latest = "greatest(plug_in, coalesce(plug_out, plug_in), coalesce(charging_end, plug_in))"
    future = _ts(now + timedelta(minutes=R.FUTURE_TOLERANCE_MINUTES))
    energy_limit = f"(limit_w * epoch(plug_out - plug_in) / 3600.0 + {R.ENERGY_MARGIN_WH})"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE q_hits_s AS
            WITH s AS (
                SELECT w.*, l.limit_w, l.first_seen FROM w_sessions w JOIN q_limit l USING (station_id)
            ),
            ov AS (
                SELECT session_id, ctx, plug_in,
                       max(plug_out) OVER (PARTITION BY station_id, connector_id ORDER BY plug_in, session_id
                                           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_out
                FROM (SELECT session_id, station_id, connector_id, plug_in, plug_out, false AS ctx
                      FROM w_sessions
                      UNION ALL
                      SELECT session_id, station_id, connector_id, plug_in, plug_out, true FROM q_context)
                WHERE connector_id IS NOT NULL
            ),
            dup AS (
                SELECT transaction_id, count(DISTINCT station_id) AS n FROM w_sessions
                WHERE transaction_id IS NOT NULL GROUP BY 1 HAVING count(DISTINCT station_id) > 1
            )
            SELECT session_id, 'negative_energy' AS rule, energy_wh / 1000.0 AS measured_value,
                   0.0 AS limit_value, 'kWh' AS unit
            FROM s WHERE energy_wh < 0
            UNION ALL
            SELECT session_id, 'power_above_connector_max', max_power_w / 1000.0, limit_w / 1000.0, 'kW'
            FROM s WHERE max_power_w > limit_w
            UNION ALL
            SELECT session_id, 'energy_above_power_time', energy_wh / 1000.0, {energy_limit} / 1000.0, 'kWh'
            FROM s WHERE plug_out IS NOT NULL AND energy_wh > {energy_limit}
            UNION ALL
            SELECT session_id, 'register_backwards', NULL, NULL, NULL
            FROM s WHERE list_contains(string_split(quality_flags, ','), 'register_backwards')
            UNION ALL
            SELECT session_id, 'overlapping_sessions', epoch(prev_out - plug_in) / 60.0,
                   {R.OVERLAP_TOLERANCE_MINUTES}, 'min'
            FROM ov WHERE NOT ctx AND prev_out - plug_in > INTERVAL {R.OVERLAP_TOLERANCE_MINUTES} MINUTE
            UNION ALL
            SELECT session_id, 'timestamp_after_build', epoch({latest} - {_ts(now)}) / 60.0,
                   {R.FUTURE_TOLERANCE_MINUTES}, 'min after build'
            FROM s WHERE {latest} > {future}
            UNION ALL
            SELECT session_id, 'timestamp_ahead_of_receipt', NULL, {float(skew_minutes)}, 'min'
            FROM s WHERE clock_corrected
            UNION ALL
            SELECT session_id, 'timestamp_before_first_boot',
                   epoch(TIMESTAMPTZ '{R.CLOCK_RESET_BEFORE}' - plug_in) / 86400.0,
                   0.0, 'days before the bound'
            FROM s WHERE plug_in < TIMESTAMPTZ '{R.CLOCK_RESET_BEFORE}'
            UNION ALL
            SELECT session_id, 'duplicate_transaction_id', dup.n::DOUBLE, 1.0, 'stations'
            FROM s JOIN dup USING (transaction_id)"""
    )


def _interval_hits(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """`q_hits_i`: (station_id, interval_start, rule, measured_value, limit_value, unit) per interval."""
    future = _ts(now + timedelta(minutes=R.FUTURE_TOLERANCE_MINUTES))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE q_minutes AS
            SELECT w.*, time_bucket(INTERVAL 15 MINUTE, w.minute) AS interval_start,
                   l.limit_w * l.connectors AS station_limit_w, l.first_seen
            FROM w_station_minutes w JOIN q_limit l USING (station_id);
            CREATE OR REPLACE TEMP TABLE q_hits_i AS
            SELECT station_id, interval_start, 'negative_energy' AS rule,
                   min(energy_wh) / 1000.0 AS measured_value,
                   0.0 AS limit_value, 'kWh' AS unit
            FROM q_minutes WHERE energy_wh < 0 GROUP BY ALL
            UNION ALL
            SELECT station_id, interval_start, 'power_above_connector_max', max(power_w) / 1000.0,
                   any_value(station_limit_w) / 1000.0, 'kW'
            FROM q_minutes WHERE power_w > station_limit_w GROUP BY station_id, interval_start
            UNION ALL
            SELECT station_id, interval_start, 'timestamp_after_build',
                   max(epoch(minute - {_ts(now)})) / 60.0, {R.FUTURE_TOLERANCE_MINUTES}, 'min after build'
            FROM q_minutes WHERE minute > {future} GROUP BY station_id, interval_start
            UNION ALL
            SELECT station_id, interval_start, 'timestamp_before_first_boot',
                   max(epoch(TIMESTAMPTZ '{R.CLOCK_RESET_BEFORE}' - minute)) / 86400.0, 0.0,
                   'days before the bound'
            FROM q_minutes WHERE minute < TIMESTAMPTZ '{R.CLOCK_RESET_BEFORE}'
            GROUP BY station_id, interval_start"""
    )


def _register_overrides(con: duckdb.DuckDBPyConnection, overrides: dict[tuple[str, str], Override]) -> None:
    rows = list(overrides.values())
    con.register(
        "q_overrides",
        pa.table(
            {
                "station_id": pa.array([o.station_id for o in rows], pa.string()),
                "rule": pa.array([o.rule for o in rows], pa.string()),
                "note": pa.array(
                    [f"override: {o.reason} (reviewed by {o.reviewed_by}, {o.reviewed_on})" for o in rows],
                    pa.string(),
                ),
            }
        ),
    )


def _decisions(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """`q_session_dec` and `q_interval_dec`: the action per record and rule, after overrides and the
    one-step propagation between sessions and intervals."""
    open_end = _ts(now)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE q_own_s AS
            SELECT h.*, w.station_id, w.date, w.energy_wh,
                   CASE WHEN o.rule IS NOT NULL THEN 'overridden' ELSE a.action END AS action,
                   coalesce(o.note, '') AS note
            FROM q_hits_s h JOIN w_sessions w USING (session_id) JOIN {_actions_sql()} USING (rule)
            LEFT JOIN q_overrides o ON o.station_id = w.station_id AND o.rule = h.rule;
            CREATE OR REPLACE TEMP TABLE q_own_i AS
            SELECT h.*, CASE WHEN o.rule IS NOT NULL THEN 'overridden' ELSE a.action END AS action,
                   coalesce(o.note, '') AS note
            FROM q_hits_i h JOIN {_actions_sql()} USING (rule)
            LEFT JOIN q_overrides o ON o.station_id = h.station_id AND o.rule = h.rule;
            -- intervals a withheld session spans; sessions spanning a withheld interval
            CREATE OR REPLACE TEMP TABLE q_from_s AS
            SELECT DISTINCT m.station_id, m.interval_start, s.rule, s.measured_value, s.limit_value, s.unit,
                   'withheld' AS action, 'energy of a session withheld for this rule' AS note
            FROM q_own_s s JOIN w_sessions w USING (session_id)
            JOIN q_minutes m ON m.station_id = w.station_id AND m.minute >= date_trunc('minute', w.plug_in)
                 AND m.minute <= coalesce(w.plug_out, {open_end})
            WHERE s.action = 'withheld';
            CREATE OR REPLACE TEMP TABLE q_from_i AS
            SELECT DISTINCT w.session_id, i.rule, i.measured_value, i.limit_value, i.unit, w.station_id,
                   w.date, w.energy_wh, 'withheld' AS action,
                   'session spanning a withheld 15-minute interval of its station' AS note
            FROM q_own_i i JOIN w_sessions w ON w.station_id = i.station_id
                 AND w.plug_in < i.interval_start + INTERVAL 15 MINUTE
                 AND coalesce(w.plug_out, {open_end}) >= i.interval_start
            WHERE i.action = 'withheld';
            CREATE OR REPLACE TEMP TABLE q_session_dec AS
            SELECT session_id, rule, measured_value, limit_value, unit, station_id, date, energy_wh, action,
                   note
            FROM q_own_s
            UNION ALL
            SELECT f.session_id, f.rule, f.measured_value, f.limit_value, f.unit, f.station_id, f.date,
                   f.energy_wh, f.action, f.note
            FROM q_from_i f ANTI JOIN (SELECT * FROM q_own_s WHERE action = 'withheld') o USING (session_id);
            CREATE OR REPLACE TEMP TABLE q_interval_dec AS
            SELECT station_id, interval_start, rule, measured_value, limit_value, unit, action, note
            FROM q_own_i
            UNION ALL
            SELECT f.* FROM q_from_s f
            ANTI JOIN (SELECT * FROM q_own_i WHERE action = 'withheld') o
                USING (station_id, interval_start)"""
    )


def _issues(con: duckdb.DuckDBPyConnection, record_key: bytes) -> pa.Table:
    rows = con.sql(
        """SELECT 'session' AS record, session_id AS record_id, date, station_id,
                  NULL::TIMESTAMPTZ AS interval_start, rule, action, measured_value, limit_value, unit,
                  note AS detail, energy_wh
           FROM q_session_dec
           UNION ALL
           SELECT 'station_15min', NULL, d.date, i.station_id, i.interval_start, i.rule, i.action,
                  i.measured_value, i.limit_value, i.unit, i.note, d.wh
           FROM q_interval_dec i JOIN (
               SELECT station_id, interval_start, min(date) AS date, sum(energy_wh) AS wh
               FROM q_minutes GROUP BY ALL
           ) d USING (station_id, interval_start)"""
    ).to_arrow_table()
    ids = rows["record_id"].to_pylist()
    for i, (rec, sid, start) in enumerate(
        zip(
            rows["record"].to_pylist(),
            rows["station_id"].to_pylist(),
            rows["interval_start"].to_pylist(),
            strict=True,
        )
    ):
        if rec == "station_15min":
            # Keyed, so that an id cannot be matched against guessed station ids and times.
            msg = f"station_15min\x00{sid}\x00{start.isoformat()}".encode()
            ids[i] = letters(hmac.new(record_key, msg, hashlib.sha256).digest(), 24)
    rows = rows.set_column(rows.schema.get_field_index("record_id"), "record_id", pa.array(ids, pa.string()))
    return pa.Table.from_arrays([rows[f.name].cast(f.type) for f in ISSUE_SCHEMA], schema=ISSUE_SCHEMA)


def _apply(con: duckdb.DuckDBPyConnection) -> None:
    """Replace `w_sessions` and `w_station_minutes` by what may be published (flags added)."""
    flags = ", ".join(f"'{f}'" for f in _EXTRA_FLAGS)
    kept = con.sql(
        f"""WITH add AS (
                SELECT session_id, list(DISTINCT rule) AS extra FROM q_session_dec
                WHERE action = 'flagged' AND rule IN ({flags}) GROUP BY 1
            )
            SELECT w.* REPLACE (
                CASE WHEN add.extra IS NULL THEN w.quality_flags
                     ELSE array_to_string(list_sort(list_distinct(list_filter(
                         list_concat(string_split(w.quality_flags, ','), add.extra),
                         lambda x: x <> ''))), ',')
                END AS quality_flags)
            FROM w_sessions w LEFT JOIN add USING (session_id)
            WHERE session_id NOT IN (SELECT session_id FROM q_session_dec WHERE action = 'withheld')"""
    ).to_arrow_table()
    minutes = con.sql(
        """SELECT w.* FROM w_station_minutes w
           WHERE (w.station_id, time_bucket(INTERVAL 15 MINUTE, w.minute)) NOT IN
                 (SELECT (station_id, interval_start) FROM q_interval_dec WHERE action = 'withheld')"""
    ).to_arrow_table()
    con.register("w_sessions", kept)
    con.register("w_station_minutes", minutes)


def _withheld_totals(issues: pa.Table) -> tuple[dict[tuple[str, date], int], dict[tuple[str, date], float]]:
    sessions: dict[tuple[str, date], set[str]] = {}
    energy: dict[tuple[str, date], float] = {}
    seen_intervals: set[str] = set()
    for r in issues.to_pylist():
        if r["action"] != "withheld":
            continue
        key = (r["station_id"], r["date"])
        if r["record"] == "session":
            sessions.setdefault(key, set()).add(r["record_id"])
        elif r["record_id"] not in seen_intervals:
            seen_intervals.add(r["record_id"])
            energy[key] = energy.get(key, 0.0) + (r["energy_wh"] or 0.0) / 1000.0
    return {k: len(v) for k, v in sessions.items()}, energy


def decide(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    overrides: dict[tuple[str, str], Override],
    context: pa.Table | None,
    skew_minutes: float,
    record_key: bytes,
) -> Quarantine:
    """Decide every work row once and replace `w_sessions` / `w_station_minutes` accordingly.
    `context`: work sessions of the days just before the built ones (overlap rule only)."""
    con.register("q_context", context if context is not None else SESSION_SCHEMA.empty_table())
    _register_overrides(con, overrides)
    _limits(con)
    _session_hits(con, now, skew_minutes)
    _interval_hits(con, now)
    _decisions(con, now)
    issues = _issues(con, record_key)
    _apply(con)
    sessions, energy = _withheld_totals(issues)
    return Quarantine(issues, sessions, energy)
