"""The production instance for real: PostgreSQL storage, `dagster-daemon`, the sensor and the schedule."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, DagsterRunStatus
from dagster._core.scheduler.instigation import TickStatus

from pipelines.automation import WORK_ASSETS
from pipelines.published_schema import current_release_dir
from tests.pipelines.production.cluster import (
    IN_FLIGHT,
    Deployment,
    deployment,
    postgres_database,
    records,
    runs,
    sensor_ticks,
    wait_for,
    write_city_days,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """The daemon with a schedule that ticks every minute and sensors evaluated every few seconds."""
    with postgres_database() as db:
        dep = deployment(
            tmp_path_factory.mktemp("daemon"),
            db,
            nightly_cron="* * * * *",
            raw_sensor_interval="2",
            publish_interval="5",
        )
        try:
            dep.start_daemon()
            yield dep
        finally:
            dep.stop()


def test_the_daemon_materializes_new_raw_files_and_the_scheduled_day_and_publishes_them(
    daemon: Deployment,
) -> None:
    instance = daemon.instance()
    # The sensor has nothing to do until raw files arrive.
    # A tick is recorded as STARTED before the sensor is evaluated; only finished ones say anything.
    finished = wait_for(
        "a finished raw_files_sensor tick",
        lambda: [t for t in sensor_ticks(instance, "raw_files_sensor") if t.status != TickStatus.STARTED],
        90,
        daemon,
    )
    assert finished[-1].status == TickStatus.SKIPPED and finished[-1].skip_reason == "no new raw files"
    assert runs(instance) == []
    today = datetime.now(ZoneInfo("Europe/Stockholm")).date()
    days = [today - timedelta(days=2), today - timedelta(days=1)]
    write_city_days(daemon.data_dir, days)
    keys = {d.isoformat() for d in days}

    def sensor_runs_done() -> bool:
        done = runs(instance, tags={"dagster/sensor_name": "raw_files_sensor"})
        return {r.tags["dagster/partition"] for r in done if r.status == DagsterRunStatus.SUCCESS} == keys

    wait_for("the sensor's runs of both days", sensor_runs_done, 120, daemon)
    scheduled = wait_for(
        "a successful nightly_previous_day run",
        lambda: [
            r
            for r in runs(instance, tags={"dagster/schedule_name": "nightly_previous_day"})
            if r.status == DagsterRunStatus.SUCCESS
        ],
        90,
        daemon,
    )
    assert {r.tags["dagster/partition"] for r in scheduled} == {days[-1].isoformat()}

    def settled_publish() -> list:
        if runs(instance, statuses=IN_FLIGHT):
            return []
        latest_work = max(r.end_time or 0 for r in records(instance, tags={"ocpp-opendata/stage": "work"}))
        return [
            r.dagster_run
            for r in records(instance, job_name="publish", statuses=[DagsterRunStatus.SUCCESS])
            if (r.start_time or 0) > latest_work
        ]

    published = wait_for("a publish run after the last work run", settled_publish, 90, daemon)
    assert runs(instance, statuses=[DagsterRunStatus.FAILURE]) == []
    for name in WORK_ASSETS:
        assert instance.get_materialized_partitions(AssetKey(name)) >= keys, name
    release = instance.get_latest_materialization_event(AssetKey("published_release"))
    assert release is not None and release.run_id in {r.run_id for r in published}
    release_id = release.asset_materialization.metadata["release_id"].value  # type: ignore[union-attr]
    current = current_release_dir(daemon.data_dir)
    assert current is not None and current.name == release_id
    manifest = json.loads((Path(current) / "manifest.json").read_text())
    assert manifest["datasets"]["charging_sessions"]["coverage"] == [d.isoformat() for d in days]
