"""Run the Dagster jobs in-process for people without the UI (`ocpp-opendata pipeline run`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from dagster import DagsterInstance

from ocpp_opendata.settings import Settings
from pipelines.definitions import DAILY_JOB, PUBLISH_JOB, build_definitions
from pipelines.partitions import local_dates_between
from pipelines.privacy import load_master_key
from pipelines.raw_index import RawIndex

# Dagster's console logger prints every event at DEBUG; the CLI reports outcomes itself.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class PipelineRunError(RuntimeError):
    """A Dagster run failed; the message names the step."""


@dataclass(frozen=True)
class RunSummary:
    dates: list[date]
    release_id: str | None


@contextmanager
def instance_for_cli() -> Iterator[DagsterInstance]:
    """The DAGSTER_HOME instance when set (runs show up in the UI), otherwise an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        with DagsterInstance.get() as inst:
            yield inst
    else:
        with DagsterInstance.ephemeral() as inst:
            yield inst


def all_dates(settings: Settings) -> list[date]:
    index = RawIndex.of(settings)
    index.refresh()
    rng = index.event_range()
    if rng is None:
        return []
    first = date.fromisoformat(settings.pipeline_start_date)
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return [d for d in local_dates_between(rng[0], rng[1], settings.timezone) if first <= d <= today]


def run(
    settings: Settings, dates: list[date], *, publish: bool = True, instance: DagsterInstance | None = None
) -> RunSummary:
    load_master_key(settings)  # refuse before any work without a key
    defs = build_definitions(settings)
    daily = defs.resolve_job_def(DAILY_JOB)
    pub = defs.resolve_job_def(PUBLISH_JOB)
    # Dagster's console logger narrates every step at DEBUG; the CLI's --log-level decides here.
    level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    quiet = {"loggers": {"console": {"config": {"log_level": level}}}}
    with instance_for_cli() if instance is None else _given(instance) as inst:
        for d in dates:
            result = daily.execute_in_process(
                partition_key=d.isoformat(), instance=inst, raise_on_error=False, run_config=quiet
            )
            if not result.success:
                raise PipelineRunError(f"materializing {d.isoformat()} failed: {_first_error(result)}")
        release_id = None
        if publish:
            result = pub.execute_in_process(instance=inst, raise_on_error=False, run_config=QUIET)
            if not result.success:
                raise PipelineRunError(f"publishing failed: {_first_error(result)}")
            mats = result.asset_materializations_for_node("published_release")
            if mats:
                release_id = str(mats[-1].metadata["release_id"].value)
    return RunSummary(dates, release_id)


@contextmanager
def _given(instance: DagsterInstance) -> Iterator[DagsterInstance]:
    yield instance


def _first_error(result: object) -> str:
    for ev in result.all_events:  # type: ignore[attr-defined]
        if ev.is_failure and ev.step_failure_data is not None:
            err = ev.step_failure_data.error
            return err.message.strip().splitlines()[-1] if err else "unknown error"
    return "unknown error"
