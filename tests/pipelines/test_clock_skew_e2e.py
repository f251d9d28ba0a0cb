"""End to end with skewed charger clocks: simulator → real listener → raw Parquet → Dagster → release,
against the simulator's ground truth.

Seed 2 of this small fleet has public chargers running 2 min to 4 h ahead whose clocks would move
sessions across local midnight. The run is time-compressed (every simulated day lies in the past),
so the offsets can only come from the replay starting the fleet together (docs/pipeline.md, "Charger
clocks"). Offline periods are off: every offline minute in the release would be invented.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from ocpp_opendata.settings import Settings, load_settings
from pipelines import runner
from pipelines.partitions import local_date
from pipelines.storage import read_work
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.helpers import published
from tests.support.listener import make_listener

TZ = "Europe/Stockholm"


@dataclass
class Run:
    settings: Settings
    truth: Path


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("skew")
    data = base / "data"
    listener = make_listener(data).start()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--url", listener.url,
             "--chargers", "12", "--days", "3", "--start", "2026-03-28", "--seed", "2", "--timezone", TZ,
             "--truth", str(base / "truth"), "--station-registry", str(data),
             "--clock-skew-share", "0.4", "--offline-rate", "0", "--users-per-charger", "3"],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr[-2000:]
    finally:
        listener.stop()
    saved = {k: os.environ.get(k) for k in ("OCPP_OPENDATA_PSEUDONYM_KEY", "OCPP_OPENDATA_PRIVACY_K")}
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = TEST_KEY
    os.environ["OCPP_OPENDATA_PRIVACY_K"] = "3"
    try:
        settings = load_settings({"data_dir": data, "timezone": TZ})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
        assert summary.release_id
        yield Run(settings, base / "truth")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _truth(run: Run, name: str) -> list[dict]:
    return pq.read_table(run.truth / f"{name}.parquet").to_pylist()


def _public(run: Run) -> set[str]:
    rows = csv.DictReader((run.settings.data_dir / "stations.csv").open())
    return {r["id"] for r in rows if r["access"] == "public"}


def _skew(run: Run) -> dict[str, int]:
    return {c["charge_point_id"]: c["clock_skew_s"] for c in _truth(run, "chargers") if c["clock_skew_s"]}


def test_session_counts_per_public_station_day_are_exact_at_skewed_chargers_too(skewed: Run) -> None:
    public, skew = _public(skewed), _skew(skewed)
    expected: dict[tuple[str, date], int] = defaultdict(int)
    crossing = 0
    for s in _truth(skewed, "sessions"):
        cp = s["charge_point_id"]
        if cp in public:
            day = local_date(s["plug_in"], TZ)
            expected[(cp, day)] += 1
            crossing += cp in skew and local_date(s["plug_in"] + timedelta(seconds=skew[cp]), TZ) != day
    assert crossing > 0, "the scenario must have skewed sessions that a raw clock puts on another day"
    got = {
        (r["station_id"], r["date"]): r["sessions"] for r in published(skewed.settings, "station_usage_daily")
    }
    keys = set(expected) | {k for k, n in got.items() if n}
    assert {k: (expected.get(k, 0), got.get(k, 0)) for k in keys if expected.get(k, 0) != got.get(k, 0)} == {}


def test_no_offline_minute_is_invented_at_a_skewed_charger(skewed: Run) -> None:
    public, skew = _public(skewed), _skew(skewed)
    assert public & set(skew)
    rows = published(skewed.settings, "station_availability_hourly")
    assert {r["station_id"] for r in rows} >= public & set(skew)
    invented = {
        (r["station_id"], r["hour_start"]): r["offline_minutes"] for r in rows if r["offline_minutes"] > 0
    }
    assert invented == {}


def test_skewed_sessions_are_flagged_and_within_a_minute_of_the_truth(skewed: Run) -> None:
    skew = _skew(skewed)
    ours = read_work(skewed.settings.data_dir, "sessions").to_pylist()
    # Corrected times carry the offset estimate's sub-second error; the truth has whole seconds.
    second = timedelta(seconds=0.5)
    by_key = {
        (s["station_id"], s["connector_id"], (s["plug_in"] + second).replace(microsecond=0)): s for s in ours
    }
    truth = _truth(skewed, "sessions")
    assert len(ours) == len(truth)
    for t in truth:
        s = by_key[(t["charge_point_id"], t["connector_id"], t["plug_in"])]
        assert s["clock_corrected"] is (t["charge_point_id"] in skew)
        for field in ("plug_in", "charging_start", "charging_end", "plug_out"):
            if t[field] is None:  # a session that never charged (the simulator's failed starts)
                assert s[field] is None, (t["session_id"], field)
                continue
            assert abs((s[field] - t[field]).total_seconds()) <= 60.0, (t["session_id"], field)
