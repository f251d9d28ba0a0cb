"""End to end: simulator → real listener → raw Parquet → Dagster → published release, against the
simulator's ground truth.

Clock skew is switched off here, on purpose: in a time-compressed run every simulated day lies in
the past, so a clock running ahead is indistinguishable from a correct one (docs/pipeline.md). Offline
periods are on at a high rate: their queued messages arrive late, replayed with their original
timestamps, and must land in their sessions. (The truth's status intervals ignore offline time, and so
does the pipeline for time-compressed connections.) Every other imperfection stays on too (retries,
register resets, kWh and multiplier units, JSON numbers, faults).
"""

from __future__ import annotations

import csv
import json
import os
import re
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
from pipelines.partitions import day_bounds, local_date
from pipelines.storage import read_work
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.helpers import current, published
from tests.support.listener import make_listener

TZ = "Europe/Stockholm"
DAYS = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]  # the 29th has 23 hours
CATEGORY = {"Available": "available", "Preparing": "occupied", "Charging": "occupied",
            "SuspendedEV": "occupied", "SuspendedEVSE": "occupied", "Finishing": "occupied",
            "Faulted": "faulted", "Unavailable": "unavailable"}  # fmt: skip


@dataclass
class Run:
    settings: Settings
    truth: Path
    release_id: str | None


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    listener = make_listener(data).start()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--url", listener.url,
             "--chargers", "24", "--days", "3", "--start", "2026-03-28", "--seed", "11", "--timezone", TZ,
             "--truth", str(base / "truth"), "--station-registry", str(data),
             "--clock-skew-share", "0", "--offline-rate", "0.3",
             "--users-per-charger", "3"],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr[-2000:]
        replayed = re.search(r"(\d+) replayed after offline periods", sim.stdout)
        assert replayed and int(replayed.group(1)) > 0, sim.stdout  # late data really happened
    finally:
        listener.stop()
    saved = {k: os.environ.get(k) for k in ("OCPP_OPENDATA_PSEUDONYM_KEY", "OCPP_OPENDATA_PRIVACY_K")}
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = TEST_KEY
    os.environ["OCPP_OPENDATA_PRIVACY_K"] = "3"
    try:
        settings = load_settings({"data_dir": data, "timezone": TZ})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
        yield Run(settings, base / "truth", summary.release_id)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def truth(run: Run, name: str) -> list[dict]:
    return pq.read_table(run.truth / f"{name}.parquet").to_pylist()


def test_every_simulated_session_is_found_once_with_times_within_a_minute(simulated: Run) -> None:
    assert set(DAYS) <= set(runner.all_dates(simulated.settings))
    ours = read_work(simulated.settings.data_dir, "sessions").to_pylist()
    expected = truth(simulated, "sessions")
    assert len(ours) == len(expected) > 40
    by_key = {(s["station_id"], s["connector_id"], s["plug_in"].replace(microsecond=0)): s for s in ours}
    worst = 0.0
    for t in expected:
        s = by_key[(t["charge_point_id"], t["connector_id"], t["plug_in"])]
        for field in ("plug_in", "charging_start", "charging_end", "plug_out"):
            if t[field] is None:  # a car that never charged: no charging period either side
                assert s[field] is None, (field, t)
                continue
            worst = max(worst, abs((s[field] - t[field]).total_seconds()))
    assert worst <= 60.0


def test_energy_per_station_day_is_within_a_thousandth(simulated: Run) -> None:
    expected: dict[tuple[str, date], float] = defaultdict(float)
    public = {
        r["id"]
        for r in csv.DictReader((simulated.settings.data_dir / "stations.csv").open())
        if r["access"] == "public"
    }
    for t in truth(simulated, "sessions"):
        if t["charge_point_id"] in public:
            expected[(t["charge_point_id"], local_date(t["plug_in"], TZ))] += t["energy_wh"] / 1000.0
    got = {
        (r["station_id"], r["date"]): r["energy_kwh"]
        for r in published(simulated.settings, "station_usage_daily")
    }
    assert expected and set(k for k, v in expected.items() if v > 0) <= set(got)
    for key, kwh in expected.items():
        assert abs(got[key] - kwh) <= 0.001 * kwh + 1e-9, key


def _registry(run: Run) -> list[dict[str, str]]:
    return list(csv.DictReader((run.settings.data_dir / "stations.csv").open()))


# The 15-minute series books each register increase at the sample that ends it; samples come every
# minute, so charging that ends just before midnight may be booked just after it.
BOOKING_SLACK = timedelta(minutes=5)


def _metered_days(run: Run, public: set[str]) -> tuple[dict[tuple[str, date], float], dict[tuple, tuple]]:
    """Truth energy per (station, block of local days) and the block of each (station, day): days are
    joined into one block where a session charged across local midnight, because the truth gives
    each session's energy, not its profile."""
    parent: dict[tuple[str, date], tuple[str, date]] = {}

    def find(k: tuple[str, date]) -> tuple[str, date]:
        while parent.setdefault(k, k) != k:
            k = parent[k]
        return k

    sessions = [t for t in truth(run, "sessions") if t["charge_point_id"] in public and t["energy_wh"] > 0]
    for t in sessions:
        first = local_date(t["charging_start"], TZ)
        last = local_date(t["charging_end"] + BOOKING_SLACK, TZ)
        day = first
        while day < last:
            parent[find((t["charge_point_id"], day + timedelta(days=1)))] = find((t["charge_point_id"], day))
            day += timedelta(days=1)
    expected: dict[tuple[str, date], float] = defaultdict(float)
    for t in sessions:
        expected[find((t["charge_point_id"], local_date(t["charging_start"], TZ)))] += t["energy_wh"] / 1000
    return expected, {k: find(k) for k in list(parent)}


def test_energy_per_15_minutes_adds_up_to_the_truth_on_every_station_and_day(simulated: Run) -> None:
    public = {r["id"] for r in _registry(simulated) if r["access"] == "public"}
    expected, block_of = _metered_days(simulated, public)
    got: dict[tuple[str, date], float] = defaultdict(float)
    for r in published(simulated.settings, "station_energy_15min"):
        key = (r["station_id"], r["date"])
        got[block_of.get(key, key)] += r["energy_kwh"]
    assert any(len({k for k, b in block_of.items() if b == blk}) == 1 for blk in expected)
    off = {
        key: (kwh, got.get(key, 0.0))
        for key, kwh in expected.items()
        if abs(got.get(key, 0.0) - kwh) > 0.001 * kwh + 1e-9
    }
    assert not off
    assert not {k: v for k, v in got.items() if k not in expected and v > 0}


def test_every_charging_day_is_published_in_the_15_minute_series(simulated: Run) -> None:
    public = {r["id"] for r in _registry(simulated) if r["access"] == "public"}
    charging_days = {
        local_date(t["charging_start"], TZ)
        for t in truth(simulated, "sessions")
        if t["charge_point_id"] in public and t["energy_wh"] > 0
    }
    assert set(DAYS) <= charging_days
    manifest = json.loads((current(simulated.settings) / "manifest.json").read_text())
    for name in ("station_energy_15min", "area_peak_15min"):
        assert not manifest["datasets"][name]["kept_previous"], name
        assert charging_days <= {r["date"] for r in published(simulated.settings, name)}, name


def test_no_peak_exceeds_what_the_stations_can_draw(simulated: Run) -> None:
    # The simulator's registry gives each connector's rated power.
    capacity = {r["id"]: float(r["max_power_kw"]) * int(r["connectors"]) for r in _registry(simulated)}
    area_capacity: dict[str, float] = defaultdict(float)
    for r in _registry(simulated):
        area_capacity[r["area"]] += capacity[r["id"]]
    stations = published(simulated.settings, "station_energy_15min")
    areas = published(simulated.settings, "area_peak_15min")
    assert stations and areas
    for r in stations:
        limit = capacity[r["station_id"]] * 1.05
        assert 0 <= r["average_power_kw"] <= limit and 0 < r["peak_power_kw"] <= limit, r
    for r in areas:
        limit = area_capacity[r["area"]] * 1.05
        assert 0 <= r["average_power_kw"] <= limit and 0 < r["peak_power_kw"] <= limit, r


def test_status_minutes_per_station_day_are_within_a_minute(simulated: Run) -> None:
    expected: dict[tuple, float] = defaultdict(float)
    for r in truth(simulated, "status_intervals"):
        for d in DAYS:
            a, b = day_bounds(d, TZ)
            lo, hi = max(a, r["start"]), min(b, r["end"])
            if hi > lo:
                minutes = (hi - lo).total_seconds() / 60
                expected[(r["charge_point_id"], d, CATEGORY[r["state"]])] += minutes
                if r["state"] == "Charging":
                    expected[(r["charge_point_id"], d, "charging")] += minutes
    got: dict[tuple, float] = defaultdict(float)
    for r in read_work(simulated.settings.data_dir, "availability", DAYS).to_pylist():
        for c in (
            "available",
            "occupied",
            "charging",
            "faulted",
            "offline",
            "unknown",
            "reserved",
            "unavailable",
        ):
            got[(r["station_id"], r["date"], c)] += r[f"{c}_minutes"]
    keys = set(expected) | {k for k, v in got.items() if v > 0}
    off = {
        k: (expected.get(k, 0.0), got.get(k, 0.0))
        for k in keys
        if abs(expected.get(k, 0.0) - got.get(k, 0.0)) > 1.0
    }
    assert not off


def test_no_private_station_can_be_found_in_the_release(simulated: Run) -> None:
    rows = list(csv.DictReader((simulated.settings.data_dir / "stations.csv").open()))
    private = [r for r in rows if r["access"] != "public"]
    assert private, "the simulated city has home and fleet stations"
    rel = current(simulated.settings)
    texts = [p.read_text() for p in rel.glob("*.json*")]
    by_id = ("stations", "charging_sessions", "station_usage_daily", "station_availability_hourly",
             "station_energy_15min", "station_usage_monthly")  # fmt: skip
    ids = {r["station_id"] for name in by_id for r in published(simulated.settings, name)}
    coords = {(r["latitude"], r["longitude"]) for r in published(simulated.settings, "stations")}
    names = {r["name"] for r in published(simulated.settings, "stations")}
    for r in private:
        assert r["id"] not in ids
        assert (float(r["latitude"]), float(r["longitude"])) not in coords
        assert r["name"] not in names
        assert all(r["id"] not in t for t in texts)


def test_no_pseudonym_links_two_stations_and_the_release_passed_every_check(simulated: Run) -> None:
    assert simulated.release_id
    stations: dict[str, set[str]] = defaultdict(set)
    rows = published(simulated.settings, "charging_sessions")
    for r in rows:
        if r["user_pseudonym"]:
            stations[r["user_pseudonym"]].add(r["station_id"])
    assert stations and all(len(v) == 1 for v in stations.values())
    assert all(r["plug_in"].minute % 15 == 0 and r["plug_in"].second == 0 for r in rows)
