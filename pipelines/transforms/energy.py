"""Metered energy per station and minute (exact, private work table) from register samples.

Each register increase is booked to the minute of the sample that ends it; its average power over
the sample interval is that connector's power in that minute. A decrease is a register reset (the new
reading counts from zero); an increase faster than any charger is a unit mix-up and is not counted.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pyarrow as pa

from pipelines.raw_reader import connector_sql
from pipelines.transforms.sessions import MAX_PLAUSIBLE_W

MINUTES_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("minute", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("energy_wh", pa.float64(), nullable=False),
        pa.field("power_w", pa.float64(), nullable=False),
    ]
)


def build_station_minutes(
    con: duckdb.DuckDBPyConnection, day: date, day_start: datetime, day_end: datetime
) -> pa.Table:
    sql = f"""
    WITH reg AS (
        SELECT charge_point_id AS cp, {connector_sql()} AS conn, event_time AS t, value
        FROM meter_values
        WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL AND location = 'Outlet'
          AND value IS NOT NULL
    ),
    d AS (
        SELECT cp, conn, t, value,
               value - lag(value) OVER w AS delta, epoch(t - lag(t) OVER w) AS dt
        FROM reg WINDOW w AS (PARTITION BY cp, conn ORDER BY t, value)
    ),
    c AS (
        SELECT cp, conn, date_trunc('minute', t) AS minute,
               CASE WHEN delta < 0 THEN value
                    WHEN delta > {MAX_PLAUSIBLE_W} * greatest(dt, 1) / 3600 + 1000 THEN 0
                    ELSE delta END AS wh,
               dt
        FROM d
        WHERE delta IS NOT NULL
          AND t >= TIMESTAMPTZ '{day_start.isoformat()}' AND t < TIMESTAMPTZ '{day_end.isoformat()}'
    ),
    per_conn AS (
        SELECT cp, conn, minute, sum(wh) AS wh, sum(wh) * 3600 / greatest(sum(dt), 1) AS w
        FROM c GROUP BY cp, conn, minute
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
