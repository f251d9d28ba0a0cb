"""`station_session_outcomes_daily`: how the sessions of a public station-day ended.

Each session gets exactly one outcome, checked in this order (ChargeX KPI definitions are the
anchor: a charging attempt succeeds when energy is delivered and the session ends as the driver
intended, not by a fault):
1. `failed_to_start`: the transaction started but no energy followed (0 Wh and no charging period),
   plus every refused authorization of the day (`refused_authorizations`, refusals.py: an attempt
   that the backend refused never becomes a session, but it is a failed start for the driver);
2. `ended_in_fault`: it ended by a fault — a stop reason of the charger's own failure (FAULT_STOP_REASONS)
   or the port went Faulted between the plug-in and 2 minutes after the plug-out;
3. `successful`: it delivered ≥ 1 kWh or charged for ≥ 5 minutes;
4. `too_short`: the rest (some energy, briefly; usually the driver stopped).
A *visit* is a user's sessions at one station chained by gaps under VISIT_GAP (pseudonyms are per
station, so a visit never spans stations); `first_attempt_success_pct` is the share of visits whose
first session succeeded. Sessions without a user are visits of their own.

Small cells: when the station-day has fewer than k distinct users the outcome counts and the
first-attempt share are withheld (`outcomes_suppressed`), as distinct_users is in station_usage_daily;
`sessions` stays, as it does there.
"""

from __future__ import annotations

import duckdb

SUCCESS_MIN_WH = 1000.0
SUCCESS_MIN_CHARGING_S = 300
VISIT_GAP_S = 30 * 60
FAULT_WINDOW_S = 120
# 1.6 Reason / 2.0.1 ReasonEnumType values that name a failure of the charger or its supply.
FAULT_STOP_REASONS = (
    "EmergencyStop", "PowerLoss", "GroundFault", "OvercurrentFault", "PowerQuality", "Reboot", "HardReset",
)  # fmt: skip


def outcomes_sql(k: int) -> str:
    reasons = ", ".join(f"'{r}'" for r in FAULT_STOP_REASONS)
    return f"""
WITH s AS (
    SELECT s.*, coalesce(r.area, 'unknown') AS area FROM w_all_sessions s JOIN reg r USING (station_id)
    WHERE r.access = 'public'
),
f AS (
    SELECT DISTINCT s.session_id FROM s JOIN faulted_outages o
      ON o.station_id = s.station_id AND o.connector_id = s.connector_id
     AND o.start >= s.plug_in
     AND o.start <= coalesce(s.plug_out, s.plug_in) + INTERVAL {FAULT_WINDOW_S} SECOND
),
c AS (
    SELECT s.*,
        CASE
            WHEN s.energy_wh <= 0 AND s.charging_start IS NULL THEN 'failed_to_start'
            WHEN s.stop_reason IN ({reasons}) OR f.session_id IS NOT NULL THEN 'ended_in_fault'
            WHEN s.energy_wh >= {SUCCESS_MIN_WH}
              OR epoch(s.charging_end - s.charging_start) >= {SUCCESS_MIN_CHARGING_S} THEN 'successful'
            ELSE 'too_short'
        END AS outcome
    FROM s LEFT JOIN f USING (session_id)
    WHERE NOT s.left_open
),
v AS (
    SELECT *,
        CASE WHEN user_pseudonym IS NULL THEN true
             ELSE coalesce(epoch(plug_in - lag(coalesce(plug_out, plug_in))
                     OVER (PARTITION BY station_id, user_pseudonym ORDER BY plug_in)) >= {VISIT_GAP_S}, true)
        END AS first_of_visit
    FROM c
),
d0 AS (
    SELECT date, station_id, area, count(*)::BIGINT AS sessions,
           count(*) FILTER (WHERE outcome = 'successful')::BIGINT AS successful,
           count(*) FILTER (WHERE outcome = 'failed_to_start')::BIGINT AS failed_sessions,
           count(*) FILTER (WHERE outcome = 'ended_in_fault')::BIGINT AS ended_in_fault,
           count(*) FILTER (WHERE outcome = 'too_short')::BIGINT AS too_short,
           count(*) FILTER (WHERE first_of_visit)::BIGINT AS visits,
           count(*) FILTER (WHERE first_of_visit AND outcome = 'successful')::BIGINT AS first_ok,
           count(DISTINCT user_pseudonym) AS users
    FROM v GROUP BY ALL
),
rf AS (
    SELECT r.date, r.station_id, coalesce(g.area, 'unknown') AS area, sum(r.refused)::BIGINT AS refused,
           max(r.refused_cards) AS refused_cards
    FROM w_all_refusals r JOIN reg g USING (station_id) WHERE g.access = 'public' GROUP BY ALL
),
d AS (
    SELECT date, station_id, area,
           coalesce(d0.sessions, 0)::BIGINT AS sessions, coalesce(d0.successful, 0)::BIGINT AS successful,
           (coalesce(d0.failed_sessions, 0) + coalesce(rf.refused, 0))::BIGINT AS failed_to_start,
           coalesce(rf.refused, 0)::BIGINT AS refused,
           coalesce(d0.ended_in_fault, 0)::BIGINT AS ended_in_fault,
           coalesce(d0.too_short, 0)::BIGINT AS too_short, coalesce(d0.visits, 0)::BIGINT AS visits,
           coalesce(d0.first_ok, 0) AS first_ok,
           -- Refused cards are people too; a union is at least its larger part (never overcounted).
           greatest(coalesce(d0.users, 0), coalesce(rf.refused_cards, 0)) AS users
    FROM d0 FULL JOIN rf USING (date, station_id, area)
)
SELECT date, station_id, area, sessions,
       CASE WHEN users >= {k} THEN successful END AS successful,
       CASE WHEN users >= {k} THEN failed_to_start END AS failed_to_start,
       CASE WHEN users >= {k} THEN refused END AS refused_authorizations,
       CASE WHEN users >= {k} THEN ended_in_fault END AS ended_in_fault,
       CASE WHEN users >= {k} THEN too_short END AS too_short,
       CASE WHEN users >= {k} THEN visits END AS visits,
       CASE WHEN users >= {k} THEN 100.0 * first_ok / nullif(visits, 0) END AS first_attempt_success_pct,
       users < {k} AS outcomes_suppressed
FROM d"""


def session_outcomes(con: duckdb.DuckDBPyConnection, k: int) -> duckdb.DuckDBPyRelation:
    """Reads `w_all_sessions`, `w_all_refusals`, `faulted_outages` and `reg`."""
    return con.sql(outcomes_sql(k))
