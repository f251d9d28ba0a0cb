"""Fixtures shared by every test area: a real listener on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.listener import RunningListener, make_listener


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[RunningListener]:
    """A started listener (accept-all, 1 s rolls) writing to tmp_path/data; stopped with SIGTERM."""
    running = make_listener(tmp_path / "data").start()
    try:
        yield running
    finally:
        if running.proc and running.proc.poll() is None:
            running.stop()
