"""The three daily work assets. Each reads the raw zone through the file index and writes one
Parquet file per local date under DATA_DIR/work/; nothing is handed over in memory."""

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    RetryPolicy,
    asset,
)

from ocpp_opendata.settings import Settings
from pipelines.daily import availability_for_day, sessions_for_day, station_minutes_for_day
from pipelines.privacy import Pseudonymizer, PseudonymKeyError, load_master_key
from pipelines.raw_index import RawIndex
from pipelines.resources import PipelineSettings

RETRY = RetryPolicy(max_retries=2, delay=5)
GROUP = "work"


def _day(context: AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def build_work_assets(partitions: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    @asset(
        name="work_sessions",
        partitions_def=partitions,
        group_name=GROUP,
        retry_policy=RETRY,
        kinds={"parquet"},
        description="Charging sessions plugged in on the local date (private: exact times, pseudonyms).",
    )
    def work_sessions(context: AssetExecutionContext, pipeline: PipelineSettings) -> MaterializeResult:
        settings = pipeline.settings()
        try:
            key = load_master_key(settings)
        except PseudonymKeyError as exc:
            raise Failure(str(exc), allow_retries=False) from exc
        pseudo = Pseudonymizer(key, settings.pseudonym_period, settings.pseudonym_scope)
        index = RawIndex.of(settings)
        index.refresh()
        path = sessions_for_day(settings, index, _day(context), pseudo)
        tbl = pq.read_table(path, columns=["left_open"])
        open_sessions = sum(1 for v in tbl["left_open"].to_pylist() if v)
        return MaterializeResult(
            metadata={"path": str(path), "sessions": tbl.num_rows, "open_sessions": open_sessions}
        )

    @asset(
        name="work_availability",
        partitions_def=partitions,
        group_name=GROUP,
        retry_policy=RETRY,
        kinds={"parquet"},
        description="Connector-minutes per status per station and local hour (private work table).",
    )
    def work_availability(context: AssetExecutionContext, pipeline: PipelineSettings) -> MaterializeResult:
        return _work_table(context, pipeline, availability_for_day)

    @asset(
        name="work_station_minutes",
        partitions_def=partitions,
        group_name=GROUP,
        retry_policy=RETRY,
        kinds={"parquet"},
        description="Metered energy and power per station and minute (private work table).",
    )
    def work_station_minutes(context: AssetExecutionContext, pipeline: PipelineSettings) -> MaterializeResult:
        return _work_table(context, pipeline, station_minutes_for_day)

    return [work_sessions, work_availability, work_station_minutes]


def _work_table(
    context: AssetExecutionContext,
    pipeline: PipelineSettings,
    build: Callable[[Settings, RawIndex, date], Path],
) -> MaterializeResult:
    """Build one day's work table from a freshly refreshed raw index; report its path and row count."""
    settings = pipeline.settings()
    index = RawIndex.of(settings)
    index.refresh()
    path = build(settings, index, _day(context))
    return MaterializeResult(metadata={"path": str(path), "rows": pq.read_metadata(path).num_rows})
