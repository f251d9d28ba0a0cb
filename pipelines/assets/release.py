"""The published release: one unpartitioned asset downstream of every work partition, so a
backfill publishes once. It runs in the "publish" concurrency pool (limit 1).

Its asset checks: the blocking ones (privacy, totals against raw) with ERROR severity, reported also
when they stop the release; and, with WARN severity and not blocking, what the quality rules withheld
or flagged (pipelines/quality): the release is published with those records left out or marked.
"""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    asset,
)

from pipelines import checks, consistency, reconcile
from pipelines.privacy import PseudonymKeyError
from pipelines.publish import publish
from pipelines.quality.report import QUALITY_API_PATH
from pipelines.resources import PipelineSettings

# Every check `pipelines.publish.publish` runs (Dagster needs them declared up front; a test holds
# this list to the manifest's).
BLOCKING_CHECKS = (
    "pseudonym_single_station",
    "no_private_station",
    "suppressed_cells_not_rebuildable",
    "hidden_sessions_absent",
    consistency.CHECK_NAME,
    "outage_minutes_within_period",
    "outages_add_up_to_monthly_totals",
    "uptime_follows_the_formula",
    "no_idtag_in_release",
    reconcile.CHECK_NAME,
)
# Warnings, not blockers: quality acts per record, so the rest of every dataset is published.
WITHHELD_CHECK = "quality_withheld_records"
FLAGGED_CHECK = "quality_flagged_records"
RELEASE_KEY = AssetKey("published_release")


def check_specs() -> list[AssetCheckSpec]:
    blocking = [
        AssetCheckSpec(
            name, asset=RELEASE_KEY, blocking=True, description="Blocks the release when it fails."
        )
        for name in BLOCKING_CHECKS
    ]
    quality = [
        AssetCheckSpec(
            WITHHELD_CHECK,
            asset=RELEASE_KEY,
            description="Warns when a quality rule withheld records (listed in quality_issues, /v1/quality).",
        ),
        AssetCheckSpec(
            FLAGGED_CHECK,
            asset=RELEASE_KEY,
            description="Warns when a quality rule flagged published records as suspect.",
        ),
    ]
    return blocking + quality


def blocking_results(reports: list[checks.CheckReport]) -> Iterator[AssetCheckResult]:
    by_name = {r.name: r for r in reports}  # a check reported twice (the manifest's scan): the last
    for name in BLOCKING_CHECKS:
        r = by_name.get(name)
        if r is None:  # a check that did not get to run: the release stopped before it
            continue
        yield AssetCheckResult(
            check_name=name,
            asset_key=RELEASE_KEY,
            passed=r.passed,
            severity=AssetCheckSeverity.ERROR,
            metadata={"detail": r.detail},
        )


def quality_results(summary: dict[str, Any]) -> Iterator[AssetCheckResult]:
    """WARN results from the manifest's quality summary (pipelines.quality.report.quality_summary)."""
    rules = summary.get("by_rule", {})
    by_date = summary.get("by_date", {})
    for name, action, count_key in (
        (WITHHELD_CHECK, "withheld", "withheld_records"),
        (FLAGGED_CHECK, "flagged", "flagged_records"),
    ):
        count = int(summary.get(count_key, 0))
        yield AssetCheckResult(
            check_name=name,
            asset_key=RELEASE_KEY,
            passed=count == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={
                "records": count,
                "by_rule": {k.split(":")[0]: v for k, v in rules.items() if k.endswith(f":{action}")},
                "by_date": {d: c[action] for d, c in by_date.items() if c.get(action)},
                "overridden_records": int(summary.get("overridden_records", 0)),
                "report": QUALITY_API_PATH,
            },
        )


@asset(
    name="published_release",
    deps=["work_sessions", "work_availability", "work_station_minutes"],
    group_name="published",
    pool="publish",
    kinds={"parquet", "duckdb"},
    check_specs=check_specs(),
    description="An immutable release under published/releases/<id>, switched in as published/current "
    "only after every blocking check (privacy, totals against raw) passed.",
)
def published_release(
    context: AssetExecutionContext, pipeline: PipelineSettings
) -> Iterator[MaterializeResult | AssetCheckResult]:
    settings = pipeline.settings()
    try:
        result = publish(settings)
    except PseudonymKeyError as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    except checks.PrivacyCheckError as exc:
        for r in exc.reports:
            context.log.error(f"check {r.name}: {'passed' if r.passed else 'FAILED'} {r.detail}")
        # Recorded before the failure, so the UI (and `pipeline run`) show which check stopped it.
        yield from blocking_results(exc.reports)
        raise Failure(str(exc), allow_retries=False) from exc
    yield MaterializeResult(
        metadata={
            "release_id": result.release_id,
            "path": str(result.path),
            "previous_release_id": str(result.manifest.get("previous_release_id")),
            "rows": {name: e["rows"] for name, e in result.manifest["datasets"].items()},
            # Distinct records withheld, flagged, overridden: per release, rule, date and dataset.
            "quality": result.manifest.get("quality", {}),
        }
    )
    yield from blocking_results(result.reports)
    yield from quality_results(result.manifest.get("quality", {}))
