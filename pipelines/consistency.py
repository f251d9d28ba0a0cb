"""Every energy and session total of a release agrees across the datasets that carry it: a blocking check.

The datasets are built by separate queries from the same work rows, so a join that fans out or a filter
that one query applies and another forgets shows up as two totals that differ (issue 20, item 5: the
area series once summed every minute once per station of its area). The raw recount
(`pipelines.reconcile`) ties `station_energy_15min` and `station_usage_daily` to the raw zone; this check
ties every other energy-bearing dataset to those two:

- `station_usage_monthly` is the sum of its station's days in `station_usage_daily` (sessions, energy);
- `area_peak_15min` holds at least the public stations' `station_energy_15min` of each interval, and
  exactly that where the area-day counts no non-public station (`area_usage_daily.stations` equals
  its public stations);
- `area_usage_daily` sessions and energy equal its public stations' `station_usage_daily` where it
  counts no non-public station, and are never below them;
- `charging_sessions` rows of a station-day are that day's `station_usage_daily.sessions`, and their
  energy agrees within the published rounding (half a rounding step per session).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from pipelines.checks import CheckReport

CHECK_NAME = "energy_totals_agree"
# The published tables the check reads.
TABLES = (
    "station_usage_daily",
    "station_usage_monthly",
    "station_energy_15min",
    "area_peak_15min",
    "area_usage_daily",
    "charging_sessions",
)
TOLERANCE_KWH = 0.001
# Both 15-minute series are rounded to this per row (pipelines/datasets.py): their day sums may differ by
# up to this much per row.
ROUNDING_KWH = 1e-6


def _problems(con: duckdb.DuckDBPyConnection, round_energy_kwh: float) -> list[str]:
    t = TOLERANCE_KWH
    queries = {
        "station_usage_monthly vs its days": f"""
            SELECT m.station_id, m.date, m.sessions, d.sessions, m.energy_kwh, d.energy_kwh
            FROM station_usage_monthly m
            LEFT JOIN (SELECT station_id, date_trunc('month', date)::DATE AS date,
                              sum(sessions) AS sessions, sum(energy_kwh) AS energy_kwh
                       FROM station_usage_daily GROUP BY ALL) d USING (station_id, date)
            WHERE m.sessions <> coalesce(d.sessions, 0)
               OR abs(m.energy_kwh - coalesce(d.energy_kwh, 0)) > {t}""",
        "area_peak_15min below its public stations": f"""
            SELECT s.area, s.interval_start, a.energy_kwh, s.energy_kwh
            FROM (SELECT area, date, interval_start, sum(energy_kwh) AS energy_kwh
                  FROM station_energy_15min GROUP BY ALL) s
            LEFT JOIN area_peak_15min a USING (area, date, interval_start)
            WHERE coalesce(a.energy_kwh, 0) < s.energy_kwh - {t}""",
        "area_peak_15min vs public-only area-days": f"""
            WITH pub AS (SELECT area, date, count(DISTINCT station_id) AS n
                         FROM station_usage_daily GROUP BY ALL),
                 only_public AS (SELECT area, date FROM area_usage_daily JOIN pub USING (area, date)
                                 WHERE stations = n),
                 s AS (SELECT area, date, sum(energy_kwh) AS kwh, count(*) AS n
                       FROM station_energy_15min GROUP BY ALL),
                 a AS (SELECT area, date, sum(energy_kwh) AS kwh FROM area_peak_15min GROUP BY ALL)
            SELECT o.area, o.date, a.kwh, s.kwh
            FROM only_public o LEFT JOIN a USING (area, date) LEFT JOIN s USING (area, date)
            WHERE abs(coalesce(a.kwh, 0) - coalesce(s.kwh, 0)) > {t} + {ROUNDING_KWH} * coalesce(s.n, 0)""",
        "area_usage_daily vs its public stations": f"""
            WITH pub AS (SELECT area, date, count(DISTINCT station_id) AS n, sum(sessions) AS sessions,
                                sum(energy_kwh) AS kwh
                         FROM station_usage_daily GROUP BY ALL)
            SELECT a.area, a.date, a.sessions, p.sessions, a.energy_kwh, p.kwh
            FROM area_usage_daily a JOIN pub p USING (area, date)
            WHERE (a.stations = p.n AND (a.sessions <> p.sessions OR abs(a.energy_kwh - p.kwh) > {t}))
               OR a.sessions < p.sessions OR a.energy_kwh < p.kwh - {t}""",
        "charging_sessions vs station_usage_daily": f"""
            SELECT c.station_id, c.date, c.n, d.sessions, c.kwh, d.energy_kwh
            FROM (SELECT station_id, date, count(*) AS n, sum(energy_kwh) AS kwh
                  FROM charging_sessions GROUP BY ALL) c
            LEFT JOIN station_usage_daily d USING (station_id, date)
            WHERE c.n <> coalesce(d.sessions, 0)
               OR abs(c.kwh - coalesce(d.energy_kwh, 0)) > c.n * {round_energy_kwh} / 2 + {t}""",
    }
    found = []
    for rule, sql in queries.items():
        for row in con.execute(sql + " LIMIT 3").fetchall():
            found.append(f"{rule}: {' '.join(str(v) for v in row)}")
    return found


def check_energy_totals_agree(tables: dict[str, pa.Table], round_energy_kwh: float) -> CheckReport:
    """Blocking: the release's energy and session totals agree across datasets (module docstring)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'; SET threads = 2")
        for name in TABLES:
            con.register(name, tables[name])
        problems = _problems(con, round_energy_kwh)
    finally:
        con.close()
    return CheckReport(CHECK_NAME, not problems, "; ".join(problems[:5]) or "all totals agree")
