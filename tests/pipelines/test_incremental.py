"""Incremental publishing: unchanged partitions are reused, what a change can affect is rebuilt, and the
result equals a release built from scratch."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ocpp_opendata.settings import Settings, load_settings
from pipelines.publish import publish
from pipelines.published_schema import partition_path
from tests.pipelines.helpers import current, published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

M = timedelta(minutes=1)
MAR10, MAR11, APR1 = date(2026, 3, 10), date(2026, 3, 11), date(2026, 4, 1)


def visit(raw: RawZone, cp: str, day: date, tag: str, tx: str, register: float) -> float:
    start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    raw.status(cp, 1, start - 30 * M, "Available")
    raw.status(cp, 1, start, "Preparing")
    raw.start(cp, 1, start, tx, tag, register)
    end = raw.charge(cp, 1, start, 30, 7400, register, tx=tx)
    raw.stop(cp, start + 31 * M, tx, end)
    raw.status(cp, 1, start + 31 * M, "Available")
    return end


def scenario(raw: RawZone, settings: Settings) -> None:
    """CP1 has one user on the 10th and a second on the 11th: with k = 2 it is shown for March only
    once the 11th is in. CP2 has two users every day. April is a pseudonym period of its own."""
    reg1 = visit(raw, "CP1", MAR10, "TAG1", "a1", 0.0)
    reg1 = visit(raw, "CP1", MAR11, "TAG2", "a2", reg1)
    visit(raw, "CP1", APR1, "TAG1", "a3", reg1)
    reg2 = 0.0
    for i, day in enumerate((MAR10, MAR11, APR1)):
        reg2 = visit(raw, "CP2", day, "TAG3", f"b{i}", reg2)
        start = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        raw.status("CP2", 2, start - 30 * M, "Available")
        raw.status("CP2", 2, start, "Preparing")
        raw.start("CP2", 2, start, f"c{i}", "TAG4", 0.0)
        raw.stop("CP2", start + 20 * M, f"c{i}", 3000.0)
        raw.status("CP2", 2, start + 20 * M, "Available")
    raw.flush()
    write_registry(
        settings.data_dir,
        [
            ("CP1", "One", 52.2, 5.9, "Centrum", 22, "public"),
            ("CP2", "Two", 52.3, 5.8, "Centrum", 22, "public"),
        ],
    )


def files(release: Path) -> dict[str, str]:
    m = json.loads((release / "manifest.json").read_text())
    return {f["path"]: f["hash"] for e in m["datasets"].values() for f in e["files"]}


def test_a_new_day_rebuilds_only_what_it_can_affect_and_reuses_the_rest(
    settings: Settings, raw: RawZone
) -> None:
    scenario(raw, settings)
    run_days(settings, MAR10, APR1)
    first = current(settings)
    run_days(settings, MAR11)
    second = current(settings)
    m = json.loads((second / "manifest.json").read_text())
    assert m["rebuilt"]["full"] is False and m["rebuilt"]["changed_days"] == ["2026-03-11"]
    ds = m["datasets"]
    # Daily series: only the new day is written; the others are the previous release's files.
    energy = ds["station_energy_15min"]
    assert energy["added"] == ["2026-03-11"] and energy["unchanged"] == ["2026-03-10", "2026-04-01"]
    for day in ("2026-03-10", "2026-04-01"):
        old = partition_path(first, "station_energy_15min", day)
        assert partition_path(second, "station_energy_15min", day).stat().st_ino == old.stat().st_ino
    # The 11th makes CP1 reach k = 2 in March: the 10th's session rows now show it.
    sessions = ds["charging_sessions"]
    assert sessions["changed"] == ["2026-03-10"] and sessions["unchanged"] == ["2026-04-01"]
    assert {r["station_id"] for r in published(settings, "charging_sessions") if r["date"] == MAR10} == {
        "CP1",
        "CP2",
    }
    monthly = ds["station_usage_monthly"]
    assert monthly["changed"] == ["2026-03-01"] and monthly["unchanged"] == ["2026-04-01"]
    assert ds["station_usage_daily"]["unchanged"] == ["2026-03-10", "2026-04-01"]
    checks = {r["name"]: r["passed"] for r in m["checks"]}
    privacy = {"pseudonym_single_station", "no_private_station", "suppressed_cells_not_rebuildable"}
    assert privacy <= set(checks)
    assert all(checks.values()), checks


def test_an_incremental_release_equals_one_built_from_scratch(
    settings: Settings, raw: RawZone, tmp_path: Path
) -> None:
    scenario(raw, settings)
    run_days(settings, MAR10, APR1)
    run_days(settings, MAR11)
    incremental = current(settings)
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    for name in ("raw", "work", "stations.csv"):
        src = settings.data_dir / name
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, fresh_dir / name)
    fresh = publish(load_settings({"data_dir": fresh_dir}))
    assert fresh.manifest["rebuilt"]["full"] is True
    assert files(fresh.path) == files(incremental)


def test_a_changed_registry_rebuilds_every_partition(settings: Settings, raw: RawZone) -> None:
    scenario(raw, settings)
    run_days(settings, MAR10, MAR11, APR1)
    write_registry(
        settings.data_dir,
        [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public"), ("CP2", "Two", 52.3, 5.8, "Haga", 22, "public")],
    )
    run_days(settings)
    m = json.loads((current(settings) / "manifest.json").read_text())
    assert m["rebuilt"]["full"] is True
    assert m["datasets"]["station_energy_15min"]["changed"] == ["2026-03-10", "2026-03-11", "2026-04-01"]
