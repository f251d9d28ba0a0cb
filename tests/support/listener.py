"""Start and stop a real listener process on a loopback port, as an operator would."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Every listener a test started, so that none outlives the session when a test fails before its stop.
STARTED: list[RunningListener] = []


def kill_strays() -> None:
    for running in STARTED:
        if running.proc is not None and running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(10)
    STARTED.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningListener:
    data_dir: Path
    port: int
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    health_scheme: str = "http"
    preexec: Callable[[], None] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Base URL chargers append their id to: ws://127.0.0.1:PORT/ocpp"""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http(self) -> str:
        return f"{self.health_scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0, ssl_context: ssl.SSLContext | None = None) -> RunningListener:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        STARTED.append(self)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ocpp_opendata.cli", "listen", *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            preexec_fn=self.preexec,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"listener exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.http + "/health", timeout=1, context=ssl_context) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"listener did not become healthy in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM: the listener flushes everything to Parquet and exits."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc

    def kill(self) -> None:
        """kill -9: nothing gets a chance to flush."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


def make_listener(
    data_dir: Path,
    *extra: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    log_name: str = "listener.log",
) -> RunningListener:
    port = port or free_port()
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--authorize",
        "accept-all",
        "--roll-seconds",
        "1",
        *extra,
    ]
    full_env = {**os.environ, **(env or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    return RunningListener(data_dir, port, args, full_env, data_dir.parent / log_name)
