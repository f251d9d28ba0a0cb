"""Fifty stations, one of them faulty on one day: an implausible session, a register going backwards
and a timestamp from the future. The other 49 stations' rows in every dataset are published exactly
as in a clean build of the same day (both through the real pipeline from raw Parquet), the faulty
records are in `quality_issues`, and `/v1/quality` answers them over a real HTTP server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from ocpp_opendata.settings import load_settings
from pipelines.published_schema import DATASETS
from tests.api.conftest import start_api
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.faults import M, future_stop, register_backwards, session
from tests.pipelines.helpers import published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 6, tzinfo=UTC)
STATIONS = [f"S{i:02d}" for i in range(1, 51)]
BAD = "S17"
# Two areas of 25 stations; the faulty one shares its area with 24 clean ones.
REGISTRY = [
    (cp, f"Station {cp}", 52.2 + i / 1000, 5.9, "Centrum" if i < 25 else "Noord", 22, "public")
    for i, cp in enumerate(STATIONS)
]


def clean_day(raw: RawZone) -> dict[str, float]:
    """Every station: three users, three sessions at 11 kW of 20 to 40 minutes, staggered per station.
    Returns each station's register at the end of the day."""
    registers = {}
    for n, cp in enumerate(STATIONS):
        raw.connected(cp, T - 120 * M)
        raw.boot(cp, T - 119 * M)
        raw.status(cp, 1, T - 60 * M, "Available")
        reg = 10_000.0 * n
        for k in range(3):
            start = T + (k * 180 + n % 7 * 10) * M
            reg = session(raw, cp, start, 20 + 10 * k, 11_000, f"{cp}-t{k}", f"{cp}USER{k}", reg)
        registers[cp] = reg
    return registers


def faults(raw: RawZone, reg: float) -> None:
    """The bad station, later the same day: 470 kW on a 22 kW connector (withheld), a register that
    drops by 300 Wh mid-session (flagged), a stop stamped a year ahead (clock corrected, flagged)."""
    reg = session(raw, BAD, T + 600 * M, 10, 470_000, f"{BAD}-bad", f"{BAD}USERX", reg)
    reg = register_backwards(raw, BAD, T + 660 * M, f"{BAD}-back", f"{BAD}USERY", reg)
    future_stop(raw, BAD, T + 720 * M, f"{BAD}-future", f"{BAD}USERZ", reg)


def build(base: Path, faulty: bool) -> Path:
    data = base / ("faulty" if faulty else "clean") / "data"
    data.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("OCPP_OPENDATA_")]:
            mp.delenv(name)
        mp.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", TEST_KEY)
        mp.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
        mp.setenv("OCPP_OPENDATA_DATA_DIR", str(data))
        write_registry(data, REGISTRY)
        raw = RawZone(data)
        registers = clean_day(raw)
        if faulty:
            faults(raw, registers[BAD])
        raw.flush()
        assert run_days(load_settings(), DAY)
    return data


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    base = tmp_path_factory.mktemp("fifty")
    with pytest.MonkeyPatch.context() as mp:
        clean_dir, faulty_dir = build(base, False), build(base, True)
        mp.setenv("OCPP_OPENDATA_DATA_DIR", str(clean_dir))
        clean = {name: published(load_settings(), name) for name in DATASETS}
        mp.setenv("OCPP_OPENDATA_DATA_DIR", str(faulty_dir))
        faulty = {name: published(load_settings(), name) for name in DATASETS}
    return (clean_dir, clean), (faulty_dir, faulty)


def without(rows: list[dict], station: str) -> list[dict]:
    return sorted((r for r in rows if r.get("station_id") != station), key=repr)


def test_the_other_49_stations_rows_in_every_dataset_are_published_as_in_a_clean_build(
    builds: tuple[Any, Any],
) -> None:
    (_, clean), (_, faulty) = builds
    per_station = [
        n for n, ds in DATASETS.items() if "station_id" in ds.column_names and n != "quality_issues"
    ]
    assert len(per_station) >= 9
    for name in per_station:
        assert without(faulty[name], BAD) == without(clean[name], BAD), name
    # All 49 are there: every one has its three sessions, its day and its 15-minute intervals.
    for name, per in (("charging_sessions", 3), ("station_usage_daily", 1), ("stations", 1)):
        others = [r for r in faulty[name] if r["station_id"] != BAD]
        assert {r["station_id"] for r in others} == set(STATIONS) - {BAD}, name
        assert len(others) == 49 * per, name
    assert len(without(faulty["station_energy_15min"], BAD)) >= 49 * 6
    # Datasets without stations: the network figures do not move; the area of the 24 clean stations
    # sharing nothing with the faulty one is identical.
    for name in ("network_reliability_monthly", "network_reliability_yearly"):
        assert faulty[name] == clean[name], name
    for name in ("area_usage_daily", "area_peak_15min"):
        noord = [r for r in faulty[name] if r["area"] == "Noord"]
        assert noord and noord == [r for r in clean[name] if r["area"] == "Noord"], name


def test_the_faulty_stations_area_totals_change_by_that_station_alone(builds: tuple[Any, Any]) -> None:
    (_, clean), (_, faulty) = builds

    def centrum_minus_bad(tables: dict[str, list[dict]], column: str) -> float:
        (area,) = [r for r in tables["area_usage_daily"] if r["area"] == "Centrum"]
        (bad,) = [r for r in tables["station_usage_daily"] if r["station_id"] == BAD]
        return area[column] - bad[column]

    for column in ("sessions", "energy_kwh"):
        assert centrum_minus_bad(faulty, column) == pytest.approx(centrum_minus_bad(clean, column), abs=1e-6)


def test_the_faulty_records_are_in_quality_issues_and_the_rest_of_that_station_is_published(
    builds: tuple[Any, Any],
) -> None:
    (_, clean), (_, faulty) = builds
    assert clean["quality_issues"] == []
    issues = faulty["quality_issues"]
    assert {r["station_id"] for r in issues} == {BAD}
    found = {(r["dataset"], r["rule"], r["action"]) for r in issues}
    for dataset in ("charging_sessions", "station_usage_daily", "station_usage_monthly", "area_usage_daily"):
        assert (dataset, "power_above_connector_max", "withheld") in found, dataset
    assert ("charging_sessions", "register_backwards", "flagged") in found
    assert ("charging_sessions", "timestamp_ahead_of_receipt", "flagged") in found
    (bad,) = [r for r in issues if r["dataset"] == "charging_sessions" and r["action"] == "withheld"]
    assert (bad["measured_value"], bad["limit_value"]) == (470.0, round(22 * 1.1, 3))
    # The faulty station keeps its three clean sessions, and the two flagged ones are published.
    mine = [r for r in faulty["charging_sessions"] if r["station_id"] == BAD]
    clean_mine = [r for r in clean["charging_sessions"] if r["station_id"] == BAD]
    assert len(clean_mine) == 3 and all(r in mine for r in clean_mine)
    flagged = [r for r in mine if r not in clean_mine]
    assert len(flagged) == 2
    assert any("register_backwards" in (r["quality_flags"] or "") for r in flagged)
    assert any(r["clock_corrected"] for r in flagged)
    assert max(r["max_power_kw"] or 0 for r in mine) < 22 * 1.1


@pytest.fixture(scope="module")
def client(builds: tuple[Any, Any]) -> Iterator[httpx.Client]:
    (_, _), (faulty_dir, _) = builds
    server = start_api(faulty_dir)
    try:
        current = (faulty_dir / "published" / "current").resolve().name
        server.wait_for_release(current, timeout=30)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            yield c
    finally:
        server.stop()


def test_v1_quality_answers_the_faulty_records_and_nothing_for_the_clean_stations(
    client: httpx.Client, builds: tuple[Any, Any]
) -> None:
    (_, _), (_, faulty) = builds
    body = client.get("/v1/quality", params={"date": DAY.isoformat()}).json()
    assert body["total"] == len(faulty["quality_issues"]) and {r["station_id"] for r in body["rows"]} == {BAD}
    sessions = client.get("/v1/quality", params={"station": BAD, "dataset": "charging_sessions"}).json()
    assert {(r["rule"], r["action"]) for r in sessions["rows"]} >= {
        ("power_above_connector_max", "withheld"),
        ("register_backwards", "flagged"),
        ("timestamp_ahead_of_receipt", "flagged"),
    }
    assert sessions["records"]["flagged"] == 2
    assert client.get("/v1/quality", params={"station": "S05"}).json()["total"] == 0
    backwards = client.get("/v1/quality", params={"rule": "register_backwards", "format": "csv"})
    assert backwards.status_code == 200 and backwards.text.count(BAD) == 1
