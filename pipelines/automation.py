"""Schedule and sensors: nightly partition, new raw files → affected dates, publish once work settles."""

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    JobDefinition,
    RunRequest,
    RunsFilter,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from ocpp_opendata.settings import Settings
from pipelines.partitions import local_dates_between
from pipelines.raw_index import EVENT_TABLES, IndexedFile, RawIndex
from pipelines.resources import PipelineSettings
from pipelines.storage import work_dates, work_path
from pipelines.transforms.energy import SPLIT_LOOKAHEAD

WORK_ASSETS = ("work_sessions", "work_availability", "work_station_minutes")
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
# A file whose events span more than this is a broken clock, not a backlog worth re-running.
MAX_DATES_PER_FILE = 400


def affected_dates(
    files: Iterable[IndexedFile], settings: Settings, today: date, clock_margin: timedelta = timedelta(0)
) -> set[date]:
    """`clock_margin`: how far a charger clock offset can move an event from the time the index
    recorded (RawIndex.offset_margin)."""
    first = date.fromisoformat(settings.pipeline_start_date)
    out: set[date] = set()
    for f in files:
        if f.table not in (*EVENT_TABLES, "connections") or f.min_event is None or f.max_event is None:
            continue
        margin = clock_margin if f.table in EVENT_TABLES else timedelta(0)
        # A sample just after midnight still books energy on the day before (energy.SPLIT_LOOKAHEAD).
        lo = f.min_event - SPLIT_LOOKAHEAD if f.table == "meter_values" else f.min_event
        days = local_dates_between(lo - margin, f.max_event + margin, settings.timezone)
        for d in days[-MAX_DATES_PER_FILE:]:
            if first <= d <= today:
                out.add(d)
    return out


def open_session_dates(settings: Settings) -> set[date]:
    """Dates whose sessions were still open when last materialized: republished once they close."""
    out = set()
    for d in work_dates(settings.data_dir, "sessions")[-(settings.max_session_days + 2) :]:
        tbl = pq.read_table(work_path(settings.data_dir, "sessions", d), columns=["left_open"])
        if any(tbl["left_open"].to_pylist()):
            out.add(d)
    return out


def build_raw_files_sensor(
    job: UnresolvedAssetJobDefinition | JobDefinition, settings: Settings
) -> SensorDefinition:
    @sensor(
        name="raw_files_sensor",
        job=job,
        minimum_interval_seconds=max(1, settings.raw_sensor_interval),
        default_status=DefaultSensorStatus.RUNNING,
        description="Indexes new raw files and requests every local date their events touch.",
    )
    def raw_files_sensor(context: SensorEvaluationContext, pipeline: PipelineSettings) -> Iterator:
        settings = pipeline.settings()
        index = RawIndex.of(settings)
        new = index.refresh()
        if not new:
            yield SkipReason("no new raw files")
            return
        today = datetime.now(ZoneInfo(settings.timezone)).date()
        dates = affected_dates(new, settings, today, index.offset_margin()) | open_session_dates(settings)
        stamp = f"{index.max_indexed_at():.6f}"
        for d in sorted(dates):
            yield RunRequest(partition_key=d.isoformat(), run_key=f"{d.isoformat()}@{stamp}")

    return raw_files_sensor


def _latest_work_timestamp(context: SensorEvaluationContext) -> float:
    latest = 0.0
    for name in WORK_ASSETS:
        ev = context.instance.get_latest_materialization_event(AssetKey(name))
        if ev is not None:
            latest = max(latest, ev.timestamp)
    return latest


def build_publish_sensor(
    job: UnresolvedAssetJobDefinition | JobDefinition, settings: Settings
) -> SensorDefinition:
    @sensor(
        name="publish_sensor",
        job=job,
        minimum_interval_seconds=max(1, int(settings.publish_interval)),
        default_status=DefaultSensorStatus.RUNNING,
        description="Publishes once no work run is queued or running and work changed since the last "
        "publish, so a backfill of many dates publishes once.",
    )
    def publish_sensor(context: SensorEvaluationContext) -> Iterator:
        if context.instance.get_runs_count(RunsFilter(statuses=IN_FLIGHT)) > 0:
            yield SkipReason("runs still in flight")
            return
        latest = _latest_work_timestamp(context)
        done = float(context.cursor or 0)
        if latest <= done:
            yield SkipReason("nothing new to publish")
            return
        context.update_cursor(str(latest))
        yield RunRequest(run_key=f"publish@{latest:.6f}")

    return publish_sensor


def build_nightly_schedule(
    job: UnresolvedAssetJobDefinition | JobDefinition, settings: Settings
) -> ScheduleDefinition:
    @schedule(
        name="nightly_previous_day",
        job=job,
        cron_schedule=settings.nightly_cron,
        execution_timezone=settings.timezone,
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{settings.nightly_cron} (local time): (re)materialize the previous local day.",
    )
    def nightly(context: ScheduleEvaluationContext) -> RunRequest:
        when = context.scheduled_execution_time.astimezone(ZoneInfo(settings.timezone))
        day = when.date() - timedelta(days=1)
        return RunRequest(partition_key=day.isoformat(), run_key=f"nightly-{day.isoformat()}")

    return nightly
