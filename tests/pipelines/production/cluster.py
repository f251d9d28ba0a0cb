"""A production Dagster deployment on this machine: a PostgreSQL database of its own, a DAGSTER_HOME
with `deploy/dagster.postgres.yaml`, `dagster-daemon` and `dagster-celery` workers as subprocesses."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import psycopg2
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunRecord, RunsFilter
from dagster._core.scheduler.instigation import InstigatorTick, InstigatorType

from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.helpers import write_registry
from tests.pipelines.rawdata import RawZone

REPO = Path(__file__).resolve().parents[3]
# The Dagster and Celery commands of the environment running the tests (not resolved: a venv's python
# is a symlink to the base interpreter, whose folder has none of them).
BIN = Path(sys.executable).parent
PG_HOST = "127.0.0.1"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
# Results return to the run worker over RabbitMQ too (the `redis` client is not a dependency).
BACKEND = "rpc://"
STATIONS = ("CP1", "CP2", "CP3")
T = TypeVar("T")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A database of our own on the machine's PostgreSQL (trust auth), dropped afterwards."""
    name = f"ocpp_dagster_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(sql: str) -> None:
    con = psycopg2.connect(host=PG_HOST, user="postgres", dbname="postgres")
    try:
        con.autocommit = True
        con.cursor().execute(sql)
    finally:
        con.close()


@dataclass
class Deployment:
    """Everything the processes of one deployment share: instance, data root, environment."""

    home: Path
    data_dir: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def instance(self) -> DagsterInstance:
        old = {k: os.environ.get(k) for k in self.env if k.startswith("DAGSTER_")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("DAGSTER_")})
        try:
            return DagsterInstance.from_config(str(self.home))
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """A process of the deployment in its own session (so its children stop with it)."""
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def start_daemon(self) -> subprocess.Popen[bytes]:
        return self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")])

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        # One process per worker, so "two workers" means two processes on the queue, each taking a step.
        return self.start(
            name,
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "pipelines.celery_app", "-n", name,
             "-q", self.env["OCPP_OPENDATA_CELERY_QUEUE"], "--", "--concurrency=1", "--without-gossip",
             "--without-mingle"],
        )  # fmt: skip

    def dagster(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The `dagster` CLI against this deployment's instance and the project's workspace."""
        return subprocess.run(
            [str(BIN / "dagster"), *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()
        _kill_processes_of(self.home)

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def _kill_processes_of(home: Path) -> None:
    """Kill what the deployment's processes started outside their own process groups: code servers and
    run workers launched by the daemon keep running (a run worker waiting for Celery results polls for
    ever) and would eat the CPU of every later test. They are found by their DAGSTER_HOME."""
    marker = f"DAGSTER_HOME={home}".encode()
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit() or int(proc_dir.name) == os.getpid():
            continue
        try:
            environ = (proc_dir / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone already, or not ours to read
        if marker in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc_dir.name), signal.SIGKILL)


def deployment(base: Path, db: str, **settings: str) -> Deployment:
    """A DAGSTER_HOME with the shipped production config, and the environment every process gets."""
    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    data_dir = base / "data"
    data_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPP_OPENDATA_", "DAGSTER_"))}
    env.update(
        {
            # `dagster-celery worker start` runs `celery` from PATH, which the venv may not be on.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": PG_HOST,
            "DAGSTER_PG_DB": db,
            "DAGSTER_PG_USERNAME": "postgres",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_CELERY_BROKER_URL": BROKER,
            "DAGSTER_CELERY_BACKEND_URL": BACKEND,
            "OCPP_OPENDATA_DATA_DIR": str(data_dir),
            "OCPP_OPENDATA_PSEUDONYM_KEY": TEST_KEY,
            # One card per station: with k = 1 every session has a row (privacy has tests of its own).
            "OCPP_OPENDATA_PRIVACY_K": "1",
            "OCPP_OPENDATA_CELERY_QUEUE": f"ocpp-test-{uuid.uuid4().hex[:8]}",
            **{f"OCPP_OPENDATA_{k.upper()}": v for k, v in settings.items()},
        }
    )
    return Deployment(home, data_dir, env)


def write_city_days(data_dir: Path, days: list[date]) -> None:
    """Three public stations with one metered session each per day (enough users for k = 2)."""
    raw = RawZone(data_dir)
    for n, day in enumerate(days):
        t = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        for i, cp in enumerate(STATIONS):
            tx = f"{cp}-{day.isoformat()}"
            if n == 0:
                raw.connected(cp, t - timedelta(hours=2))
            raw.status(cp, 1, t - timedelta(minutes=60), "Available")
            raw.status(cp, 1, t + timedelta(minutes=i), "Preparing")
            raw.start(cp, 1, t + timedelta(minutes=i), tx, f"TAG{i}", 100_000.0 * n)
            end = raw.charge(cp, 1, t + timedelta(minutes=i), 30, 7400, 100_000.0 * n, tx=tx)
            raw.stop(cp, t + timedelta(minutes=31 + i), tx, end)
            raw.status(cp, 1, t + timedelta(minutes=31 + i), "Available")
    raw.flush()
    write_registry(
        data_dir, [(cp, cp, 52.2, 5.9 + i / 100, "Centrum", 22, "public") for i, cp in enumerate(STATIONS)]
    )


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, dep: Deployment) -> T:
    """Poll `probe` until it returns something truthy; on timeout fail with the daemon's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        for proc in dep.procs:
            assert proc.poll() is None, f"{proc.args[0]} exited with {proc.returncode}:\n{dep.log('daemon')}"
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n--- daemon log ---\n{dep.log('daemon')}")


def runs(instance: DagsterInstance, **filters: object) -> list[DagsterRun]:
    return list(instance.get_runs(RunsFilter(**filters)))  # type: ignore[arg-type]


def records(instance: DagsterInstance, **filters: object) -> list[RunRecord]:
    """Runs with their start and end times."""
    return list(instance.get_run_records(RunsFilter(**filters)))  # type: ignore[arg-type]


def sensor_ticks(instance: DagsterInstance, sensor: str) -> list[InstigatorTick]:
    """The ticks the daemon recorded for a sensor, newest first."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor:
            return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))
    return []


IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]
