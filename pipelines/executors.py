"""The executor launched runs use, chosen by the `pipeline_executor` setting.

Secrets never enter code or run config: the Celery broker and result backend URLs (they may hold a
password) are `env:` references that Dagster resolves in the run worker's environment, and the
workers read the same variables through `deploy/celery.yaml`.
"""

from __future__ import annotations

from dagster import ExecutorDefinition, in_process_executor, multi_or_in_process_executor

from ocpp_opendata.settings import Settings

BROKER_ENV = "DAGSTER_CELERY_BROKER_URL"
BACKEND_ENV = "DAGSTER_CELERY_BACKEND_URL"


def celery_config(settings: Settings) -> dict:
    """Executor config of the Celery executor: URLs from the environment, the queue from settings."""
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV},
        # Queue of every step unless a step carries its own `dagster-celery/queue` tag.
        "config_source": {"task_default_queue": settings.celery_queue},
    }


def executor_for(settings: Settings) -> ExecutorDefinition:
    if settings.pipeline_executor == "in_process":
        return in_process_executor
    if settings.pipeline_executor == "celery":
        # dagster-celery is in the `prod` extra: imported only where it is chosen.
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(settings), name="celery")
    # Dagster's own default: a process per step in launched runs, in-process for execute_in_process.
    return multi_or_in_process_executor
