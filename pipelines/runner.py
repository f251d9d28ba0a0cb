"""Run the Dagster jobs in-process for people without the UI (`ocpp-opendata pipeline run`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dagster import DagsterInstance

from ocpp_opendata.settings import Settings
from pipelines.definitions import DAILY_JOB, PUBLISH_JOB, build_definitions
from pipelines.partitions import local_dates_between
from pipelines.privacy import load_master_key
from pipelines.raw_index import RawIndex

# Dagster's console logger prints every event at DEBUG; the CLI reports outcomes itself.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class CheckOutcome:
    """One asset check evaluation of the publish run (pipelines/assets/release.py)."""

    name: str
    passed: bool
    severity: str  # "ERROR": blocks the release when failed; "WARN": reported, the release goes out
    detail: str


class PipelineRunError(RuntimeError):
    """A Dagster run failed; the message names the step. `checks`: the checks evaluated before it."""

    def __init__(self, message: str, checks: list[CheckOutcome] | None = None) -> None:
        super().__init__(message)
        self.checks = checks or []

    @property
    def blocked(self) -> bool:
        """A blocking (ERROR) check failed: the release was refused, not broken."""
        return any(c.severity == "ERROR" and not c.passed for c in self.checks)


@dataclass(frozen=True)
class RunSummary:
    dates: list[date]
    release_id: str | None
    checks: list[CheckOutcome] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # published rows per dataset
    quality: dict[str, Any] = field(default_factory=dict)  # the manifest's quality summary


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
        if not publish:
            return RunSummary(dates, None)
        result = pub.execute_in_process(instance=inst, raise_on_error=False, run_config=QUIET)
        outcomes = _check_outcomes(result)
        if not result.success:
            raise PipelineRunError(f"publishing failed: {_first_error(result)}", outcomes)
        mats = result.asset_materializations_for_node("published_release")
        if not mats:
            return RunSummary(dates, None, outcomes)
        meta = mats[-1].metadata
        return RunSummary(
            dates,
            str(meta["release_id"].value),
            outcomes,
            dict(meta["rows"].value) if "rows" in meta else {},  # type: ignore[arg-type]
            dict(meta["quality"].value) if "quality" in meta else {},  # type: ignore[arg-type]
        )


def _check_outcomes(result: Any) -> list[CheckOutcome]:
    out = []
    for e in result.get_asset_check_evaluations():
        detail = e.metadata.get("detail")
        out.append(
            CheckOutcome(e.check_name, e.passed, e.severity.value, str(detail.value) if detail else "")
        )
    return out


@contextmanager
def _given(instance: DagsterInstance) -> Iterator[DagsterInstance]:
    yield instance


def _first_error(result: object) -> str:
    for ev in result.all_events:  # type: ignore[attr-defined]
        if ev.is_failure and ev.step_failure_data is not None:
            err = ev.step_failure_data.error
            return err.message.strip().splitlines()[-1] if err else "unknown error"
    return "unknown error"
