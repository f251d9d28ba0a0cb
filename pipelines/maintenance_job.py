"""Dagster job and schedule for raw-zone compaction and retention (operators turn the schedule on)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from dagster import DefaultScheduleStatus, OpExecutionContext, ScheduleDefinition, job, op

from pipelines.maintenance import maintain_raw
from pipelines.resources import PipelineSettings


@op(pool="raw_maintenance")
def compact_and_redact_raw(context: OpExecutionContext, pipeline: PipelineSettings) -> None:
    settings = pipeline.settings()
    report = maintain_raw(settings, datetime.now(ZoneInfo("UTC")).date())
    context.log.info(f"raw maintenance: {report}")


@job(
    name="raw_maintenance",
    description="Compact closed raw receipt dates; redact personal data past retention.",
)
def raw_maintenance_job() -> None:
    compact_and_redact_raw()


raw_maintenance_schedule = ScheduleDefinition(
    name="raw_maintenance_daily",
    job=raw_maintenance_job,
    cron_schedule="30 3 * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="03:30 UTC: compaction and retention of the raw zone (turn on per deployment).",
)
