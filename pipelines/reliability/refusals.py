"""Refused authorizations per station and local day: attempts to charge that never became a session.

A driver whose card the backend refuses (an Authorize answered Invalid, Blocked, Expired, Unknown, ...)
never gets a transaction, so no session row can say it failed to start; issue 18 counts it as a failed
start all the same (ChargeX KPI definitions count every attempt). The listener's own answer is in the
raw `frames` table (direction 'out', the Authorize it answers, 1.6 idTagInfo.status / 2.0.1
idTokenInfo.status); in proxy mode the CSMS's answer is there the same way. Authorize has no charger
timestamp (it is sent live: an offline charger cannot ask), so the day is the receipt's local day.

Only counts are kept: the number of refusals and of distinct refused cards (for the small-cell rule);
no card leaves this step.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.storage import work_path, write_parquet

REFUSALS_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("station_id", pa.string(), nullable=False),
        pa.field("refused", pa.int64(), nullable=False),
        pa.field("refused_cards", pa.int64(), nullable=False),
    ]
)


def refusals_sql(day: date, start: datetime, end: datetime) -> str:
    """Over view `frames` (inbound and outbound, receipt times covering [start, end))."""
    return f"""
        WITH calls AS (
            SELECT connection_id, message_id, charge_point_id,
                   coalesce(json_extract_string(text, '$[3].idTag'),
                            json_extract_string(text, '$[3].idToken.idToken')) AS card
            FROM frames
            WHERE direction = 'in' AND message_type = 2 AND action = 'Authorize'
              AND received_at >= TIMESTAMPTZ '{start.isoformat()}'
              AND received_at < TIMESTAMPTZ '{end.isoformat()}'
        ),
        answers AS (
            SELECT connection_id, message_id,
                   coalesce(json_extract_string(text, '$[2].idTagInfo.status'),
                            json_extract_string(text, '$[2].idTokenInfo.status')) AS status
            FROM frames WHERE direction = 'out' AND message_type = 3 AND action = 'Authorize'
        )
        SELECT DATE '{day.isoformat()}' AS date, charge_point_id AS station_id, count(*)::BIGINT AS refused,
               count(DISTINCT card)::BIGINT AS refused_cards
        FROM calls JOIN answers USING (connection_id, message_id)
        WHERE status IS NOT NULL AND status <> 'Accepted'
        GROUP BY ALL"""


def write_refusals(
    con: duckdb.DuckDBPyConnection, data_dir: Path, day: date, start: datetime, end: datetime
) -> Path:
    """Count the day's refusals from view `frames` and write them as the `refusals` work table."""
    table = con.sql(refusals_sql(day, start, end)).to_arrow_table().cast(REFUSALS_SCHEMA)
    path = work_path(data_dir, "refusals", day)
    write_parquet(table, path, ("station_id",))
    return path
