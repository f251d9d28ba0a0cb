"""Totals agree across datasets, and the release's metadata says what was checked and what it covers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow.compute as pc

from ocpp_opendata.settings import Settings
from pipelines.consistency import TABLES, check_energy_totals_agree
from tests.pipelines.helpers import current, published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def two_stations_charging_together(raw: RawZone, settings: Settings) -> None:
    """Two public stations of one area, metered every minute, charging in the same 45 minutes."""
    for cp, tx, power in (("PUB1", "a1", 11_000.0), ("PUB2", "b1", 7_000.0)):
        raw.connected(cp, T - 60 * M)
        raw.status(cp, 1, T - 30 * M, "Available")
        raw.status(cp, 1, T, "Charging")
        raw.start(cp, 1, T, tx, f"TAG-{cp}", 0.0)
        end = raw.charge(cp, 1, T, 45, power, 0.0, tx=tx)
        raw.stop(cp, T + 45 * M, tx, end)
        raw.status(cp, 1, T + 45 * M, "Available")
    raw.flush()
    write_registry(
        settings.data_dir,
        [
            ("PUB1", "Market square", 52.20, 5.90, "Centrum", 22, "public"),
            ("PUB2", "Station road", 52.21, 5.91, "Centrum", 22, "public"),
        ],
    )


def test_the_area_series_sums_each_station_once(settings: Settings, raw: RawZone) -> None:
    """Issue 20, item 5: the area series once counted every minute once per station of its area."""
    two_stations_charging_together(raw, settings)
    run_days(settings, DAY)
    stations = sum(r["energy_kwh"] for r in published(settings, "station_energy_15min"))
    area = published(settings, "area_peak_15min")
    assert abs(stations - (11 + 7) * 45 / 60) < 0.01
    assert abs(sum(r["energy_kwh"] for r in area) - stations) < 1e-6
    assert max(r["stations"] for r in area) == 2
    assert abs(max(r["peak_power_kw"] for r in area) - 18.0) < 1e-6


def test_a_release_whose_area_series_is_inflated_is_blocked_by_the_totals_check(
    settings: Settings, raw: RawZone
) -> None:
    two_stations_charging_together(raw, settings)
    run_days(settings, DAY)
    con = duckdb.connect(str(current(settings) / "catalog.duckdb"), read_only=True)
    tables = {n: con.sql(f'SELECT * FROM "{n}"').to_arrow_table() for n in TABLES}
    con.close()
    assert check_energy_totals_agree(tables, settings.round_energy_kwh).passed
    peak = tables["area_peak_15min"]
    doubled = pc.multiply(peak["energy_kwh"], 2.0)
    at = peak.schema.get_field_index("energy_kwh")
    tables["area_peak_15min"] = peak.set_column(at, "energy_kwh", doubled)
    report = check_energy_totals_agree(tables, settings.round_energy_kwh)
    assert not report.passed and "area_peak_15min vs public-only area-days" in report.detail


def test_the_manifest_lists_every_blocking_check_and_the_coverage_starts_at_the_first_data(
    settings: Settings, raw: RawZone
) -> None:
    """Issue 21, item 4: two checks ran after the manifest was written; a monthly partition's date
    (the first of the month) was taken for the first data."""
    two_stations_charging_together(raw, settings)
    run_days(settings, DAY)
    rel = current(settings)
    names = {c["name"] for c in json.loads((rel / "manifest.json").read_text())["checks"]}
    assert {
        "no_idtag_in_release",
        "totals_reconcile_with_raw",
        "energy_totals_agree",
        "hidden_sessions_absent",
        "suppressed_cells_not_rebuildable",
        "no_private_station",
        "pseudonym_single_station",
    } <= names
    package = json.loads((rel / "datapackage.json").read_text())
    assert package["temporalCoverage"] == {"start": DAY.isoformat(), "end": DAY.isoformat()}
    dcat = json.loads((rel / "dcat.jsonld").read_text())
    assert DAY.isoformat() in json.dumps(dcat) and "2026-03-01" not in json.dumps(dcat)
