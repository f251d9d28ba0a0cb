"""The fictional city the fleet stands in, and the station registry written for it.

`stations.csv` and `areas.geojson` are what a city would hand the pipeline: where each charge point
is, who may use it, and the districts results are aggregated to. The city, "Veldhaven", is made up;
its districts tile a square around the centre, plus a port area to the east.
"""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from ingest.simulator.fleet import Charger

CITY = "Veldhaven"
CENTRE = (5.90, 52.20)  # lon, lat
OUTER = (0.06, 0.04)  # half-widths of the city square (degrees lon, lat)
INNER = (0.02, 0.013)  # half-widths of the centre district

STATION_COLUMNS = (
    "id",
    "name",
    "latitude",
    "longitude",
    "area",
    "max_power_kw",
    "access",
    "connectors",
    "site_profile",
    "ocpp_version",
)

Point = tuple[float, float]
Ring = tuple[Point, ...]


@dataclass(frozen=True)
class District:
    name: str
    ring: Ring  # closed ring of (lon, lat), first == last, counter-clockwise

    def contains(self, lon: float, lat: float) -> bool:
        """Ray casting; a point on a shared edge falls on one side, consistently."""
        inside = False
        pts = self.ring
        for (x1, y1), (x2, y2) in itertools.pairwise(pts):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.ring]
        ys = [p[1] for p in self.ring]
        return min(xs), min(ys), max(xs), max(ys)


def _closed(*pts: Point) -> Ring:
    rounded = tuple((round(x, 6), round(y, 6)) for x, y in pts)
    return (*rounded, rounded[0])


def _districts() -> tuple[District, ...]:
    cx, cy = CENTRE
    ox, oy = OUTER
    ix, iy = INNER
    osw, ose, one, onw = (cx - ox, cy - oy), (cx + ox, cy - oy), (cx + ox, cy + oy), (cx - ox, cy + oy)
    isw, ise, ine, inw = (cx - ix, cy - iy), (cx + ix, cy - iy), (cx + ix, cy + iy), (cx - ix, cy + iy)
    port = (
        (cx + ox, cy - 0.03),
        (cx + ox + 0.045, cy - 0.03),
        (cx + ox + 0.045, cy + 0.01),
        (cx + ox, cy + 0.01),
    )
    return (
        District("Centrum", _closed(isw, ise, ine, inw)),
        District("Noord", _closed(inw, ine, one, onw)),
        District("Oost", _closed(ise, ose, one, ine)),
        District("Zuid", _closed(osw, ose, ise, isw)),
        District("West", _closed(osw, isw, inw, onw)),
        District("Haven", _closed(*port)),
    )


DISTRICTS: tuple[District, ...] = _districts()
_BY_NAME = {d.name: d for d in DISTRICTS}

STREETS = (
    "Lindelaan", "Molenweg", "Kerkstraat", "Beukenhof", "Dorpsstraat", "Havenkade", "Stationsplein",
    "Eikenlaan", "Wilgenstraat", "Nieuwe Gracht", "Vlierweg", "Torenstraat", "Brink", "Sluisweg",
    "Populierenlaan", "Zuiderdijk", "Akkerstraat", "Heideweg", "Tulpstraat", "Marktveld",
)  # fmt: skip
COMPANIES = ("Veldhaven Logistics", "Aurora Labs", "Gemeente Veldhaven", "Kade Offices", "Noorderpark Campus")


def place(rng: random.Random, district: str) -> tuple[float, float]:
    """A uniform point inside the district as (lat, lon), rounded to about a metre."""
    d = _BY_NAME[district]
    x0, y0, x1, y1 = d.bbox
    while True:
        lon = round(x0 + rng.random() * (x1 - x0), 5)
        lat = round(y0 + rng.random() * (y1 - y0), 5)
        if d.contains(lon, lat):
            return lat, lon


def district_of(lat: float, lon: float) -> str | None:
    for d in DISTRICTS:
        if d.contains(lon, lat):
            return d.name
    return None


def station_name(rng: random.Random, profile: str, access: str, district: str, index: int) -> str:
    if access == "home":
        return f"Home charger {index + 1}"
    if profile == "hub":
        return f"{CITY} {district} fast charging hub"
    if profile == "workplace":
        return f"{COMPANIES[rng.randrange(len(COMPANIES))]} car park"
    return f"{STREETS[rng.randrange(len(STREETS))]} {1 + rng.randrange(180)}"


def write_station_registry(chargers: Sequence[Charger], folder: Path) -> tuple[Path, Path]:
    """stations.csv (one row per charge point) and areas.geojson (the districts) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stations = folder / "stations.csv"
    with stations.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(STATION_COLUMNS)
        for c in chargers:
            writer.writerow(
                (
                    c.charge_point_id,
                    c.name,
                    f"{c.latitude:.5f}",
                    f"{c.longitude:.5f}",
                    c.area,
                    f"{c.max_power_kw:g}",
                    c.access,
                    c.connectors,
                    c.profile,
                    c.ocpp_version,
                )
            )
    areas = folder / "areas.geojson"
    areas.write_bytes(orjson.dumps(areas_geojson(), option=orjson.OPT_INDENT_2) + b"\n")
    return stations, areas


def areas_geojson() -> dict[str, object]:
    return {
        "type": "FeatureCollection",
        "name": f"{CITY} districts (fictional)",
        "features": [
            {
                "type": "Feature",
                "id": d.name.lower(),
                "properties": {"area": d.name, "city": CITY},
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in d.ring]]},
            }
            for d in DISTRICTS
        ],
    }
