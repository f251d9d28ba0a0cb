"""`network_reliability_monthly` / `network_reliability_yearly`: UK Public Charge Point Regulations
2023, regulation 7, over the public stations, per area and for the whole network.

Reg. 7(3)-(4) classifies each minute by the EVSE's OCPI status: AVAILABLE, CHARGING, RESERVED are
*working*; UNKNOWN and BLOCKED are *ineligible* and count as reliable; INOPERATIVE and OUTOFORDER are
*not working*. With the pipeline's OCPP → OCPI table (docs/pipeline.md): available, occupied
(CHARGING or BLOCKED, both reliable) and reserved minutes are working; offline and unknown minutes
are ineligible; unavailable (INOPERATIVE) and faulted (OUTOFORDER) minutes are not working.
reliability_pct = (all minutes − not-working minutes) / all minutes × 100. Reg. 7(2) asks ≥ 99 % per
calendar year for the network of *rapid* charge points (≥ 50 kW, reg. 2), which the power class
splits out (registry max_power_kw; stations without one count as `other`).
"""

from __future__ import annotations

import duckdb

UK_MIN_RELIABILITY_PCT = 99.0
RAPID_KW = 50.0
NETWORK = "(network)"

_MINUTES = """
    sum(available_minutes + occupied_minutes + reserved_minutes) AS working_minutes,
    sum(offline_minutes + unknown_minutes) AS ineligible_minutes,
    sum(unavailable_minutes + faulted_minutes) AS not_working_minutes,
    count(DISTINCT station_id)::BIGINT AS stations"""


def _sql(period: str) -> str:
    key = "date_trunc('month', date)::DATE" if period == "month" else "CAST(year(date) AS INTEGER)"
    name = "date" if period == "month" else "year"
    return f"""
WITH a AS (
    SELECT {key} AS {name}, a.station_id, coalesce(r.area, 'unknown') AS area,
           CASE WHEN r.max_power_kw >= {RAPID_KW} THEN 'rapid' ELSE 'other' END AS power_class,
           a.available_minutes, a.occupied_minutes, a.reserved_minutes, a.offline_minutes,
           a.unknown_minutes, a.unavailable_minutes, a.faulted_minutes
    FROM w_all_availability a JOIN reg r USING (station_id) WHERE r.access = 'public'
),
g AS (
    SELECT {name}, area, power_class, {_MINUTES} FROM a GROUP BY ALL
    UNION ALL
    SELECT {name}, '{NETWORK}' AS area, power_class, {_MINUTES} FROM a GROUP BY ALL
)
-- Rounded far below any meaning, so that a parallel sum's last bits never change a partition's bytes.
SELECT {name}, area, power_class, stations, round(working_minutes, 6) AS working_minutes,
       round(ineligible_minutes, 6) AS ineligible_minutes,
       round(not_working_minutes, 6) AS not_working_minutes,
       round(working_minutes + ineligible_minutes + not_working_minutes, 6) AS total_minutes,
       round(100.0 * (working_minutes + ineligible_minutes)
           / nullif(working_minutes + ineligible_minutes + not_working_minutes, 0), 9) AS reliability_pct,
       CASE WHEN power_class = 'rapid' THEN
           100.0 * (working_minutes + ineligible_minutes)
               / nullif(working_minutes + ineligible_minutes + not_working_minutes, 0)
           >= {UK_MIN_RELIABILITY_PCT}
       END AS meets_uk_reg7
FROM g"""


def network_reliability(con: duckdb.DuckDBPyConnection, period: str) -> duckdb.DuckDBPyRelation:
    """`period` "month" or "year"; reads the view `w_all_availability` and the table `reg`."""
    return con.sql(_sql(period))
