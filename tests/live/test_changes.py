"""The /v1/live/changes Server-Sent Events stream (resumable with Last-Event-ID), and the whole path:
a real listener, real chargers changing status, the real API showing it in every feed within seconds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.api.conftest import ApiServer, start_api
from tests.live.conftest import REGISTRY, charger, eventually, write_state
from tests.support.chargers import ocpp_charger
from tests.support.listener import make_listener


def events(stream: httpx.Response) -> Iterator[dict[str, str]]:
    """The stream's events as {"id", "event", "data"} (comments and retry lines skipped)."""
    event: dict[str, str] = {}
    for line in stream.iter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith((":", "retry:")):
            name, _, value = line.partition(": ")
            event[name] = value


def status_of(api: ApiServer, uid: str) -> str | None:
    rows = httpx.get(api.url + "/v1/live/status").json()["statuses"]
    return next((r["status"] for r in rows if r["evse_uid"] == uid), None)


def test_the_change_stream_resumes_after_the_last_event_id_it_sent(
    live_api: ApiServer, live_root: Path
) -> None:
    write_state(live_root, [charger("PUB-A", {1: "Available", 2: "Available"})])
    eventually(
        lambda: (
            status_of(live_api, "PUB-A-1") == "AVAILABLE" and status_of(live_api, "PUB-A-2") == "AVAILABLE"
        )
    )
    with httpx.stream("GET", live_api.url + "/v1/live/changes", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        feed = events(stream)
        snap = next(feed)
        assert snap["event"] == "snapshot"
        assert {r["evse_uid"]: r["status"] for r in json.loads(snap["data"])}["PUB-A-1"] == "AVAILABLE"
        write_state(live_root, [charger("PUB-A", {1: "Charging", 2: "Available"})])
        change = next(feed)
        assert change["event"] == "status"
        row = json.loads(change["data"])
        assert (row["evse_uid"], row["status"], row["datex_status"]) == ("PUB-A-1", "CHARGING", "charging")
        last_id = change["id"]
    # Missed while disconnected: two changes.
    write_state(live_root, [charger("PUB-A", {1: "Finishing", 2: "Reserved"})])
    eventually(lambda: status_of(live_api, "PUB-A-2") == "RESERVED")
    write_state(live_root, [charger("PUB-A", {1: "Available", 2: "Reserved"})])
    eventually(lambda: status_of(live_api, "PUB-A-1") == "AVAILABLE")
    with httpx.stream(
        "GET", live_api.url + "/v1/live/changes", headers={"Last-Event-ID": last_id}, timeout=10
    ) as s:
        feed = events(s)
        replayed = [next(feed) for _ in range(2)]
    assert [e["event"] for e in replayed] == ["status", "status"]
    assert [(json.loads(e["data"])["evse_uid"], json.loads(e["data"])["status"]) for e in replayed] == [
        ("PUB-A-2", "RESERVED"),
        ("PUB-A-1", "AVAILABLE"),
    ]
    boot, seq = last_id.split("-")
    assert [e["id"] for e in replayed] == [f"{boot}-{int(seq) + 1}", f"{boot}-{int(seq) + 2}"]
    # An id this process never issued (an earlier process, another worker) gets a fresh snapshot.
    with httpx.stream("GET", live_api.url + "/v1/live/changes?last_event_id=00000000-7", timeout=10) as s:
        assert next(events(s))["event"] == "snapshot"


@pytest.fixture
def real_system(tmp_path: Path) -> Iterator[tuple[str, ApiServer]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "stations.csv").write_text(REGISTRY, encoding="utf-8")
    listener = make_listener(data_dir).start()
    api = start_api(data_dir, "--live-poll", "0.25")
    try:
        eventually(lambda: _answers(api), timeout=30)
        yield listener.url, api
    finally:
        api.stop()
        listener.stop()


def _answers(api: ApiServer) -> bool:
    try:
        return httpx.get(api.url + "/v1/live/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_real_chargers_status_changes_reach_every_feed_within_seconds(
    real_system: tuple[str, ApiServer],
) -> None:
    url, api = real_system
    async with (
        ocpp_charger(url, "PUB-A") as cp16,
        ocpp_charger(url, "PUB-B", "2.0.1") as cp201,
        ocpp_charger(url, "SECRET-HOME") as home,
    ):
        await cp16.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        await home.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        await home.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        with httpx.stream("GET", api.url + "/v1/live/changes", timeout=15) as stream:
            feed = events(stream)
            assert next(feed)["event"] == "snapshot"
            await cp16.call(
                call16.StatusNotification(connector_id=2, error_code="NoError", status="Charging")
            )
            acked = time.monotonic()
            change = json.loads(next(feed)["data"])
            latency = time.monotonic() - acked
        assert (change["evse_uid"], change["status"]) == ("PUB-A-2", "CHARGING")
        assert latency < 5, latency
        evse = httpx.get(api.url + "/ocpi/2.2.1/locations/PUB-A/PUB-A-2").json()["data"]
        assert evse["status"] == "CHARGING"
        await cp201.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
        )
        await cp201.call(
            call201.StatusNotification(
                timestamp="2026-12-03T07:00:00Z", connector_status="Faulted", evse_id=1, connector_id=1
            )
        )
        sent = time.monotonic()

        def datex_b() -> str | None:
            doc = httpx.get(api.url + "/datex2/v3/status").json()
            for site in doc["payload"]["aegiEnergyInfrastructureStatusPublication"][
                "energyInfrastructureSiteStatus"
            ]:
                for station in site["energyInfrastructureStationStatus"]:
                    for p in station["refillPointStatus"]:
                        point = p["aegiElectricChargingPointStatus"]
                        if point["reference"]["idG"] == "PUB-B-1":
                            return point["status"]["value"]
            return None

        eventually(lambda: datex_b() == "faulted", timeout=5)
        assert time.monotonic() - sent < 5
        assert status_of(api, "PUB-B-1") == "OUTOFORDER"
        everything = "".join(
            httpx.get(api.url + u).text
            for u in ("/ocpi/2.2.1/locations", "/datex2/v3/status", "/datex2/v3/table", "/v1/live/status")
        )
        assert "SECRET-HOME" not in everything and "Home charger 7" not in everything
