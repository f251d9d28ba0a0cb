"""The fast lane (api/fastlane.py) answers the hot routes exactly as the FastAPI routes do.

GET of a plainly valid request takes the fast lane; HEAD always goes through FastAPI's own route, which
computes the same body (the server only drops it), so equal ETags (hashes of the bodies) prove equal
answers. The server here runs with the answer cache off, so that no answer is served from the cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest

from tests.api.conftest import ApiServer, start_api
from tests.api.published_data import first, table

PLAIN = {"Accept-Encoding": "identity"}  # gzip stamps a time into its header: bodies must be raw


@pytest.fixture(scope="module")
def uncached(published: tuple[Path, str]) -> Iterator[httpx.Client]:
    data_dir, release_id = published
    server: ApiServer = start_api(data_dir, "--api-cache-bytes", "0")
    try:
        server.wait_for_release(release_id, timeout=30)
        with httpx.Client(base_url=server.url, timeout=30, headers=PLAIN) as client:
            yield client
    finally:
        server.stop()


def _same_answer(client: httpx.Client, url: str) -> httpx.Response:
    got, head = client.get(url), client.head(url)
    assert got.status_code == head.status_code == 200, (url, got.text[:300])
    for name in ("etag", "x-total-count", "x-truncated", "link", "content-length", "content-type"):
        assert got.headers.get(name) == head.headers.get(name), (url, name)
    return got


def test_fast_lane_pages_equal_fastapi_pages_for_rows_usage_and_availability(
    uncached: httpx.Client, release_dir: Path
) -> None:
    station = first(release_dir, "station_usage_daily", "station_id")
    urls = [
        "/v1/datasets/station_energy_15min/rows?limit=100",
        f"/v1/datasets/station_energy_15min/rows?station_id={station}&limit=7&offset=3",
        "/v1/datasets/charging_sessions/rows?order_by=-energy_kwh&limit=5",
        "/v1/datasets/stations/rows?format=csv",
        "/v1/datasets/stations/rows?format=geojson",
        f"/v1/usage?station_id={station}&period=day",
        "/v1/usage?group_by=area&period=week",
        "/v1/availability?group_by=area&period=month&format=csv",
    ]
    release = uncached.get("/health").json()["release"]
    urls.append(f"/v1/releases/{release}/datasets/station_usage_daily/rows?limit=3")
    for url in urls:
        _same_answer(uncached, url)


def test_totals_are_exact_whether_counted_or_derived_from_a_short_page(
    uncached: httpx.Client, release_dir: Path
) -> None:
    energy = table(release_dir, "station_energy_15min")
    station = first(release_dir, "station_energy_15min", "station_id")
    matching = pc.sum(pc.equal(energy["station_id"], station)).as_py()
    base = f"/v1/datasets/station_energy_15min/rows?station_id={station}"
    # A full page (counted), a short page (derived), a page past the end (counted), no filter (known).
    for url, returned in (
        (f"{base}&limit=2", 2),
        (f"{base}&limit=10000", matching),
        (f"{base}&limit=10&offset={matching + 50}", 0),
    ):
        body = _same_answer(uncached, url).json()
        assert (body["total"], body["returned"]) == (matching, returned), url
    body = uncached.get("/v1/datasets/station_energy_15min/rows?limit=1").json()
    assert body["total"] == energy.num_rows and body["truncated"] is (energy.num_rows > 1)


def test_requests_the_lane_is_unsure_of_get_fastapis_own_answers(uncached: httpx.Client) -> None:
    cases = {
        "/v1/datasets/stations/rows?limit=0": "limit",
        "/v1/datasets/stations/rows?limit=ten": "limit",
        "/v1/datasets/stations/rows?format=xml": "format",
        "/v1/usage?period=fortnight": "period",
        "/v1/usage?offset=-1": "offset",
    }
    for url, word in cases.items():
        r = uncached.get(url)
        assert r.status_code == 400 and word in r.json()["error"], (url, r.text[:300])
    assert uncached.get("/v1/datasets/no_such_table/rows").status_code == 404
    # A repeated scalar is left to FastAPI, which takes the last value.
    twice = uncached.get("/v1/datasets/stations/rows?limit=1&limit=2").json()
    assert twice["limit"] == 2 and twice["returned"] == 2


def test_metrics_name_the_route_template_of_fast_lane_answers(uncached: httpx.Client) -> None:
    uncached.get("/v1/datasets/stations/rows?limit=1")
    uncached.get("/v1/usage?period=month")
    text = uncached.get("/metrics").text
    assert 'route="/v1/datasets/{name}/rows",status="200"' in text
    assert 'route="/v1/usage",status="200"' in text


def test_timestamps_read_as_naive_utc_are_still_written_with_their_offset(
    uncached: httpx.Client, release_dir: Path
) -> None:
    published = table(release_dir, "charging_sessions").sort_by("session_id").slice(0, 20).to_pylist()
    ids = [row["session_id"] for row in published]
    got = {
        row["session_id"]: row
        for row in uncached.get("/v1/datasets/charging_sessions/rows?limit=10000").json()["rows"]
        if row["session_id"] in ids
    }
    for row in published:
        for column in ("plug_in", "charging_start", "charging_end", "plug_out"):
            value = row[column]
            assert got[row["session_id"]][column] == (None if value is None else value.isoformat())
