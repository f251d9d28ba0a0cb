"""Fixtures shared by every test area: a real listener on a loopback port, a real S3 store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.listener import RunningListener, kill_strays, make_listener
from tests.support.seaweed import SeaweedServer


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[RunningListener]:
    """A started listener (accept-all, 1 s rolls) writing to tmp_path/data; stopped with SIGTERM."""
    running = make_listener(tmp_path / "data").start()
    try:
        yield running
    finally:
        if running.proc and running.proc.poll() is None:
            running.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One real SeaweedFS S3 server for the session (started on first use); tests take a bucket each."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def no_listener_outlives_the_session() -> Iterator[None]:
    yield
    kill_strays()
