"""Published totals against a recount from the raw zone: a blocking release check.

The recount is deliberately simple and shares no code with the transforms that built the work tables
(only the raw contract's event-time rule, clock offsets included): if a transform, a work table or the
publish step goes wrong, the two disagree.

- **Metered energy per public station and local day**: the energy register samples that name their
  connector (`Energy.Active.Import.Register`, Outlet, no phase), per connector in time order, each
  sample adding its increase over the previous one; a drop below half the previous reading is a
  register reset whose reading counts in full; increases faster than 400 kW (+ 1 kWh) count nothing.
  Compared with the day's sum of `station_energy_15min`, within ENERGY_TOLERANCE_KWH or
  ENERGY_TOLERANCE_SHARE, whichever is larger (the recount does not treat out-of-order readings or
  samples that name only their transaction, which the published series does).
- **Sessions per local day** (all public stations together): distinct transaction starts in the raw
  zone (1.6 StartTransaction, 2.0.1 TransactionEvent Started) minus the documented exclusions (a
  retried 1.6 start that got a second transaction id is one session, flag `retried_start`), against
  the day's sum of `station_usage_daily.sessions`, within SESSION_TOLERANCE sessions or
  SESSION_TOLERANCE_SHARE of the starts, whichever is larger (a session belongs to the day of its
  plug-in, which can precede its transaction start across midnight).

Only the dates whose published partitions are added or changed in this release are recounted:
unchanged partitions were recounted when they were published, and this keeps the check's cost
proportional to what changed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from ocpp_opendata.settings import Settings
from pipelines.checks import CheckReport
from pipelines.partitions import day_bounds
from pipelines.quality.quarantine import Quarantine
from pipelines.raw_index import RawIndex
from pipelines.raw_reader import connector_sql, event_time_sql, shifted_source
from pipelines.transforms.clock import has_offsets

CHECK_NAME = "totals_reconcile_with_raw"
ENERGY_TOLERANCE_KWH = 1.0
ENERGY_TOLERANCE_SHARE = 0.02
SESSION_TOLERANCE = 1
SESSION_TOLERANCE_SHARE = 0.01
METER_LOOKBACK = timedelta(hours=2)
MAX_W = 400_000.0


def _source(files: list[Path], shifted: bool) -> str:
    """The files, joined with their connections' clock offsets when `shifted` (`clock_offsets`,
    registered by check_totals_reconcile), as the raw reader reads them."""
    if not files:
        return ""
    quoted = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    source = f"read_parquet([{quoted}], union_by_name = true, hive_partitioning = false)"
    return shifted_source(source) if shifted else source


def _window(start: datetime, end: datetime, table: str, skew: float, shifted: bool) -> str:
    ev = event_time_sql(table, skew, shifted)
    return f"{ev} >= TIMESTAMPTZ '{start.isoformat()}' AND {ev} < TIMESTAMPTZ '{end.isoformat()}'"


def raw_energy_kwh(
    con: duckdb.DuckDBPyConnection, index: RawIndex, day: date, tz: str, skew: float, max_session_days: int
) -> dict[str, float]:
    """Station → metered kWh on the local day, recounted from raw meter values."""
    start, end = day_bounds(day, tz)
    shifted = has_offsets(con)
    src = _source(index.files_overlapping("meter_values", start - METER_LOOKBACK, end), shifted)
    if not src:
        return {}
    ev = event_time_sql("meter_values", skew, shifted)
    # A sample that names only its transaction takes the connector its transaction names elsewhere.
    tx_from = start - timedelta(days=max_session_days + 1)
    tx_src = _source(index.files_overlapping("transaction_events", tx_from, end), shifted)
    tx_conn = (
        f"SELECT charge_point_id AS cp, transaction_id AS tx, {connector_sql()} AS conn FROM {tx_src}"
        if tx_src
        else "SELECT NULL::VARCHAR AS cp, NULL::VARCHAR AS tx, NULL::INTEGER AS conn WHERE false"
    )
    # Read once into a temp table: the connector lookup and the series both use these rows.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE recount_m AS
            SELECT charge_point_id AS cp, {connector_sql()} AS conn, transaction_id AS tx,
                   {ev} AS t, value
            FROM {src}
            WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL
              AND coalesce(location, 'Outlet') = 'Outlet' AND value IS NOT NULL
              AND {_window(start - METER_LOOKBACK, end, "meter_values", skew, shifted)}"""
    )
    rows = con.execute(
        f"""WITH m AS (SELECT * FROM recount_m),
            txc AS (
                SELECT cp, tx, min(conn) AS conn
                FROM ({tx_conn} UNION ALL SELECT cp, tx, conn FROM m)
                WHERE tx IS NOT NULL AND conn IS NOT NULL GROUP BY cp, tx
            ),
            s AS (
                SELECT DISTINCT m.cp, m.t, m.value,
                       coalesce(CAST(coalesce(m.conn, txc.conn) AS VARCHAR), 'tx:' || m.tx) AS conn
                FROM m LEFT JOIN txc USING (cp, tx)
            ),
            d AS (
                SELECT *, lag(value) OVER w AS prev, epoch(t - lag(t) OVER w) AS dt
                FROM s WINDOW w AS (PARTITION BY cp, conn ORDER BY t, value)
            ),
            i AS (
                SELECT cp, t,
                       CASE WHEN prev IS NULL THEN 0.0
                            WHEN value >= prev THEN value - prev
                            WHEN value < prev / 2 THEN value
                            ELSE 0.0 END AS inc,
                       {MAX_W} * greatest(dt, 1) / 3600 + 1000 AS cap
                FROM d
            )
            SELECT cp, sum(CASE WHEN inc <= cap THEN inc ELSE 0 END) / 1000.0
            FROM i WHERE t >= TIMESTAMPTZ '{start.isoformat()}' GROUP BY cp"""
    ).fetchall()
    return {cp: float(kwh) for cp, kwh in rows}


def raw_session_starts(
    con: duckdb.DuckDBPyConnection, index: RawIndex, day: date, tz: str, skew: float, stations: set[str]
) -> int:
    """Distinct transactions started on the local day at the given stations, from raw events."""
    start, end = day_bounds(day, tz)
    shifted = has_offsets(con)
    src = _source(index.files_overlapping("transaction_events", start, end), shifted)
    if not src or not stations:
        return 0
    rows = con.execute(
        f"""SELECT charge_point_id, count(DISTINCT transaction_id) FROM {src}
            WHERE (source_action = 'StartTransaction' OR event_type = 'Started')
              AND transaction_id IS NOT NULL
              AND {_window(start, end, "transaction_events", skew, shifted)}
            GROUP BY charge_point_id"""
    ).fetchall()
    return sum(int(n) for cp, n in rows if cp in stations)


def check_totals_reconcile(
    tables: dict[str, pa.Table],
    energy_days: list[date],
    session_days: list[date],
    public: set[str],
    index: RawIndex,
    settings: Settings,
    withheld: Quarantine | None = None,
    retried_starts: dict[date, int] | None = None,
) -> CheckReport:
    """Blocking: published energy (of `energy_days`) and session totals (of `session_days`), plus what
    the quality rules withheld (`withheld`, listed in quality_issues), agree with the raw recount, less
    the public sessions per day that are retried starts (`retried_starts`)."""
    days = sorted(set(energy_days) | set(session_days))
    if not days:
        return CheckReport(CHECK_NAME, True, "no added or changed partitions to recount")
    energy: dict[tuple[str, date], float] = defaultdict(float)
    e15 = tables["station_energy_15min"]
    for d, sid, kwh in zip(
        e15["date"].to_pylist(), e15["station_id"].to_pylist(), e15["energy_kwh"].to_pylist(), strict=True
    ):
        energy[(sid, d)] += kwh
    sessions: dict[date, int] = defaultdict(int)
    daily = tables["station_usage_daily"]
    for d, n in zip(daily["date"].to_pylist(), daily["sessions"].to_pylist(), strict=True):
        sessions[d] += n
    if withheld is not None:
        for (sid, d), kwh in withheld.withheld_energy_kwh.items():
            energy[(sid, d)] += kwh
        for (sid, d), n in withheld.withheld_sessions.items():
            sessions[d] += n if sid in public else 0
    retried: dict[date, int] = defaultdict(int, retried_starts or {})
    problems: list[str] = []
    tz, skew = settings.timezone, float(settings.clock_skew_minutes)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'; SET threads = 2")
        index.register_clock_offsets(con)
        for day in days:
            if day in energy_days:
                raw = raw_energy_kwh(con, index, day, tz, skew, settings.max_session_days)
                for sid in sorted(public & (set(raw) | {s for s, d in energy if d == day})):
                    got, want = energy.get((sid, day), 0.0), raw.get(sid, 0.0)
                    if abs(got - want) > max(ENERGY_TOLERANCE_KWH, ENERGY_TOLERANCE_SHARE * abs(want)):
                        problems.append(f"{day} {sid}: published {got:.3f} kWh, raw recount {want:.3f} kWh")
            if day in session_days:
                starts = raw_session_starts(con, index, day, tz, skew, public)
                expected = starts - retried[day]
                if abs(sessions[day] - expected) > max(SESSION_TOLERANCE, SESSION_TOLERANCE_SHARE * starts):
                    problems.append(
                        f"{day}: {sessions[day]} published sessions, raw recount {starts} starts "
                        f"- {retried[day]} retried = {expected}"
                    )
    finally:
        con.close()
    detail = "; ".join(problems[:5]) or f"{len(days)} dates recounted"
    return CheckReport(CHECK_NAME, not problems, detail, [d.isoformat() for d in sorted(days)])
