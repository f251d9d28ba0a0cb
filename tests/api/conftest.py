"""Fixtures of the API tests: a published release and a real API server (`ocpp-opendata serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance

from ocpp_opendata.settings import load_settings
from pipelines import runner
from tests.api.builder import Shape, build_release
from tests.support.listener import free_port, make_listener

TIMEZONE = "Europe/Stockholm"


@dataclass
class ApiServer:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_release(self, release_id: str, timeout: float = 10.0) -> float:
        """Seconds until /health names `release_id`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if httpx.get(self.url + "/health", timeout=2).json().get("release") == release_id:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"API did not serve {release_id} within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_api(data_dir: Path, *extra: str) -> ApiServer:
    port = free_port()
    log_path = data_dir.parent / f"api-{port}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's life
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocpp_opendata.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--api-release-poll",
            "0.2",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OCPP_OPENDATA_LOG_LEVEL": "WARNING"},
    )
    return ApiServer(data_dir, port, proc, log_path)


def run_pipeline(base: Path, chargers: int = 12, days: int = 2) -> tuple[Path, str]:
    """A real pipeline run: simulator → listener → raw Parquet → Dagster → published release."""
    data_dir = base / "data"
    listener = make_listener(data_dir).start()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--url", listener.url,
             "--chargers", str(chargers), "--days", str(days), "--start", "2026-03-28", "--seed", "5",
             "--timezone", TIMEZONE, "--truth", str(base / "truth"), "--station-registry", str(data_dir),
             "--users-per-charger", "3", "--private-share", "0.4"],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr[-2000:]
    finally:
        listener.stop()
    # Dagster's resources read the key from the environment, as in production.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", "api-test-pseudonym-key-0123456789")
        mp.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
        settings = load_settings({"data_dir": data_dir, "timezone": TIMEZONE})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
    assert summary.release_id, "the pipeline published nothing"
    return data_dir, summary.release_id


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data root published by a real pipeline run: (data_dir, release_id)."""
    return run_pipeline(tmp_path_factory.mktemp("api-real"))


@pytest.fixture(scope="session")
def api(published: tuple[Path, str]) -> Iterator[ApiServer]:
    data_dir, release_id = published
    server = start_api(data_dir)
    try:
        server.wait_for_release(release_id, timeout=30)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def release_dir(published: tuple[Path, str]) -> Path:
    data_dir, release_id = published
    return data_dir / "published" / "releases" / release_id


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A large release per the contract (tests/api/builder.py): files that dwarf readers' metadata reads."""
    data_dir = tmp_path_factory.mktemp("api-synthetic") / "data"
    data_dir.mkdir()
    return data_dir, build_release(data_dir, Shape(days=14))


@pytest.fixture(scope="session")
def synthetic_api(synthetic: tuple[Path, str]) -> Iterator[ApiServer]:
    data_dir, release_id = synthetic
    server = start_api(data_dir)
    try:
        server.wait_for_release(release_id, timeout=30)
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c
