"""Published datasets from the private work zone: privacy rules applied here, exact values in.

- Non-public stations (registry access other than 'public', or not in the registry) never appear by
  id or coordinates; they count only in area totals where, together, they had >= k distinct users
  that day.
- Session rows keep station, connector and pseudonym only where the station had >= k distinct users
  in the pseudonym period; otherwise the station is replaced by its area. The pseudonym is also
  withheld on station-days whose distinct-user count is suppressed, so that the session rows never
  rebuild a suppressed cell.
- Session times are rounded (durations from the rounded times), energy and power too; aggregates
  use exact values. Distinct-user counts below k are suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import TABLES
from ocpp_opendata.registry import RegistryStation, load_registry
from ocpp_opendata.settings import Settings
from pipelines.published_schema import DATASETS
from pipelines.quality.build import quality_issues, quarantine_work
from pipelines.quality.quarantine import Quarantine
from pipelines.reliability.build import build_reliability
from pipelines.storage import read_work, work_dates, work_path
from pipelines.transforms.availability import AVAILABILITY_SCHEMA
from pipelines.transforms.energy import MINUTES_SCHEMA
from pipelines.transforms.sessions import SESSION_SCHEMA


@dataclass(frozen=True)
class BuiltDatasets:
    tables: dict[str, pa.Table]
    registry: dict[str, RegistryStation]
    quarantine: Quarantine | None = None
    # Public sessions per local day that are a retried 1.6 start (flag `retried_start`), for the recount
    # against raw: charging_sessions does not hold every public session (privacy), so it cannot tell.
    retried_starts: dict[date, int] = field(default_factory=dict)
    # Public sessions at stations with fewer than k users in their period: counted, never a row.
    hidden_sessions: set[str] = field(default_factory=set)


def _registry_table(registry: dict[str, RegistryStation]) -> pa.Table:
    rows = sorted(registry.values(), key=lambda s: s.station_id)
    return pa.table(
        {
            "station_id": pa.array([s.station_id for s in rows], pa.string()),
            "name": pa.array([s.name for s in rows], pa.string()),
            "latitude": pa.array([s.latitude for s in rows], pa.float64()),
            "longitude": pa.array([s.longitude for s in rows], pa.float64()),
            "area": pa.array([s.area for s in rows], pa.string()),
            "max_power_kw": pa.array([s.max_power_kw for s in rows], pa.float64()),
            "access": pa.array([s.access for s in rows], pa.string()),
        }
    )


def _raw_station_facts(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """`boots` (last vendor/model per station) and `seen` (first/last receipt) from the raw zone."""
    from pipelines.raw_index import RawIndex
    from pipelines.raw_reader import register_view

    # Through the index, so that a remote store's files are listed there and read from the cache.
    index = RawIndex.of(settings)
    index.refresh()

    def files(table: str) -> list[Path]:
        return index.all_files(table)

    cols = (
        "received_at",
        "charge_point_id",
        "connection_id",
        "message_id",
        "ocpp_version",
        "vendor",
        "model",
    )
    register_view(
        con, "boot_notifications", files("boot_notifications"), None, None, skew_minutes=5, columns=cols
    )
    register_view(
        con, "connections", files("connections"), None, None, skew_minutes=5,
        columns=("received_at", "event", "charge_point_id"),
    )  # fmt: skip
    con.execute(
        """CREATE OR REPLACE TEMP TABLE boots AS
           SELECT charge_point_id AS station_id,
                  arg_max(vendor, received_at) AS vendor, arg_max(model, received_at) AS model,
                  arg_max(ocpp_version, received_at) AS ocpp_version
           FROM boot_notifications GROUP BY charge_point_id"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE seen AS
           SELECT charge_point_id AS station_id, min(received_at) AS first_seen, max(received_at) AS last_seen
           FROM connections WHERE charge_point_id IS NOT NULL GROUP BY charge_point_id"""
    )


def _work(
    con: duckdb.DuckDBPyConnection, data_dir: Path, name: str, schema: pa.Schema, days: list[date] | None
) -> None:
    tbl = read_work(data_dir, name, days) or pa.Table.from_batches([], schema=schema)
    con.register(f"w_{name}", tbl)


def _connectors(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    """`w_connectors`: connectors per station over every work day (the stations dataset is never
    partial, even when only some days are rebuilt)."""
    tables = [
        pq.read_table(work_path(data_dir, "availability", d), columns=["station_id", "connectors"])
        for d in work_dates(data_dir, "availability")
    ]
    empty = pa.table({"station_id": pa.array([], pa.string()), "connectors": pa.array([], pa.int32())})
    con.register("w_connectors", pa.concat_tables(tables) if tables else empty)


def build_datasets(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    days: list[date] | None = None,
    now: datetime | None = None,
) -> BuiltDatasets:
    """Every dataset from the work zone, or from the given work days only (partitioned datasets then
    hold just the partitions those days determine in full; `stations` is always complete)."""
    data_dir = settings.data_dir
    registry = load_registry(settings.registry_path, settings.areas_path)
    con.register("reg", _registry_table(registry))
    _work(con, data_dir, "sessions", SESSION_SCHEMA, days)
    _work(con, data_dir, "availability", AVAILABILITY_SCHEMA, days)
    _work(con, data_dir, "station_minutes", MINUTES_SCHEMA, days)
    _connectors(con, data_dir)
    _raw_station_facts(con, settings)
    # Quality decisions, once per work row: every query below reads the rows they let through.
    quarantine = quarantine_work(con, settings, days, now)
    k = int(settings.privacy_k)
    rm, re_kwh, rp = (
        int(settings.round_minutes),
        float(settings.round_energy_kwh),
        float(settings.round_power_kw),
    )
    period = {"month": "strftime(date, '%Y-%m')", "quarter": "year(date) || '-Q' || quarter(date)",
              "year": "CAST(year(date) AS VARCHAR)"}[settings.pseudonym_period]  # fmt: skip
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE s AS
            SELECT w.*, coalesce(r.area, 'unknown') AS area, coalesce(r.access = 'public', false) AS public,
                   {period} AS period
            FROM w_sessions w LEFT JOIN reg r USING (station_id)"""
    )
    # Stations (and station-days) with enough distinct users to show their id / pseudonyms.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE station_period AS
            SELECT station_id, period, count(DISTINCT user_pseudonym) >= {k} AS shown
            FROM s GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE station_day_users AS
            SELECT station_id, date, count(DISTINCT user_pseudonym) AS users FROM s GROUP BY ALL"""
    )
    # Non-public stations count in an area-day only when, together, they had >= k distinct users.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE private_area_day AS
            SELECT area, date FROM s WHERE NOT public
            GROUP BY ALL HAVING count(DISTINCT user_key) >= {k}"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE station_area AS
           SELECT DISTINCT x.station_id, coalesce(r.area, 'unknown') AS area,
                  coalesce(r.access = 'public', false) AS public
           FROM (SELECT station_id FROM w_availability UNION SELECT station_id FROM w_station_minutes
                 UNION SELECT station_id FROM w_sessions) x LEFT JOIN reg r USING (station_id)"""
    )
    tables: dict[str, pa.Table] = {}
    q = {}
    q["stations"] = """
        SELECT r.station_id, r.name, r.latitude, r.longitude, r.area, r.max_power_kw, r.access,
               c.connectors::INTEGER AS connectors, b.ocpp_version, b.vendor, b.model,
               seen.first_seen, seen.last_seen
        FROM reg r
        LEFT JOIN (SELECT station_id, max(connectors) AS connectors FROM w_connectors GROUP BY 1) c
            USING (station_id)
        LEFT JOIN boots b USING (station_id) LEFT JOIN seen USING (station_id)
        WHERE r.access = 'public'"""
    rs = rm * 60
    rt = "to_timestamp(round(epoch({c}) / {rs}) * {rs})"
    q["charging_sessions"] = f"""
        WITH x AS (
            SELECT s.*, sp.shown,
                   sp.shown AND du.users >= {k} AS pseudo_shown,
                   {rt.format(c="plug_in", rs=rs)} AS r_in,
                   {rt.format(c="charging_start", rs=rs)} AS r_cs,
                   {rt.format(c="charging_end", rs=rs)} AS r_ce,
                   {rt.format(c="plug_out", rs=rs)} AS r_out
            FROM s JOIN station_period sp USING (station_id, period)
            JOIN station_day_users du USING (station_id, date)
            -- A session at a station with fewer than k users in the period has no row: published with
            -- its area only, its station's own 15-minute and daily series tie it back to the station
            -- (issue 20, item 3). It counts in that station's and area's totals like any other.
            WHERE s.public AND sp.shown
        )
        SELECT date, session_id,
               station_id, connector_id,
               area, r_in AS plug_in, r_cs AS charging_start, r_ce AS charging_end, r_out AS plug_out,
               epoch(r_out - r_in) / 60.0 AS connected_minutes,
               epoch(r_ce - r_cs) / 60.0 AS charging_minutes,
               epoch(r_out - r_in) / 60.0 - coalesce(epoch(r_ce - r_cs) / 60.0, 0) AS idle_minutes,
               round(energy_wh / 1000.0 / {re_kwh}) * {re_kwh} AS energy_kwh,
               round(max_power_w / 1000.0 / {rp}) * {rp} AS max_power_kw,
               stop_reason,
               CASE WHEN pseudo_shown THEN user_pseudonym END AS user_pseudonym,
               energy_source, clock_corrected, left_open, quality_flags
        FROM x"""
    # Energies are sums of many floats, whose last bits differ with the order a parallel sum takes:
    # rounded to 1 Wh / 1000, so that a rebuilt partition keeps its bytes when nothing changed.
    q["station_energy_15min"] = """
        WITH b AS (
            SELECT date, station_id, time_bucket(INTERVAL 15 MINUTE, minute) AS interval_start,
                   sum(energy_wh) AS wh, max(power_w) AS peak_w
            FROM w_station_minutes GROUP BY ALL
        )
        SELECT b.date, b.station_id, sa.area, b.interval_start, round(b.wh / 1000.0, 6) AS energy_kwh,
               round(b.wh / 1000.0 / 0.25, 6) AS average_power_kw, b.peak_w / 1000.0 AS peak_power_kw
        FROM b JOIN station_area sa USING (station_id) WHERE sa.public"""
    # Stations are counted per interval from their own rows: counting them by unnesting the per-minute
    # station lists multiplied every minute's energy by the number of stations (issue 20, item 5).
    q["area_peak_15min"] = """
        WITH w AS (
            SELECT w.date, sa.area, w.minute, w.station_id, w.power_w, w.energy_wh
            FROM w_station_minutes w JOIN station_area sa USING (station_id)
            LEFT JOIN private_area_day p ON p.area = sa.area AND p.date = w.date
            WHERE sa.public OR p.area IS NOT NULL
        ),
        m AS (SELECT date, area, minute, sum(power_w) AS w FROM w GROUP BY ALL),
        e AS (
            SELECT date, area, time_bucket(INTERVAL 15 MINUTE, minute) AS interval_start,
                   count(DISTINCT station_id)::BIGINT AS stations, sum(energy_wh) AS wh
            FROM w GROUP BY ALL
        ),
        p AS (
            SELECT date, area, time_bucket(INTERVAL 15 MINUTE, minute) AS interval_start, max(w) AS peak_w
            FROM m GROUP BY ALL
        )
        SELECT date, area, interval_start, e.stations, round(e.wh / 1000.0, 6) AS energy_kwh,
               round(e.wh / 1000.0 / 0.25, 6) AS average_power_kw,
               round(p.peak_w / 1000.0, 6) AS peak_power_kw
        FROM e JOIN p USING (date, area, interval_start)"""
    q["station_availability_hourly"] = """
        SELECT a.date, a.station_id, sa.area, a.hour_start, a.connectors, a.available_minutes,
               a.occupied_minutes, a.charging_minutes, a.reserved_minutes, a.unavailable_minutes,
               a.faulted_minutes, a.offline_minutes, a.unknown_minutes, a.all_busy_minutes
        FROM w_availability a JOIN station_area sa USING (station_id) WHERE sa.public"""
    avail_cols = """
        sum(occupied_minutes) / 60.0 AS occupied_hours, sum(charging_minutes) / 60.0 AS charging_hours,
        (sum(occupied_minutes) - sum(charging_minutes)) / 60.0 AS idle_hours,
        sum(available_minutes) / 60.0 AS available_hours, sum(offline_minutes) / 60.0 AS offline_hours,
        (sum(faulted_minutes) + sum(unavailable_minutes)) / 60.0 AS out_of_order_hours,
        sum(occupied_minutes)
            / nullif(sum(available_minutes) + sum(occupied_minutes) + sum(reserved_minutes), 0)
            AS utilisation,
        sum(all_busy_minutes) AS all_busy_minutes,
        1 - (sum(offline_minutes) + sum(unknown_minutes))
            / nullif(sum(available_minutes + occupied_minutes + reserved_minutes + unavailable_minutes
                         + faulted_minutes + offline_minutes + unknown_minutes), 0) AS completeness"""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE avail_day AS
            SELECT station_id, date, {avail_cols} FROM w_availability GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE avail_month AS
            SELECT station_id, date_trunc('month', date)::DATE AS date, count(DISTINCT date)::INTEGER AS days,
                   {avail_cols} FROM w_availability GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE sess_day AS
            SELECT station_id, date, count(*)::BIGINT AS sessions, sum(energy_wh) / 1000.0 AS energy_kwh,
                   count(DISTINCT user_pseudonym) AS users FROM s GROUP BY ALL;
            CREATE OR REPLACE TEMP TABLE sess_month AS
            SELECT station_id, date_trunc('month', date)::DATE AS date, count(*)::BIGINT AS sessions,
                   sum(energy_wh) / 1000.0 AS energy_kwh, count(DISTINCT user_pseudonym) AS users,
                   count(DISTINCT date)::INTEGER AS days
            FROM s GROUP BY ALL"""
    )
    metric_select = f"""
        coalesce(se.sessions, 0)::BIGINT AS sessions, coalesce(se.energy_kwh, 0.0) AS energy_kwh,
        coalesce(av.occupied_hours, 0.0) AS occupied_hours,
        coalesce(av.charging_hours, 0.0) AS charging_hours,
        coalesce(av.idle_hours, 0.0) AS idle_hours, coalesce(av.available_hours, 0.0) AS available_hours,
        coalesce(av.offline_hours, 0.0) AS offline_hours,
        coalesce(av.out_of_order_hours, 0.0) AS out_of_order_hours,
        av.utilisation, coalesce(av.all_busy_minutes, 0.0) AS all_busy_minutes,
        CASE WHEN coalesce(se.users, 0) >= {k} THEN se.users::BIGINT END AS distinct_users,
        coalesce(se.users, 0) < {k} AS distinct_users_suppressed,
        coalesce(av.completeness, 0.0) AS completeness"""
    q["station_usage_daily"] = f"""
        SELECT date, station_id, sa.area, {metric_select}
        FROM avail_day av FULL JOIN sess_day se USING (station_id, date)
        JOIN station_area sa USING (station_id) WHERE sa.public"""
    q["station_usage_monthly"] = f"""
        SELECT date, station_id, sa.area,
               greatest(coalesce(av.days, 0), coalesce(se.days, 0))::INTEGER AS days, {metric_select}
        FROM avail_month av FULL JOIN sess_month se USING (station_id, date)
        JOIN station_area sa USING (station_id) WHERE sa.public"""
    q["area_usage_daily"] = f"""
        WITH inc AS (
            SELECT DISTINCT d.station_id, d.date, sa.area
            FROM (SELECT station_id, date FROM w_availability UNION SELECT station_id, date FROM s) d
            JOIN station_area sa USING (station_id)
            LEFT JOIN private_area_day p ON p.area = sa.area AND p.date = d.date
            WHERE sa.public OR p.area IS NOT NULL
        ),
        av AS (
            SELECT inc.area, inc.date, {avail_cols}
            FROM w_availability a JOIN inc USING (station_id, date) GROUP BY ALL
        ),
        se AS (
            SELECT inc.area, inc.date, count(*)::BIGINT AS sessions, sum(s.energy_wh) / 1000.0 AS energy_kwh,
                   count(DISTINCT s.user_key) AS users
            FROM s JOIN inc USING (station_id, date) GROUP BY ALL
        ),
        n AS (SELECT area, date, count(DISTINCT station_id)::BIGINT AS stations FROM inc GROUP BY ALL)
        SELECT date, area, n.stations, {metric_select}
        FROM n LEFT JOIN av USING (area, date) LEFT JOIN se USING (area, date)"""
    for name, sql in q.items():
        ds = DATASETS[name]
        rel = con.sql(sql).to_arrow_table()
        tables[name] = _conform(rel, ds.schema)
    issues = quality_issues(con, settings, quarantine, period)
    tables["quality_issues"] = _conform(issues, DATASETS["quality_issues"].schema)
    for name, tbl in build_reliability(settings, con, registry).items():
        tables[name] = _conform(tbl, DATASETS[name].schema)
    retried = con.execute(
        """SELECT date, count(*) FROM s
           WHERE public AND list_contains(string_split(quality_flags, ','), 'retried_start') GROUP BY date"""
    ).fetchall()
    hidden = con.execute(
        """SELECT session_id FROM s JOIN station_period sp USING (station_id, period)
           WHERE public AND NOT sp.shown"""
    ).fetchall()
    retried_by_day = {d: int(n) for d, n in retried}
    return BuiltDatasets(tables, registry, quarantine, retried_by_day, {h for (h,) in hidden})


def _conform(tbl: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        col = tbl[f.name]
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", tz="UTC"))
        cols.append(col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def partitions_of(table: pa.Table) -> list[date]:
    if "date" not in table.column_names:
        return []
    return sorted(set(table["date"].to_pylist()))


_ = TABLES
