"""Backfill benchmark: 7 partitions of synthetic city-days, spread over Celery workers or not.

    python benchmarks/backfill.py                  # 40 chargers per day, 7 days (about 3-4 minutes)
    python benchmarks/backfill.py --chargers 200   # heavier partitions (steps dominate start-up costs)

Three ways to materialize the same 7 daily partitions of the three work assets:

(a) the production deployment (deploy/dagster.postgres.yaml on a PostgreSQL database of its own,
    `dagster-daemon`, `dagster job backfill`, Celery executor over RabbitMQ) with ONE worker process;
(b) the same with TWO worker processes;
(c) `BackfillPolicy.single_run()`: one in-process run that loops over the 7 partitions.

Wall time of (a) and (b): from the `dagster job backfill` command until the last of the 7 runs has
finished (run queue, run worker start-up and Celery hand-offs included). (c): the materialization
only. Every scenario starts from the same raw zone (already indexed) with no work tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from dagster import (  # noqa: E402
    BackfillPolicy,
    DagsterInstance,
    DagsterRunStatus,
    MaterializeResult,
    asset,
    materialize,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG  # noqa: E402

from pipelines.raw_index import RawIndex  # noqa: E402
from tests.pipelines.production.cluster import (  # noqa: E402
    IN_FLIGHT,
    Deployment,
    deployment,
    postgres_database,
    records,
    runs,
    wait_for,
)

FIRST = date(2026, 3, 10)
DAYS = 7


def celery_backfill(base: Path, raw_source: Path, workers: int) -> float:
    """Wall seconds of a 7-partition backfill on `workers` single-process Celery workers."""
    with postgres_database() as db:
        # A publish interval of an hour: the publish sensor's first tick (nothing to publish) is its last.
        dep = deployment(base, db, pipeline_executor="celery", publish_interval="3600")
        _copy_raw(raw_source, dep.data_dir)
        # Indexed up front: the raw files sensor then leaves the dates to the backfill.
        RawIndex(dep.data_dir, 5.0).refresh()
        try:
            for i in range(workers):
                dep.start_worker(f"bench-{i + 1}")
            dep.start_daemon()
            instance = dep.instance()
            time.sleep(10)  # workers and the daemon's code server up before the clock starts
            t0 = time.perf_counter()
            last = (FIRST + timedelta(days=DAYS - 1)).isoformat()
            done = dep.dagster("job", "backfill", "-w", "workspace.yaml", "-j", "daily_work",
                               "--from", FIRST.isoformat(), "--to", last, "--noprompt")  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            wait_for("the backfill", lambda: _finished(dep), 1800, dep)
            seconds = time.perf_counter() - t0
            failed = runs(instance, statuses=[DagsterRunStatus.FAILURE])
            if failed:
                raise SystemExit(f"{len(failed)} run(s) failed; logs in {dep.home}")
            spans = [
                (r.start_time, r.end_time) for r in records(instance, tags={"ocpp-opendata/stage": "work"})
            ]
            print(f"  runs overlapping at most: {_most_at_once(spans)}; run seconds "
                  f"{sorted(round(e - s, 1) for s, e in spans)}")  # fmt: skip
            return seconds
        finally:
            dep.stop()


def _finished(dep: Deployment) -> bool:
    instance = dep.instance()
    work = runs(instance, tags={"ocpp-opendata/stage": "work"})
    return len(work) == DAYS and not runs(instance, statuses=IN_FLIGHT)


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _copy_raw(source: Path, data_dir: Path) -> None:
    for name in ("raw", "stations.csv"):
        src = source / name
        if src.is_dir():
            shutil.copytree(src, data_dir / name)
        else:
            shutil.copy(src, data_dir / name)


def single_run_backfill(data_dir: Path) -> float:
    """Wall seconds of one in-process run over the 7 partitions (BackfillPolicy.single_run())."""
    import os

    os.environ.update({"OCPP_OPENDATA_DATA_DIR": str(data_dir), "OCPP_OPENDATA_PSEUDONYM_KEY": KEY})
    from ocpp_opendata.settings import load_settings
    from pipelines.daily import availability_for_day, sessions_for_day, station_minutes_for_day
    from pipelines.partitions import daily_partitions
    from pipelines.privacy import Pseudonymizer, load_master_key
    from pipelines.raw_index import RawIndex

    settings = load_settings()

    # The three work tables of every partition in the range, in one step: the work assets' own
    # functions (pipelines/daily.py), called the way the assets call them.
    @asset(
        partitions_def=daily_partitions(settings.timezone, settings.pipeline_start_date),
        backfill_policy=BackfillPolicy.single_run(),
    )
    def work_days(context) -> MaterializeResult:  # type: ignore[no-untyped-def]  # an annotation string fails validation
        pseudo = Pseudonymizer(load_master_key(settings), settings.pseudonym_period, settings.pseudonym_scope)
        index = RawIndex(settings.data_dir, settings.clock_skew_minutes)
        index.refresh()
        for key in context.partition_keys:
            day = date.fromisoformat(key)
            sessions_for_day(settings, index, day, pseudo)
            availability_for_day(settings, index, day)
            station_minutes_for_day(settings, index, day)
        return MaterializeResult(metadata={"partitions": len(context.partition_keys)})

    last = FIRST + timedelta(days=DAYS - 1)
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: FIRST.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
    }
    with DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        result = materialize([work_days], instance=instance, tags=tags)
        seconds = time.perf_counter() - t0
    if not result.success:
        raise SystemExit("single-run backfill failed")
    return seconds


KEY = "benchmark-pseudonym-key-0123456789"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chargers", type=int, default=40)
    ap.add_argument("--keep", type=Path, default=None, help="Keep the data and logs in this folder.")
    args = ap.parse_args()
    import pipeline as day_generator  # benchmarks/pipeline.py: the listener's file layout, per minute

    base = args.keep or Path(tempfile.mkdtemp(prefix="ocpp-backfill-"))
    source = base / "source"
    try:
        t0 = time.perf_counter()
        rows = sum(
            day_generator.generate_day(source, FIRST + timedelta(days=i), args.chargers, seed=i + 1)
            for i in range(DAYS)
        )
        print(f"generated {DAYS} city-days of {args.chargers} chargers: {rows:,} meter rows "
              f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        figures = {}
        for workers in (1, 2):
            print(f"(a/b) Celery, {workers} worker process(es) ...")
            figures[workers] = celery_backfill(base / f"celery{workers}", source, workers)
            print(f"  wall {figures[workers]:.1f} s")
        print("(c) BackfillPolicy.single_run(), in process ...")
        single_dir = base / "single" / "data"
        single_dir.parent.mkdir()
        single_dir.mkdir()
        _copy_raw(source, single_dir)
        single = single_run_backfill(single_dir)
        print(f"  wall {single:.1f} s")
        print(f"\n{'scenario':<44}{'wall s':>8}{'speed-up':>10}")
        print(f"{'(a) Celery, 1 worker':<44}{figures[1]:>8.1f}{1.0:>10.2f}")
        print(f"{'(b) Celery, 2 workers':<44}{figures[2]:>8.1f}{figures[1] / figures[2]:>10.2f}")
        print(f"{'(c) single_run() in process':<44}{single:>8.1f}{figures[1] / single:>10.2f}")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
