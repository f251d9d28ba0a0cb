"""The quarantine's place in `pipelines.datasets.build_datasets`: inputs gathered, rows decided once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from ocpp_opendata.settings import Settings
from pipelines.privacy import load_master_key
from pipelines.quality.overrides import load_overrides
from pipelines.quality.quarantine import Quarantine, decide
from pipelines.quality.report import issues_table
from pipelines.storage import read_work, work_dates


def _context(settings: Settings, days: list[date] | None) -> pa.Table | None:
    """Work sessions of the days just before the built ones: a session there can overlap one of a built
    day on the same connector (a whole build, `days` None, has no days before it)."""
    if not days:
        return None
    first = min(days)
    reach = timedelta(days=int(settings.max_session_days) + 1)
    chosen = [d for d in work_dates(settings.data_dir, "sessions") if first - reach <= d < first]
    return read_work(settings.data_dir, "sessions", chosen) if chosen else None


def quarantine_work(
    con: duckdb.DuckDBPyConnection, settings: Settings, days: list[date] | None, now: datetime | None
) -> Quarantine:
    """Decide the registered work rows (replacing `w_sessions` and `w_station_minutes`)."""
    return decide(
        con,
        now or datetime.now(UTC),
        load_overrides(settings.data_dir),
        _context(settings, days),
        float(settings.clock_skew_minutes),
        load_master_key(settings),
    )


def quality_issues(
    con: duckdb.DuckDBPyConnection, settings: Settings, quarantine: Quarantine, period_sql: str
) -> pa.Table:
    """The published `quality_issues` rows of this build (release column empty until publishing)."""
    tbl = issues_table(con, quarantine, load_master_key(settings), period_sql)
    return tbl.add_column(0, "release", pa.array([""] * tbl.num_rows, pa.string()))


def stamp_release(table: pa.Table, release_id: str) -> pa.Table:
    i = table.schema.get_field_index("release")
    return table.set_column(i, table.schema.field(i), pa.array([release_id] * table.num_rows, pa.string()))
