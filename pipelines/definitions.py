"""Dagster Definitions: `dagster dev` from the repository root loads these (workspace.yaml)."""

from __future__ import annotations

from dagster import Definitions, define_asset_job

from ocpp_opendata.settings import Settings, load_settings
from pipelines.assets.release import published_release
from pipelines.assets.work import build_work_assets
from pipelines.automation import build_nightly_schedule, build_publish_sensor, build_raw_files_sensor
from pipelines.executors import executor_for
from pipelines.maintenance_job import raw_maintenance_job, raw_maintenance_schedule
from pipelines.partitions import daily_partitions
from pipelines.resources import PipelineSettings, overrides_of

DAILY_JOB = "daily_work"
PUBLISH_JOB = "publish"
# Run tag the production instance limits (deploy/dagster.postgres.yaml): one publish run at a time,
# on top of the "publish" pool that serialises the release step itself.
STAGE_TAG = "ocpp-opendata/stage"


def build_definitions(settings: Settings | None = None) -> Definitions:
    settings = settings or load_settings()
    partitions = daily_partitions(settings.timezone, settings.pipeline_start_date)
    work = build_work_assets(partitions)
    daily_job = define_asset_job(
        DAILY_JOB, selection=[a.key for a in work], tags={"dagster/max_retries": 2, STAGE_TAG: "work"}
    )
    publish_job = define_asset_job(
        PUBLISH_JOB, selection=[published_release.key], tags={STAGE_TAG: "publish"}
    )
    return Definitions(
        assets=[*work, published_release],
        asset_checks=[],
        jobs=[daily_job, publish_job, raw_maintenance_job],
        schedules=[build_nightly_schedule(daily_job, settings), raw_maintenance_schedule],
        sensors=[build_raw_files_sensor(daily_job, settings), build_publish_sensor(publish_job, settings)],
        executor=executor_for(settings),
        resources={
            "pipeline": PipelineSettings(data_dir=str(settings.data_dir), overrides=overrides_of(settings))
        },
    )


defs = build_definitions()
