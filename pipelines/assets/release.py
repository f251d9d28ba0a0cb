"""The published release: one unpartitioned asset downstream of every work partition, so a
backfill publishes once. It runs in the "publish" concurrency pool (limit 1)."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    asset,
)

from pipelines import checks, reconcile
from pipelines.privacy import PseudonymKeyError
from pipelines.publish import publish
from pipelines.resources import PipelineSettings

BLOCKING_CHECKS = (
    "pseudonym_single_station",
    "no_private_station",
    "suppressed_cells_not_rebuildable",
    "no_idtag_in_release",
    reconcile.CHECK_NAME,
)
RELEASE_KEY = AssetKey("published_release")


@asset(
    name="published_release",
    deps=["work_sessions", "work_availability", "work_station_minutes"],
    group_name="published",
    pool="publish",
    kinds={"parquet", "duckdb"},
    check_specs=[AssetCheckSpec(name, asset=RELEASE_KEY, blocking=True) for name in BLOCKING_CHECKS],
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
        raise Failure(str(exc), allow_retries=False) from exc
    by_name = {r.name: r for r in result.reports}
    yield MaterializeResult(
        metadata={
            "release_id": result.release_id,
            "path": str(result.path),
            "previous_release_id": str(result.manifest.get("previous_release_id")),
            "rows": {name: e["rows"] for name, e in result.manifest["datasets"].items()},
        }
    )
    for name in BLOCKING_CHECKS:
        r = by_name[name]
        yield AssetCheckResult(
            check_name=name, asset_key=RELEASE_KEY, passed=r.passed, metadata={"detail": r.detail}
        )
