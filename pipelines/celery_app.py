"""The Celery app of the pipeline's workers: `dagster-celery worker start -A pipelines.celery_app`.

Built from the same environment variables and settings as the executor (`pipelines/executors.py`),
so workers and run workers agree on broker, result backend and queue, and the broker password stays
in the environment: dagster-celery's own `-y config.yaml` route writes the resolved URL into a file
under DAGSTER_HOME.
"""

from __future__ import annotations

import os

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from ocpp_opendata.settings import load_settings
from pipelines.executors import BACKEND_ENV, BROKER_ENV


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: the Celery workers need the broker and the result backend URL")
    return value


app = make_app(
    CeleryExecutor.for_cli(
        broker=_required(BROKER_ENV),
        backend=_required(BACKEND_ENV),
        config_source={"task_default_queue": load_settings().celery_queue},
    ).app_args()
)

# The task a Celery executor sends for each step (named "execute_plan").
execute_plan = create_task(app)
