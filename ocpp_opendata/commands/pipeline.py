"""`ocpp-opendata pipeline run|publish|compact|quality`: the Dagster pipelines without the UI."""

from __future__ import annotations

import sys
from typing import Any

import click

from ocpp_opendata.objectstore import StoreError
from ocpp_opendata.options import settings_from, settings_options

_OPTIONS = (
    "store",
    "timezone",
    "pipeline_start_date",
    "pseudonym_key_file",
    "pseudonym_period",
    "pseudonym_scope",
    "privacy_k",
    "round_minutes",
    "round_energy_kwh",
    "round_power_kw",
    "clock_skew_minutes",
    "clock_offset_min_seconds",
    "clock_offset_max_spread_seconds",
    "max_session_days",
    "station_registry",
    "areas_geojson",
    "license",
    "publisher",
    "releases_kept",
    "publish_interval",
    "raw_retention_days",
)


@click.group()
def pipeline() -> None:
    """Materialize and publish the open datasets (the same Dagster jobs `dagster dev` runs)."""


@pipeline.command("run")
@settings_options(*_OPTIONS)
@click.option("--date", "dates", multiple=True, help="Local date (YYYY-MM-DD) to materialize; repeatable.")
@click.option("--all", "all_dates", is_flag=True, help="Every date the raw zone has events for.")
@click.option("--no-publish", is_flag=True, help="Only materialize the work tables; publish nothing.")
def run_cmd(dates: tuple[str, ...], all_dates: bool, no_publish: bool, **options: Any) -> None:
    """Materialize dates, then publish one release (a backfill publishes once)."""
    from pipelines import runner
    from pipelines.checks import PrivacyCheckError
    from pipelines.partitions import parse_day
    from pipelines.privacy import PseudonymKeyError

    settings = settings_from(options)
    if bool(dates) == all_dates:
        raise click.UsageError("give --date D (repeatable) or --all")
    try:
        chosen = runner.all_dates(settings) if all_dates else sorted({parse_day(d) for d in dates})
    except StoreError as exc:
        _store_unreachable(exc)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        summary = runner.run(settings, chosen, publish=not no_publish)
    except runner.PipelineRunError as exc:
        _run_failed(exc)
    except (PseudonymKeyError, PrivacyCheckError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StoreError as exc:
        _store_unreachable(exc)
    click.echo(f"materialized {len(summary.dates)} date(s)")
    if summary.release_id:
        _print_summary(summary)


def _print_summary(summary: Any) -> None:
    """What went out: rows and quality per dataset, then every check. Quality warnings exit 0."""
    from ocpp_opendata.commands import run_report

    click.echo(f"published release {summary.release_id}")
    click.echo(run_report.quality_line(summary.quality))
    click.echo("")
    for line in run_report.datasets_table(summary.rows, summary.quality):
        click.echo(line)
    click.echo("")
    for line in run_report.checks_table(summary.checks):
        click.echo(line)


def _run_failed(exc: Any) -> None:
    """Exit 2, with the checks table when a blocking check refused the release."""
    from ocpp_opendata.commands import run_report

    if exc.checks:
        for line in run_report.checks_table(exc.checks):
            click.echo(line, err=True)
    if exc.blocked:
        click.echo("error: release blocked by a failed check; nothing was published", err=True)
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@pipeline.command("quality")
@settings_options("store", "timezone")
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True, help="Local dates back.")
def quality_cmd(days: int, **options: Any) -> None:
    """Per local date and rule: records the current release withheld, flagged or let through by override."""
    import json

    from ocpp_opendata.commands import run_report
    from ocpp_opendata.objectstore import store_for
    from pipelines.publish import build_base
    from pipelines.published_schema import MANIFEST_FILENAME, current_release_dir

    settings = settings_from(options)
    # Where this host builds releases: DATA_DIR, or a local store's root; with a remote store the
    # build host keeps the current release there too (the base of the next incremental build).
    base = build_base(settings, store_for(settings))
    release = current_release_dir(base)
    if release is None:
        click.echo(f"error: nothing is published under {base}", err=True)
        sys.exit(2)
    manifest = json.loads((release / MANIFEST_FILENAME).read_text())
    window, counts = run_report.daily_counts(release, manifest, days)
    click.echo(f"release {manifest['release_id']}: quality_issues of the last {len(window)} local date(s)")
    for line in run_report.daily_table(window, counts):
        click.echo(line)


@pipeline.command("publish")
@settings_options(*_OPTIONS)
def publish_cmd(**options: Any) -> None:
    """Publish a release from the work tables already materialized."""
    from pipelines import runner
    from pipelines.checks import PrivacyCheckError
    from pipelines.privacy import PseudonymKeyError

    settings = settings_from(options)
    try:
        summary = runner.run(settings, [], publish=True)
    except runner.PipelineRunError as exc:
        _run_failed(exc)
    except (PseudonymKeyError, PrivacyCheckError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StoreError as exc:
        _store_unreachable(exc)
    _print_summary(summary)


@pipeline.command("compact")
@settings_options(*_OPTIONS)
@click.option("--grace-days", type=int, default=2, show_default=True, help="Receipt dates this recent stay.")
def compact_cmd(grace_days: int, **options: Any) -> None:
    """Compact closed raw receipt dates into one file each; redact personal data past retention."""
    from datetime import UTC, datetime

    from pipelines.maintenance import maintain_raw
    from pipelines.privacy import PseudonymKeyError

    settings = settings_from(options)
    try:
        report = maintain_raw(settings, datetime.now(UTC).date(), grace_days)
    except PseudonymKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except StoreError as exc:
        _store_unreachable(exc)
    click.echo(
        f"compacted {report.compacted_partitions} partition(s), removed {report.files_removed} file(s), "
        f"redacted {report.redacted_partitions} partition(s)"
    )


def _store_unreachable(exc: Exception) -> None:
    # A store outage is transient: exit 1 (run it again later), not 2 (fix the command). Half-done work
    # is safe to repeat: a release is switched by one pointer PUT, and compaction keeps a journal.
    click.echo(f"error: the store could not be used: {exc}", err=True)
    sys.exit(1)
