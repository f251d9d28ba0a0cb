"""Listener and API that share nothing but an S3 store (a real SeaweedFS): a real charger's status change
reaches every live feed through the store's live/ prefix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ocpp_opendata.objectstore import Store, open_store
from tests.api.conftest import ApiServer, start_api
from tests.landing.sync_charger import sync_charger
from tests.live.conftest import PRIVATE_MARKERS, REGISTRY, eventually
from tests.support.listener import RunningListener, make_listener
from tests.support.seaweed import SeaweedServer

# The hard limit for a change to reach the feeds; the observed figure is in benchmarks/live.py.
WITHIN_S = 60


@dataclass
class Split:
    listener: RunningListener
    api: ApiServer
    store: Store
    listener_dir: Path
    api_dir: Path


@pytest.fixture
def split(seaweed: SeaweedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Split]:
    url = f"s3://{seaweed.create_bucket()}/city"
    listener_dir, api_dir = tmp_path / "listener" / "data", tmp_path / "api" / "data"
    # The registry is operator configuration: each machine has its own copy of it.
    for data_dir in (listener_dir, api_dir):
        data_dir.mkdir(parents=True)
        (data_dir / "stations.csv").write_text(REGISTRY, encoding="utf-8")
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)  # start_api passes the environment on to the API process
    listener = make_listener(listener_dir, "--store", url, env=seaweed.env()).start()
    api = start_api(api_dir, "--store", url, "--live-poll", "0.25")
    try:
        eventually(lambda: _answers(api), timeout=30)
        yield Split(listener, api, open_store(url, api_dir, seaweed.env()), listener_dir, api_dir)
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


def test_a_status_change_reaches_the_api_through_the_object_store_alone(split: Split) -> None:
    assert statuses(split.api)["PUB-A-2"] == "UNKNOWN"  # nothing is known before the charger speaks
    with (
        sync_charger(split.listener.url, "PUB-A") as cp,
        sync_charger(split.listener.url, "SECRET-HOME") as home,
    ):
        home.status(1, "Charging")
        cp.status(2, "Faulted", "GroundFailure")
        eventually(lambda: statuses(split.api)["PUB-A-2"] == "OUTOFORDER", timeout=WITHIN_S)
        evse = httpx.get(split.api.url + "/ocpi/2.2.1/locations/PUB-A/PUB-A-2").json()["data"]
        assert evse["status"] == "OUTOFORDER"
        cp.status(2, "Available")
        eventually(lambda: statuses(split.api)["PUB-A-2"] == "AVAILABLE", timeout=WITHIN_S)
        datex = httpx.get(split.api.url + "/datex2/v3/status").text
        assert '"available"' in datex
    # The way it came: the listener's snapshot in the store, and nothing in the API's own data root.
    keys = [o.key for o in split.store.list("live/")]
    assert keys and all(k.startswith("live/") and k.endswith(".json") for k in keys)
    assert not (split.api_dir / "live").exists()
    assert (split.listener_dir / "live").exists()
    for url in ("/v1/live/status", "/ocpi/2.2.1/locations", "/datex2/v3/status", "/datex2/v3/table"):
        body = httpx.get(split.api.url + url).text
        assert not [m for m in PRIVATE_MARKERS if m in body], url
