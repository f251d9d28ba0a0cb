"""A real upstream CSMS (tests/support/csms.py) and a listener in proxy mode in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.csms import RunningCsms
from tests.support.listener import free_port


@pytest.fixture
def csms(tmp_path: Path) -> Iterator[RunningCsms]:
    running = RunningCsms(free_port(), tmp_path / "csms.jsonl").start()
    try:
        yield running
    finally:
        running.stop()
