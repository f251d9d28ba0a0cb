"""Listener and API that share nothing but Redis (`--operator-broker`, a real redis-server): a real
charger's status changes reach the live feeds through the listener's status events alone."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.api.conftest import ApiServer, start_api
from tests.landing.sync_charger import sync_charger
from tests.live.conftest import PRIVATE_MARKERS, REGISTRY, eventually
from tests.support.listener import RunningListener, free_port, make_listener

WITHIN_S = 60  # the hard limit; benchmarks/live.py measures the real figure


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=1).ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_only(broker: str, tmp_path: Path) -> Iterator[tuple[RunningListener, ApiServer, Path]]:
    listener_dir, api_dir = tmp_path / "listener" / "data", tmp_path / "api" / "data"
    for data_dir in (listener_dir, api_dir):
        data_dir.mkdir(parents=True)
        (data_dir / "stations.csv").write_text(REGISTRY, encoding="utf-8")
    listener = make_listener(listener_dir, "--operator-broker", broker).start()
    api = start_api(api_dir, "--operator-broker", broker, "--live-poll", "0.25")
    try:
        eventually(lambda: _answers(api), timeout=30)
        # The API's subscription is up once a published event reaches it: wait for that before the test.
        client = redis.Redis.from_url(broker)
        eventually(lambda: client.pubsub_numsub("ocpp-opendata:live")[0][1] >= 1, timeout=30)
        yield listener, api, api_dir
    finally:
        api.stop()
        listener.stop()


def _answers(api: ApiServer) -> bool:
    try:
        return httpx.get(api.url + "/v1/live/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        if api.proc.poll() is not None:
            raise RuntimeError(api.log()) from None
        return False


def statuses(api: ApiServer) -> dict[str, str]:
    rows = httpx.get(api.url + "/v1/live/status").json()["statuses"]
    return {r["evse_uid"]: r["status"] for r in rows}


def test_status_changes_reach_the_api_through_redis_alone(
    redis_only: tuple[RunningListener, ApiServer, Path],
) -> None:
    listener, api, api_dir = redis_only
    assert statuses(api)["PUB-B-1"] == "UNKNOWN"
    with sync_charger(listener.url, "PUB-B") as cp, sync_charger(listener.url, "SECRET-HOME") as home:
        home.status(1, "Faulted", "GroundFailure")
        cp.status(1, "Charging")
        eventually(lambda: statuses(api)["PUB-B-1"] == "CHARGING", timeout=WITHIN_S)
        cp.status(1, "Faulted", "GroundFailure")
        eventually(lambda: statuses(api)["PUB-B-1"] == "OUTOFORDER", timeout=WITHIN_S)
        evse = httpx.get(api.url + "/ocpi/2.2.1/locations/PUB-B/PUB-B-1").json()["data"]
        assert evse["status"] == "OUTOFORDER"
        assert statuses(api)["PUB-A-1"] == "UNKNOWN"  # never connected: still unknown
    # Nothing came through files: the API's data root holds only its registry.
    assert sorted(p.name for p in api_dir.iterdir()) == ["stations.csv"]
    for url in ("/v1/live/status", "/ocpi/2.2.1/locations", "/datex2/v3/status", "/datex2/v3/table"):
        body = httpx.get(api.url + url).text
        assert not [m for m in PRIVATE_MARKERS if m in body], url
