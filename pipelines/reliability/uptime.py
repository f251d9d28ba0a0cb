"""`port_uptime_monthly`: NEVI port uptime per public port and local month.

23 CFR 680.116(b)(3): μ = ((525,600 − (T_outage − T_excluded)) / 525,600) × 100 over a year of
minutes. Per month we use the minutes the port was observed instead of a fixed year:
μ = (T − (T_outage − T_excluded)) / T × 100, T = `period_minutes` (every minute with a known state
or offline; minutes with no data at all are `unknown_minutes` and left out of T). The trailing
12-month figure sums T, T_outage and T_excluded over the month and the 11 before it; it is null
(`window_months` < 12) until twelve months of data exist, and `meets_nevi` then uses the months there
are (> 97 %, 680.116(b)).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from pipelines.partitions import day_bounds, local_date, month_start
from pipelines.reliability.exclusions import Exclusion
from pipelines.reliability.outages import Outage, excluded_within

NEVI_MIN_UPTIME_PCT = 97.0


def _next_month(m: date) -> date:
    return (m + timedelta(days=32)).replace(day=1)


def outage_month_pieces(outages: list[Outage], exclusions: list[Exclusion], tz: str) -> pa.Table:
    """Per outage and local month it touches: its minutes and excluded minutes inside that month."""
    cols: dict[str, list] = {
        k: [] for k in ("station_id", "connector_id", "month", "outage_min", "excluded_min")
    }
    for o in outages:
        m = _local_month(o.start, tz)
        while True:
            a, _ = day_bounds(m, tz)
            b, _ = day_bounds(_next_month(m), tz)
            if a >= o.end:
                break
            lo, hi = max(a, o.start), min(b, o.end)
            if lo < hi:
                cols["station_id"].append(o.station_id)
                cols["connector_id"].append(o.connector_id)
                cols["month"].append(m)
                cols["outage_min"].append((hi - lo).total_seconds() / 60.0)
                cols["excluded_min"].append(
                    excluded_within(o, lo, hi, exclusions) if o.exclusion_reason else 0.0
                )
            m = _next_month(m)
    return pa.table(
        {
            "station_id": pa.array(cols["station_id"], pa.string()),
            "connector_id": pa.array(cols["connector_id"], pa.int32()),
            "month": pa.array(cols["month"], pa.date32()),
            "outage_min": pa.array(cols["outage_min"], pa.float64()),
            "excluded_min": pa.array(cols["excluded_min"], pa.float64()),
        }
    )


def _local_month(t: datetime, tz: str) -> date:
    return month_start(local_date(t, tz))


UPTIME_SQL = f"""
WITH obs AS (
    SELECT station_id, connector_id, date_trunc('month', date)::DATE AS month,
           sum(epoch("end" - start) / 60.0) FILTER (WHERE state <> 'unknown') AS period_minutes,
           sum(epoch("end" - start) / 60.0) FILTER (WHERE state = 'unknown') AS unknown_minutes
    FROM w_port_states GROUP BY ALL
),
o AS (
    SELECT station_id, connector_id, month, sum(outage_min) AS outage_minutes,
           sum(excluded_min) AS excluded_minutes
    FROM outage_months GROUP BY ALL
),
m AS (
    SELECT obs.station_id, obs.connector_id, obs.month, coalesce(obs.period_minutes, 0) AS period_minutes,
           coalesce(obs.unknown_minutes, 0) AS unknown_minutes,
           coalesce(o.outage_minutes, 0) AS outage_minutes,
           coalesce(o.excluded_minutes, 0) AS excluded_minutes
    FROM obs LEFT JOIN o USING (station_id, connector_id, month)
    JOIN reg r USING (station_id) WHERE r.access = 'public'
),
w AS (
    SELECT a.station_id, a.connector_id, a.month,
           sum(b.period_minutes) AS t12, sum(b.outage_minutes) AS o12, sum(b.excluded_minutes) AS x12,
           count(*) FILTER (WHERE b.period_minutes > 0) AS window_months
    FROM m a JOIN m b ON a.station_id = b.station_id AND a.connector_id = b.connector_id
     AND b.month > a.month - INTERVAL 12 MONTH AND b.month <= a.month
    GROUP BY ALL
)
SELECT m.month AS date, m.station_id, m.connector_id, r.area,
       -- Rounded far below any meaning: a parallel sum's last bits differ from run to run, and a
       -- rebuilt partition must keep its bytes when nothing changed.
       round(m.period_minutes, 6) AS period_minutes, round(m.outage_minutes, 6) AS outage_minutes,
       round(m.excluded_minutes, 6) AS excluded_minutes, round(m.unknown_minutes, 6) AS unknown_minutes,
       CASE WHEN m.period_minutes > 0
            THEN round(100.0 * (m.period_minutes - (m.outage_minutes - m.excluded_minutes))
                       / m.period_minutes, 9) END AS uptime_pct,
       CASE WHEN w.window_months >= 12 AND w.t12 > 0
            THEN round(100.0 * (w.t12 - (w.o12 - w.x12)) / w.t12, 9) END AS uptime_pct_12m,
       w.window_months::INTEGER AS window_months,
       CASE WHEN w.t12 > 0 THEN 100.0 * (w.t12 - (w.o12 - w.x12)) / w.t12 > {NEVI_MIN_UPTIME_PCT} END
           AS meets_nevi
FROM m JOIN w USING (station_id, connector_id, month) JOIN reg r USING (station_id)
"""


def port_uptime_monthly(
    con: duckdb.DuckDBPyConnection, outages: list[Outage], exclusions: list[Exclusion], tz: str
) -> duckdb.DuckDBPyRelation:
    con.register("outage_months", outage_month_pieces(outages, exclusions, tz))
    return con.sql(UPTIME_SQL)
