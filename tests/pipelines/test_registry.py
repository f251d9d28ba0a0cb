"""The operator's registry: areas from the column or from district polygons; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocpp_opendata.registry import RegistryError, load_registry


def test_a_station_without_an_area_gets_the_district_polygon_it_lies_in(tmp_path: Path) -> None:
    (tmp_path / "stations.csv").write_text(
        "id,name,latitude,longitude,area,max_power_kw,access\n"
        "A,In the square,52.5,5.5,,22,public\n"
        "B,Named area,52.5,5.5,Harbour,22,public\n"
        "C,Outside,10.0,10.0,,22,home\n"
    )
    square = [[5.0, 52.0], [6.0, 52.0], [6.0, 53.0], [5.0, 53.0], [5.0, 52.0]]
    feature = {"type": "Feature", "properties": {"name": "Centrum"}}
    feature["geometry"] = {"type": "Polygon", "coordinates": [square]}
    geo = {"type": "FeatureCollection", "features": [feature]}
    (tmp_path / "areas.geojson").write_text(json.dumps(geo))
    reg = load_registry(tmp_path / "stations.csv", tmp_path / "areas.geojson")
    assert (reg["A"].area, reg["B"].area, reg["C"].area) == ("Centrum", "Harbour", "unknown")
    assert reg["A"].public and not reg["C"].public


def test_a_bad_registry_line_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "stations.csv").write_text("id,latitude,longitude\nA,north,5\n")
    with pytest.raises(RegistryError, match="line 2: latitude is not a number"):
        load_registry(tmp_path / "stations.csv")
