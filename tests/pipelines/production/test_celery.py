"""A 7-day backfill spread over two `dagster-celery` workers (RabbitMQ broker, Redis results)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from pipelines.automation import WORK_ASSETS
from pipelines.published_schema import RELEASES_DIRNAME, current_release_dir, published_root
from pipelines.raw_index import RawIndex
from tests.pipelines.production.cluster import (
    BIN,
    IN_FLIGHT,
    Deployment,
    deployment,
    postgres_database,
    records,
    runs,
    wait_for,
    write_city_days,
)

pytestmark = pytest.mark.slow
DAYS = [date(2026, 3, 2) + timedelta(days=i) for i in range(7)]
WORKERS = ("worker-a", "worker-b")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Daemon and two single-process Celery workers; the week's raw files are already indexed, so the
    sensor leaves the dates to the backfill."""
    with postgres_database() as db:
        dep = deployment(
            tmp_path_factory.mktemp("celery"), db, pipeline_executor="celery", publish_interval="5"
        )
        write_city_days(dep.data_dir, DAYS)
        RawIndex(dep.data_dir, 5.0).refresh()
        try:
            for name in WORKERS:
                dep.start_worker(name)
            dep.start_daemon()
            yield dep
        finally:
            dep.stop()


def test_a_week_backfill_runs_concurrently_on_two_celery_workers_and_publishes_once(
    cluster: Deployment,
) -> None:
    instance = cluster.instance()
    launched = cluster.dagster(
        "job", "backfill", "-w", "workspace.yaml", "-j", "daily_work",
        "--from", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat(), "--noprompt",
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    keys = {d.isoformat() for d in DAYS}

    def backfill_done() -> bool:
        work = runs(instance, tags={"ocpp-opendata/stage": "work"})
        return len(work) == 7 and all(r.status == DagsterRunStatus.SUCCESS for r in work)

    wait_for("the 7 backfill runs", backfill_done, 240, cluster)
    work = records(instance, tags={"ocpp-opendata/stage": "work"})
    assert {r.dagster_run.tags["dagster/partition"] for r in work} == keys
    assert all("dagster/backfill" in r.dagster_run.tags for r in work)
    assert _most_runs_at_once(work) >= 2
    # Every step ran on a Celery worker, both workers took steps, and each step once.
    workers = _celery_workers(instance, [r.dagster_run.run_id for r in work])
    assert len(workers) == 7 * len(WORK_ASSETS)
    assert {w.split("@")[0] for w in workers.values()} == set(WORKERS)
    for name in WORK_ASSETS:
        per_partition = Counter(
            e.asset_materialization.partition  # type: ignore[union-attr]
            for e in instance.fetch_materializations(AssetKey(name), limit=1000).records
        )
        assert per_partition == Counter(keys), name

    def published() -> list:
        if runs(instance, statuses=IN_FLIGHT):
            return []
        return runs(instance, job_name="publish", statuses=[DagsterRunStatus.SUCCESS])

    (publish,) = wait_for("the publish run after the backfill", published, 90, cluster)
    assert len(runs(instance, job_name="publish")) == 1
    releases = sorted((published_root(cluster.data_dir) / RELEASES_DIRNAME).iterdir())
    assert len(releases) == 1 and current_release_dir(cluster.data_dir) == releases[0]
    manifest = json.loads((releases[0] / "manifest.json").read_text())
    assert manifest["datasets"]["charging_sessions"]["coverage"] == [
        DAYS[0].isoformat(),
        DAYS[-1].isoformat(),
    ]
    assert manifest["datasets"]["charging_sessions"]["rows"] == 7 * 3
    assert _celery_workers(instance, [publish.run_id])


def test_two_publish_runs_launched_together_build_their_releases_one_after_the_other(
    cluster: Deployment,
) -> None:
    instance = cluster.instance()
    before = {r.run_id for r in runs(instance, job_name="publish")}
    launch = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "publish"]
    procs = [cluster.start(f"launch-{i}", launch) for i in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
        cluster.procs.remove(proc)

    def both_done() -> list:
        new = [r for r in records(instance, job_name="publish") if r.dagster_run.run_id not in before]
        return new if len(new) == 2 and all(r.dagster_run.is_finished for r in new) else []

    new = wait_for("two publish runs", both_done, 150, cluster)
    assert all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in new)
    spans = sorted(_step_span(instance, r.dagster_run.run_id, "published_release") for r in new)
    # Both runs were waiting before the first release was built, yet the second release started after it.
    assert max(r.create_timestamp.timestamp() for r in new) < spans[0][1]
    assert spans[0][1] <= spans[1][0], f"release steps overlapped: {spans}"
    # The "publish" pool holds one slot, and both releases went online in turn.
    assert instance.event_log_storage.get_concurrency_info("publish").slot_count == 1
    mats = instance.fetch_materializations(AssetKey("published_release"), limit=10).records
    ids = [str(m.asset_materialization.metadata["release_id"].value) for m in mats[:2]]  # type: ignore[union-attr]
    manifest = json.loads((current_release_dir(cluster.data_dir) / "manifest.json").read_text())  # type: ignore[operator]
    assert manifest["release_id"] == ids[0] and manifest["previous_release_id"] == ids[1]


def _most_runs_at_once(work: list) -> int:
    edges = sorted([(r.start_time, 1) for r in work] + [(r.end_time, -1) for r in work])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _celery_workers(instance: DagsterInstance, run_ids: list[str]) -> dict[tuple[str, str], str]:
    """(run, step) → the Celery worker that executed it, from the engine events Dagster records."""
    out = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            meta = entry.dagster_event.engine_event_data.metadata  # type: ignore[union-attr]
            if "Celery worker" in meta:
                out[(run_id, str(entry.step_key))] = str(meta["Celery worker"].value)
    return out


def _step_span(instance: DagsterInstance, run_id: str, step: str) -> tuple[float, float]:
    start = [e.timestamp for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
             if e.step_key == step]  # fmt: skip
    end = [e.timestamp for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_SUCCESS)
           if e.step_key == step]  # fmt: skip
    assert len(start) == 1 and len(end) == 1, (run_id, start, end)
    return start[0], end[0]
