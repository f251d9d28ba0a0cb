"""Object-store tests of the listener: the session's SeaweedFS (tests/conftest.py), a bucket per test."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from ocpp_opendata.objectstore import Store, mirror, open_store
from tests.support.chargers import rows
from tests.support.listener import RunningListener, make_listener
from tests.support.seaweed import SeaweedServer

PREFIX = "fleet"  # the store is s3://<bucket>/fleet: keys below a prefix, as an operator would set it


@pytest.fixture
def bucket(seaweed: SeaweedServer) -> str:
    if seaweed.proc is None:  # a previous test's outage ended with a failure: bring the store back
        seaweed.start()
    return seaweed.create_bucket()


def store_url(bucket: str) -> str:
    return f"s3://{bucket}/{PREFIX}"


def bucket_store(seaweed: SeaweedServer, bucket: str, data_dir: Path) -> Store:
    return open_store(store_url(bucket), data_dir, env=seaweed.env())


def s3_listener(
    data_dir: Path, seaweed: SeaweedServer, bucket: str, *extra: str, log_name: str = "listener.log"
) -> RunningListener:
    """A listener whose raw zone is the bucket; retries at most a second apart so tests stay short."""
    args = ["--store", store_url(bucket), "--upload-backoff-max", "1", "--roll-seconds", "0.5", *extra]
    return make_listener(data_dir, *args, env=seaweed.env(), log_name=log_name)


def bucket_rows(
    seaweed: SeaweedServer, bucket: str, copy_to: Path, table: str, where: str = "true"
) -> list[dict[str, Any]]:
    """Rows of one raw table as stored in the bucket (downloaded, then read like the local raw zone)."""
    mirror(bucket_store(seaweed, bucket, copy_to), f"raw/{table}", copy_to)
    return rows(copy_to, table, where)


def health(listener: RunningListener) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(listener.http + "/health", timeout=5) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def metrics(listener: RunningListener) -> str:
    with urllib.request.urlopen(listener.http + "/metrics", timeout=5) as resp:
        return resp.read().decode()


def uploads(listener: RunningListener) -> dict[str, Any]:
    """The upload part of /health: backlog, local bytes, failures."""
    return health(listener)[1]["uploads"]


def uploaded_files(listener: RunningListener) -> int:
    found = re.search(r"^ocpp_opendata_uploads_total (\d+)$", metrics(listener), re.MULTILINE)
    assert found, "uploads_total is missing from /metrics"
    return int(found.group(1))


async def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


def outbox_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "outbox").rglob("*.parquet"))
