"""Metered energy per station and minute (exact, private work table) from register samples.

Samples of one connector's register come from several messages: MeterValues, 1.6 StopTransaction
transactionData and 2.0.1 TransactionEvent meterValue. Only MeterValues name the connector in 1.6, and
in 2.0.1 usually only a transaction's first event names the EVSE, so every sample's connector is
resolved through its transaction. Each connector's samples form one register series, counted by the
rules of registers.py (out-of-order readings add nothing, a reset restarts from zero, implausible
jumps are not counted). Each increase is spread linearly over its sample interval (from the series'
previous sample to the one that ends it) and split at every minute boundary, so that the energy of
an interval crossing a 15-minute or local-day boundary lands on both sides in proportion to time; a
connector's power in a minute is its energy in that minute over the minute.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa

from pipelines.raw_reader import connector_sql
from pipelines.transforms.registers import register_increments_sql

MINUTES_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("minute", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("energy_wh", pa.float64(), nullable=False),
        pa.field("power_w", pa.float64(), nullable=False),
    ]
)

REGISTER = "measurand = 'Energy.Active.Import.Register' AND phase IS NULL AND location = 'Outlet'"


def load_register_samples(con: duckdb.DuckDBPyConnection) -> None:
    """Temp table `register_samples` (cp, conn, tx, t, value): the energy register rows of view
    `meter_values`, read once; `conn` is resolved through the transaction (view `transaction_events`
    and the other samples of the transaction) where the sample names none."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE register_raw AS
            SELECT charge_point_id AS cp, {connector_sql()} AS conn, transaction_id AS tx,
                   event_time AS t, value
            FROM meter_values WHERE {REGISTER} AND value IS NOT NULL;
            CREATE OR REPLACE TEMP TABLE register_samples AS
            WITH txc AS (
                SELECT cp, tx, min(conn) AS conn FROM (
                    SELECT charge_point_id AS cp, transaction_id AS tx, {connector_sql()} AS conn
                    FROM transaction_events WHERE transaction_id IS NOT NULL
                    UNION ALL
                    SELECT cp, tx, conn FROM register_raw WHERE tx IS NOT NULL
                ) WHERE conn IS NOT NULL GROUP BY cp, tx
            )
            SELECT r.cp, coalesce(r.conn, txc.conn) AS conn, r.tx, r.t, r.value
            FROM register_raw r LEFT JOIN txc USING (cp, tx);
            DROP TABLE register_raw"""
    )


# Increases of samples up to this long after the day still reach back into it (their interval
# starts before midnight); the meter view must reach this far past the day.
SPLIT_LOOKAHEAD = timedelta(hours=2)


def register_increases_sql(day_start: datetime, day_end: datetime) -> str:
    """One row per counted sample whose interval overlaps [day_start, day_end): cp, series, t (the
    sample), minute, wh, dt (seconds since the series' previous sample). Needs `register_samples`."""
    # A sample whose connector stays unknown is kept apart per transaction: mixing it into a series
    # of another register would book that register's whole value as energy.
    series = """(SELECT cp, coalesce(CAST(conn AS VARCHAR), 'tx:' || tx, '?') AS series, t, value
                 FROM register_samples)"""
    return f"""
    SELECT cp, series, t, date_trunc('minute', t) AS minute, inc AS wh, dt
    FROM ({register_increments_sql(series, ("cp", "series"))})
    WHERE inc IS NOT NULL
      AND t >= TIMESTAMPTZ '{day_start.isoformat()}'
      AND t - to_microseconds(CAST(coalesce(dt, 0) * 1e6 AS BIGINT)) < TIMESTAMPTZ '{day_end.isoformat()}'"""


def split_by_minute_sql(increases: str, day_start: datetime, day_end: datetime) -> str:
    """The increases (cp, series, t, wh, dt) spread linearly over (t - dt, t] and cut at minute
    boundaries: cp, series, minute, wh, for the minutes in [day_start, day_end)."""
    a, b = f"TIMESTAMPTZ '{day_start.isoformat()}'", f"TIMESTAMPTZ '{day_end.isoformat()}'"
    return f"""
    WITH i AS (
        SELECT cp, series, t, wh, greatest(coalesce(dt, 0), 0) AS dt,
               t - to_microseconds(CAST(greatest(coalesce(dt, 0), 0) * 1e6 AS BIGINT)) AS t0
        FROM ({increases})
    ),
    m AS (
        SELECT cp, series, t, t0, wh, dt,
               unnest(generate_series(date_trunc('minute', greatest(t0, {a})),
                                      date_trunc('minute', least(t, {b} - INTERVAL 1 MICROSECOND)),
                                      INTERVAL 1 MINUTE)) AS minute
        FROM i
    )
    SELECT cp, series, minute,
           CASE WHEN dt = 0 THEN wh
                ELSE wh * epoch(least(minute + INTERVAL 1 MINUTE, t) - greatest(minute, t0)) / dt END AS wh
    FROM m
    WHERE minute >= {a} AND minute < {b}"""


def build_station_minutes(
    con: duckdb.DuckDBPyConnection, day: date, day_start: datetime, day_end: datetime
) -> pa.Table:
    """Needs views `meter_values` (from before day_start, for each series' previous sample) and
    `transaction_events` (back to the start of sessions still running on the day)."""
    load_register_samples(con)
    sql = f"""
    WITH c AS ({split_by_minute_sql(register_increases_sql(day_start, day_end), day_start, day_end)}),
    per_conn AS (
        SELECT cp, series, minute, sum(wh) AS wh, sum(wh) * 60 AS w
        FROM c GROUP BY cp, series, minute
    )
    SELECT cp AS station_id, minute, sum(wh) AS energy_wh, sum(w) AS power_w
    FROM per_conn GROUP BY cp, minute
    HAVING sum(wh) > 0
    ORDER BY station_id, minute
    """
    tbl = con.sql(sql).to_arrow_table()
    n = tbl.num_rows
    return pa.table(
        {
            "date": pa.array([day] * n, pa.date32()),
            "station_id": tbl["station_id"].cast(pa.string()),
            "minute": tbl["minute"].cast(pa.timestamp("us", tz="UTC")),
            "energy_wh": tbl["energy_wh"].cast(pa.float64()),
            "power_w": tbl["power_w"].cast(pa.float64()),
        },
        schema=MINUTES_SCHEMA,
    )
