"""Fixtures of the live feed tests: a registry, snapshots written with the contract's own writer, and a
real API server (`ocpp-opendata serve`) reading them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocpp_opendata.live import ChargerState, ConnectorState, Snapshot, snapshot_key, write_snapshot_file
from tests.api.conftest import ApiServer, start_api

SCHEMAS = Path(__file__).with_name("schemas")
OFFLINE_AFTER = 30  # s, the server's --live-offline-after

REGISTRY = """\
id,name,latitude,longitude,area,max_power_kw,access,connectors,address,city,postal_code,country,country_code,party_id,evse_ids,connector_standard,power_type
PUB-A,Storgatan 1,59.33001,18.06001,Centrum,22,public,2,Storgatan 1,Stockholm,11122,SWE,SE,ABC,SE*ABC*E1*1;SE*ABC*E1*2,,
PUB-B,Hamnhubben,59.31002,18.09002,Haven,150,public,1,Hamnvägen 4,Stockholm,11550,SWE,SE,ABC,,IEC_62196_T2_COMBO,DC
PUB-C,Västra torget,59.34003,18.02003,West,11,public,1,Västra torget 2,Stockholm,11260,SWE,,,,,
SECRET-HOME,Home charger 7,59.41234,18.14321,Noord,11,home,1,Hemligvägen 9,Täby,18330,SWE,SE,ABC,,,
"""  # noqa: E501 - a CSV file, one station a line
PRIVATE_MARKERS = (
    "SECRET-HOME",
    "Home charger 7",
    "59.41234",
    "18.14321",
    "Hemligvägen",
    "UNREG-9",
    "59.412",
)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def charger(
    cp_id: str, statuses: dict[int, str], *, seen_ago: float = 0.0, at: datetime | None = None
) -> ChargerState:
    now = datetime.now(UTC)
    at = at or now
    return ChargerState(
        charge_point_id=cp_id,
        ocpp_version="1.6",
        connected=True,
        connected_since=iso(now - timedelta(hours=1)),
        last_seen=iso(now - timedelta(seconds=seen_ago)),
        heartbeat_interval=300,
        connectors=[ConnectorState(n, n, s, "NoError", iso(at)) for n, s in statuses.items()],
    )


def write_state(data_dir: Path, chargers: list[ChargerState], instance: str = "test") -> None:
    write_snapshot_file(
        data_dir / snapshot_key(instance), Snapshot(instance, iso(datetime.now(UTC)), chargers)
    )


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"not true within {timeout} s; last result {result!r}")


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def live_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("live") / "data"
    data_dir.mkdir()
    (data_dir / "stations.csv").write_text(REGISTRY, encoding="utf-8")
    return data_dir


@pytest.fixture(scope="module")
def live_api(live_root: Path) -> Iterator[ApiServer]:
    server = start_api(
        live_root,
        "--live-poll", "0.1",
        "--live-offline-after", str(OFFLINE_AFTER),
        "--live-operator-name", "Veldhaven Laddnät",
    )  # fmt: skip
    try:
        eventually(lambda: _up(server), timeout=30)
        yield server
    finally:
        server.stop()


def _up(server: ApiServer) -> bool:
    try:
        return httpx.get(server.url + "/v1/live/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        if server.proc.poll() is not None:
            raise RuntimeError(server.log()) from None
        return False
