"""Helpers of the operate tests: reading a listener's live snapshot and its instance id."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from ocpp_opendata.live import snapshot_key
from tests.support.listener import RunningListener


def instance_of(listener: RunningListener) -> str:
    with urllib.request.urlopen(listener.http + "/health", timeout=5) as resp:
        return json.loads(resp.read())["instance"]


def snapshot(listener: RunningListener, instance: str) -> dict[str, Any] | None:
    path = listener.data_dir / snapshot_key(instance)
    return json.loads(path.read_bytes()) if path.exists() else None


def charger_in(snap: dict[str, Any] | None, cp_id: str) -> dict[str, Any] | None:
    for charger in (snap or {}).get("chargers", []):
        if charger["charge_point_id"] == cp_id:
            return charger
    return None


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """The first truthy result of `check`, polled; fails the test with the last result otherwise."""
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s; last result {result!r}")
