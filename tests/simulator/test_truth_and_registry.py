"""The truth is a pure function of seed and options; the station registry covers the fleet."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from pathlib import Path

import orjson
import polars as pl

from ingest.simulator import SimulationOptions, prepare
from ingest.simulator.truth import TRUTH_FILES
from tests.simulator.conftest import IMPERFECT, Run


def test_the_same_seed_gives_byte_identical_truth_whatever_the_network_did(
    imperfect_run: Run, tmp_path: Path
) -> None:
    again = dataclasses.replace(IMPERFECT, truth=tmp_path / "again")
    prepare(again)
    for name in TRUTH_FILES:
        assert (tmp_path / "again" / f"{name}.parquet").read_bytes() == (
            imperfect_run.truth / f"{name}.parquet"
        ).read_bytes(), name
    other = dataclasses.replace(IMPERFECT, seed=IMPERFECT.seed + 1, truth=tmp_path / "other")
    prepare(other)
    assert (tmp_path / "other" / "sessions.parquet").read_bytes() != (
        imperfect_run.truth / "sessions.parquet"
    ).read_bytes()


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    inside = False
    for (x1, y1), (x2, y2) in itertools.pairwise(ring):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def test_the_station_registry_places_every_charger_inside_its_district(imperfect_run: Run) -> None:
    with (imperfect_run.registry / "stations.csv").open(newline="") as fh:
        stations = list(csv.DictReader(fh))
    areas = orjson.loads((imperfect_run.registry / "areas.geojson").read_bytes())
    polygons = {f["properties"]["area"]: f["geometry"]["coordinates"][0] for f in areas["features"]}
    assert 4 <= len(polygons) <= 6
    chargers = imperfect_run.truth_table("chargers")
    assert [s["id"] for s in stations] == chargers["charge_point_id"].to_list()
    for s in stations:
        assert _inside(float(s["longitude"]), float(s["latitude"]), polygons[s["area"]]), s
        others = [
            a
            for a, ring in polygons.items()
            if a != s["area"] and _inside(float(s["longitude"]), float(s["latitude"]), ring)
        ]
        assert others == [], s
        assert float(s["max_power_kw"]) > 0
    access = {s["access"] for s in stations}
    assert "public" in access and access - {"public"} and access <= {"public", "private", "home", "fleet"}


def test_a_home_charger_is_used_by_its_household_only(tmp_path: Path) -> None:
    """What the privacy rules for non-public stations must protect."""
    prepare(SimulationOptions(chargers=40, days=7, private_share=0.5, truth=tmp_path))
    homes = pl.read_parquet(tmp_path / "chargers.parquet").filter(pl.col("access") == "home")
    sessions = pl.read_parquet(tmp_path / "sessions.parquet").join(homes, on="charge_point_id")
    per_home = sessions.group_by("charge_point_id").agg(pl.col("user_id").n_unique(), pl.len())
    assert per_home.height >= 3 and per_home["len"].sum() > 10
    assert (per_home["user_id"] <= 2).all()
    assert sessions["user_id"].null_count() == 0
