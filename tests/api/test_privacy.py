"""No non-public station (home, private, fleet) is reachable through any route of the API."""

from __future__ import annotations

from pathlib import Path

import httpx

from pipelines.published_schema import DATASETS
from tests.api.conftest import ApiServer
from tests.api.published_data import registry


def _every_answer(client: httpx.Client) -> list[tuple[str, bytes]]:
    paths = ["/v1/stations", "/v1/stations?format=geojson", "/v1/datasets", "/v1/datapackage.json"]
    paths += ["/v1/dcat.jsonld", "/v1/manifest.json", "/v1/releases"]
    for name in DATASETS:
        paths += [
            f"/v1/datasets/{name}",
            f"/v1/datasets/{name}/rows?limit=10000",
            f"/v1/datasets/{name}/download.csv",
            f"/v1/datasets/{name}/download.parquet",
            f"/v1/sql?q=SELECT%20*%20FROM%20{name}",
        ]
    for kind in ("usage", "availability"):
        for group in ("station", "area"):
            for period in ("hour", "day", "week", "month"):
                paths.append(f"/v1/{kind}?group_by={group}&period={period}&limit=10000")
    answers = []
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:200])
        answers.append((path, r.content))
    return answers


def test_no_route_reveals_a_non_public_station_by_id_or_coordinates(
    client: httpx.Client, api: ApiServer
) -> None:
    private = [s for s in registry(api.data_dir) if s["access"] != "public"]
    assert private, "the simulated city has non-public stations"
    for path, body in _every_answer(client):
        for station in private:
            assert station["id"].encode() not in body, (path, station["id"])
            if "stations" in path:
                assert f"{float(station['latitude'])}".encode() not in body, (path, station["id"])
    for station in private:
        rows = client.get("/v1/datasets/charging_sessions/rows", params={"station_id": station["id"]}).json()
        assert rows["total"] == 0 and rows["rows"] == []
        assert client.get("/v1/stations", params={"station_id": station["id"]}).status_code == 404


def test_public_stations_are_served(client: httpx.Client, api: ApiServer, release_dir: Path) -> None:
    public = {s["id"] for s in registry(api.data_dir) if s["access"] == "public"}
    served = {s["station_id"] for s in client.get("/v1/stations").json()["stations"]}
    assert served and served <= public
