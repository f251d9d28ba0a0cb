"""Hot swaps: a new release is served within seconds, under load, with no failed or mixed answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.builder import Shape, build_release
from tests.api.conftest import ApiServer, start_api

URLS = (
    "/v1/datasets",
    "/v1/datasets/station_usage_daily/rows?limit=50",
    "/v1/usage?period=week&group_by=area",
    "/v1/datasets/stations/download.parquet",
    "/v1/stations?format=geojson",
)
# One worker only: more than two SQL queries at once are refused by design (429).
SQL_URLS = ("/v1/sql?q=SELECT%20count(*)%20AS%20n%20FROM%20charging_sessions",)


@pytest.fixture
def swapping_api(tmp_path: Path) -> Iterator[tuple[ApiServer, str]]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    first = build_release(data_dir, Shape(stations=6, days=3))
    server = start_api(data_dir)
    try:
        server.wait_for_release(first, timeout=30)
        yield server, first
    finally:
        server.stop()


def test_swaps_under_load_fail_no_request_and_never_mix_releases(swapping_api: tuple[ApiServer, str]) -> None:
    server, first = swapping_api
    stop = threading.Event()
    failures: list[str] = []
    seen: set[str] = set()
    count = [0]

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            i = worker
            urls = SQL_URLS if worker == 0 else URLS
            while not stop.is_set():
                url = urls[i % len(urls)]
                i += 1
                r = c.get(url)
                count[0] += 1
                if r.status_code != 200:
                    failures.append(f"{url}: {r.status_code} {r.text[:200]}")
                    continue
                release = r.headers["x-release"]
                seen.add(release)
                is_json = r.headers["content-type"].startswith("application/json")
                if is_json and "release" in r.json() and r.json()["release"] != release:
                    failures.append(f"{url}: body from {r.json()['release']}, header {release}")

    threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    releases, delays = [first], []
    try:
        for n in range(3):
            time.sleep(0.4)
            releases.append(build_release(server.data_dir, Shape(stations=6 + n, days=3, seed=n)))
            delays.append(server.wait_for_release(releases[-1], timeout=10))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:5]
    assert count[0] > 100
    assert max(delays) < 3.0, delays
    assert set(releases[-2:]) <= seen
    # The newest release's answers are the newest data: 9 stations in the last release.
    assert httpx.get(server.url + "/v1/stations").json()["count"] == 8
