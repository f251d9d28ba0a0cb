"""Energy from a register's samples: the rules shared by the sessions and the minute series.

A register series (one connector, or one session) is a list of (time, reading) samples, ordered by
time. Samples come from several messages and qualities, so:

- the same reading from two messages (MeterValues and transactionData, or a retried frame) is one
  sample;
- energy is the increase of the series' running maximum: a reading that arrives out of order (a
  replayed queue, a clock-corrected timestamp, a stale copy) adds nothing and takes nothing away;
- a drop to less than half the previous reading and to a value the charger could have delivered
  since the previous sample, counting from zero, is a register reset (a reboot): a new epoch starts
  and its first reading counts in full; any other drop is an out-of-order reading;
- an increase faster than any charger is a unit mix-up or a garbled value and is not counted; a
  single such reading between two normal ones is left out of the running maximum altogether.
"""

from __future__ import annotations

# Faster than any charger: register increases implying more are unit mix-ups and are not counted.
MAX_PLAUSIBLE_W = 400_000.0
# Wh the fastest charger can deliver in `dt` seconds, plus a margin for whole-Wh registers.
_PLAUSIBLE_WH = f"({MAX_PLAUSIBLE_W} * greatest({{dt}}, 1) / 3600 + 1000)"


def plausible_wh(dt: str) -> str:
    return _PLAUSIBLE_WH.format(dt=dt)


def register_increments_sql(source: str, keys: tuple[str, ...]) -> str:
    """SELECT over `source` (columns: *keys, t, value) giving one row per distinct sample: *keys, t,
    dt (seconds since the series' previous sample), inc (Wh counted at this sample; NULL for a series'
    first sample), reset, implausible, backwards (a drop below the running maximum that is no reset)."""
    k = ", ".join(keys)
    order = "ORDER BY t, value"
    return f"""
    WITH s AS (SELECT DISTINCT {k}, t, value FROM {source}),
    d AS (
        SELECT *, lag(value) OVER w AS prev, lead(value) OVER w AS next,
               epoch(t - lag(t) OVER w) AS dt0, epoch(lead(t) OVER w - t) AS dt_next
        FROM s WINDOW w AS (PARTITION BY {k} {order})
    ),
    f AS (
        SELECT *,
               coalesce(value < prev / 2 AND value <= {plausible_wh("dt0")}, false) AS reset,
               -- one implausible jump up and straight back down: a garbled reading, not the register
               coalesce(value - prev > {plausible_wh("dt0")} AND value - next > {plausible_wh("dt_next")},
                        false) AS spike
        FROM d
    ),
    e AS (
        SELECT *, sum(reset::INTEGER) OVER (PARTITION BY {k} {order} ROWS UNBOUNDED PRECEDING) AS epoch
        FROM f
    ),
    h AS (
        SELECT *,
               max(CASE WHEN NOT spike THEN value END) OVER (w ROWS UNBOUNDED PRECEDING) AS high,
               max(CASE WHEN NOT spike THEN value END) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING) AS prev_high,
               max(CASE WHEN NOT spike THEN t END) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING
                                                         AND 1 PRECEDING) AS prev_t
        FROM e WINDOW w AS (PARTITION BY {k}, epoch {order})
    ),
    i AS (
        SELECT {k}, t, reset, spike, coalesce(epoch(t - prev_t), dt0) AS dt,
               coalesce(value < prev_high AND NOT spike, false) AS backwards,
               CASE WHEN spike THEN 0.0
                    WHEN prev_high IS NULL THEN (CASE WHEN reset THEN value END)
                    ELSE high - prev_high END AS raw_inc
        FROM h
    )
    SELECT {k}, t, dt,
           CASE WHEN raw_inc > {plausible_wh("dt")} THEN 0.0 ELSE raw_inc END AS inc,
           reset, spike OR coalesce(raw_inc > {plausible_wh("dt")}, false) AS implausible, backwards
    FROM i"""
