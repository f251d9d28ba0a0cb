"""`ocpp-opendata demo` on small numbers, then the API on its result, against the simulator's truth."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Browser

from pipelines.partitions import local_date
from tests.api.conftest import ApiServer, start_api
from tests.landing.conftest import visit
from tests.support.listener import free_port

TZ = "Europe/Stockholm"


@dataclass
class Demo:
    base: Path
    data_dir: Path
    output: str
    api: ApiServer

    def truth(self, name: str) -> list[dict]:
        return pq.read_table(self.data_dir / "demo" / "truth" / f"{name}.parquet").to_pylist()

    def get(self, path: str, **params: object) -> dict:
        answer = httpx.get(self.api.url + path, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()


def run_demo(base: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CONFIG_HOME": str(base / "config"), "OCPP_OPENDATA_TIMEZONE": TZ}
    for name in ("DAGSTER_HOME", "OCPP_OPENDATA_PSEUDONYM_KEY", "OCPP_OPENDATA_PSEUDONYM_KEY_FILE"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "demo", "--chargers", "10", "--days", "2", "--no-serve",
         "--data-dir", str(base / "data"), "--listen-port", str(free_port()), "--api-port", str(free_port()),
         *extra],
        cwd=base, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    base = tmp_path_factory.mktemp("demo")
    done = run_demo(base)
    assert done.returncode == 0, done.stderr[-3000:]
    data_dir = base / "data"
    release = (data_dir / "published" / "current").resolve().name
    api = start_api(data_dir)
    try:
        api.wait_for_release(release, timeout=30)
        yield Demo(base, data_dir, done.stdout + done.stderr, api)
    finally:
        api.stop()


def test_the_demo_prints_where_everything_is(demo: Demo) -> None:
    for text in ("landing page", "/docs", "dagster dev", "published release", "created a demo pseudonym key"):
        assert text in demo.output
    key = demo.base / "config" / "ocpp-opendata" / "demo-pseudonym.key"
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert not any(demo.data_dir.rglob("*.key")), "the key never lives in the data root"


def test_published_sessions_equal_the_simulated_ones(demo: Demo) -> None:
    catalogue = {d["name"]: d for d in demo.get("/v1/datasets")["datasets"]}
    truth = len(demo.truth("sessions"))
    monthly = demo.get("/v1/datasets/station_usage_monthly/rows", limit=10_000)["rows"]
    assert sum(r["sessions"] for r in monthly) == truth > 20
    # Sessions at a station with fewer than k users in the month count, but have no row.
    hidden = sum(r["sessions"] for r in monthly if r["distinct_users_suppressed"])
    assert catalogue["charging_sessions"]["rows"] == truth - hidden > 0


def test_energy_per_station_day_is_within_a_thousandth_of_the_truth(demo: Demo) -> None:
    public = {
        r["id"] for r in csv.DictReader((demo.data_dir / "stations.csv").open()) if r["access"] == "public"
    }
    expected: dict[tuple[str, date], float] = defaultdict(float)
    for t in demo.truth("sessions"):
        if t["charge_point_id"] in public:
            expected[(t["charge_point_id"], local_date(t["plug_in"], TZ))] += t["energy_wh"] / 1000.0
    rows = demo.get("/v1/datasets/station_usage_daily/rows", limit=10_000)["rows"]
    got = {(r["station_id"], date.fromisoformat(r["date"])): r["energy_kwh"] for r in rows}
    assert expected
    for key, kwh in expected.items():
        assert abs(got.get(key, 0.0) - kwh) <= 0.001 * kwh + 1e-9, key


def test_the_landing_page_renders_the_demo_release(demo: Demo, browser: Browser) -> None:
    seen = visit(browser, demo.api.url)
    assert seen.state() == "ready"
    assert seen.console_errors == [] and seen.page_errors == [] and seen.failed == []
    names = seen.page.eval_on_selector_all("#datasets tbody tr", "rows => rows.length")
    assert names == len(demo.get("/v1/datasets")["datasets"])


def test_a_second_demo_run_replaces_the_first_cleanly(demo: Demo) -> None:
    before = (demo.data_dir / "published" / "current").resolve().name
    again = run_demo(demo.base)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "replacing the previous demo data" in again.stdout + again.stderr
    releases = list((demo.data_dir / "published" / "releases").iterdir())
    assert [r.name for r in releases] != [before] and len(releases) == 1


def test_a_port_in_use_gets_a_clear_message(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_demo(tmp_path, "--listen-port", str(port))
    assert done.returncode != 0
    assert f"port {port}" in done.stderr and "in use" in done.stderr
