"""SQL for /v1/usage and /v1/availability: published tables grouped by station or area and local period.

Sources, so that every figure comes from a published table and privacy rules hold:
- day: station_usage_daily / area_usage_daily as published (distinct users included, suppressed as published);
- month: station_usage_monthly as published; per area, area_usage_daily summed (no distinct users);
- week: the daily tables summed per ISO week (Monday first); distinct users do not add across days;
- hour: station_availability_hourly (occupancy, all-busy minutes), station_energy_15min (metered energy) and
  charging_sessions (plug-ins of the sessions that have a row: stations with at least k users in the
  pseudonym period; the daily and monthly session counts include every session).
Hours are the published local hours (`hour_start`, stored in UTC); the default zone has whole-hour offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from api.query import Where

SUPPRESSED_NOTE = "suppressed for privacy (fewer than k users, or hidden so that no total reveals one)"
DISTINCT_USERS_NOTE = {
    "hour": "distinct users are published only per day and month (they do not add up across periods)",
    "week": "distinct users are published only per day and month (they do not add up across days)",
    "area_month": "no monthly per-area table is published, and distinct users do not add up across days",
}


class GroupBy(StrEnum):
    station = "station"
    area = "area"


class Period(StrEnum):
    hour = "hour"
    day = "day"
    week = "week"
    month = "month"


@dataclass(frozen=True)
class Plan:
    sql: str
    params: list[object]
    note: str | None


def _key(group: GroupBy) -> str:
    return "station_id" if group is GroupBy.station else "area"


def _period_expr(period: Period) -> str:
    if period is Period.week:
        return "CAST(date_trunc('week', date) AS DATE)"
    if period is Period.month:
        return "CAST(date_trunc('month', date) AS DATE)"
    return "date"


WhereFor = Callable[[str, str], Where]


def usage_plan(group: GroupBy, period: Period, where_for: WhereFor) -> Plan:
    """`where_for(table, time column)` gives each source table's filters."""
    key = _key(group)
    if period is Period.hour:
        return _usage_hourly(key, where_for)
    if period is Period.day or (period is Period.month and group is GroupBy.station):
        table = {
            (Period.day, GroupBy.station): "station_usage_daily",
            (Period.day, GroupBy.area): "area_usage_daily",
            (Period.month, GroupBy.station): "station_usage_monthly",
        }[(period, group)]
        where = where_for(table, "date")
        sql = f"""
            SELECT {key}, date AS period_start, sessions, energy_kwh, occupied_hours, charging_hours,
                   idle_hours, utilisation, all_busy_minutes, completeness, distinct_users,
                   CASE WHEN distinct_users_suppressed THEN '{SUPPRESSED_NOTE}' END AS distinct_users_note
            FROM {table}{where.sql}"""
        return Plan(sql, list(where.params), None)
    table = "station_usage_daily" if group is GroupBy.station else "area_usage_daily"
    note = DISTINCT_USERS_NOTE["week" if period is Period.week else "area_month"]
    where = where_for(table, "date")
    sql = f"""
        SELECT {key}, {_period_expr(period)} AS period_start, sum(sessions) AS sessions,
               sum(energy_kwh) AS energy_kwh, sum(occupied_hours) AS occupied_hours,
               sum(charging_hours) AS charging_hours, sum(idle_hours) AS idle_hours,
               sum(occupied_hours) / nullif(sum(occupied_hours) + sum(available_hours), 0) AS utilisation,
               sum(all_busy_minutes) AS all_busy_minutes, avg(completeness) AS completeness,
               CAST(NULL AS BIGINT) AS distinct_users, ? AS distinct_users_note
        FROM {table}{where.sql}
        GROUP BY ALL"""
    return Plan(sql, [note, *where.params], note)


def _usage_hourly(key: str, where_for: WhereFor) -> Plan:
    wa = where_for("station_availability_hourly", "hour_start")
    we = where_for("station_energy_15min", "interval_start")
    ws = where_for("charging_sessions", "plug_in")
    ws.clauses.append(f"{key} IS NOT NULL")
    sql = f"""
        WITH a AS (
            SELECT {key}, hour_start AS period_start, sum(occupied_minutes) AS occ,
                   sum(charging_minutes) AS chg, sum(available_minutes) AS av, sum(reserved_minutes) AS res,
                   sum(all_busy_minutes) AS busy,
                   1 - sum(offline_minutes + unknown_minutes) / nullif(sum(connectors) * 60.0, 0) AS known
            FROM station_availability_hourly{wa.sql}
            GROUP BY ALL),
        e AS (
            SELECT {key}, date_trunc('hour', interval_start) AS period_start, sum(energy_kwh) AS energy
            FROM station_energy_15min{we.sql}
            GROUP BY ALL),
        s AS (
            SELECT {key}, date_trunc('hour', plug_in) AS period_start, count(*) AS sessions
            FROM charging_sessions{ws.sql}
            GROUP BY ALL)
        SELECT {key}, period_start, coalesce(sessions, 0) AS sessions, coalesce(energy, 0.0) AS energy_kwh,
               coalesce(occ, 0) / 60 AS occupied_hours, coalesce(chg, 0) / 60 AS charging_hours,
               (coalesce(occ, 0) - coalesce(chg, 0)) / 60 AS idle_hours,
               occ / nullif(av + occ + res, 0) AS utilisation, coalesce(busy, 0.0) AS all_busy_minutes,
               known AS completeness, CAST(NULL AS BIGINT) AS distinct_users, ? AS distinct_users_note
        FROM a FULL JOIN e USING ({key}, period_start) FULL JOIN s USING ({key}, period_start)"""
    note = DISTINCT_USERS_NOTE["hour"]
    return Plan(sql, [*wa.params, *we.params, *ws.params, note], note)


def availability_plan(group: GroupBy, period: Period, where_for: WhereFor) -> Plan:
    key = _key(group)
    where = where_for("station_availability_hourly", "hour_start" if period is Period.hour else "date")
    bucket = "hour_start" if period is Period.hour else _period_expr(period)
    sql = f"""
        SELECT {key}, {bucket} AS period_start,
               sum(available_minutes) AS available_minutes, sum(occupied_minutes) AS occupied_minutes,
               sum(charging_minutes) AS charging_minutes, sum(reserved_minutes) AS reserved_minutes,
               sum(unavailable_minutes) AS unavailable_minutes, sum(faulted_minutes) AS faulted_minutes,
               sum(offline_minutes) AS offline_minutes, sum(unknown_minutes) AS unknown_minutes,
               sum(all_busy_minutes) AS all_busy_minutes,
               (sum(available_minutes) + sum(occupied_minutes) + sum(reserved_minutes))
                 / nullif(sum(available_minutes) + sum(occupied_minutes) + sum(reserved_minutes)
                          + sum(unavailable_minutes) + sum(faulted_minutes) + sum(offline_minutes)
                          + sum(unknown_minutes), 0) AS uptime
        FROM station_availability_hourly{where.sql}
        GROUP BY ALL"""
    return Plan(sql, list(where.params), None)
