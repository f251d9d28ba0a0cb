"""The operator's station registry (stations.csv) and optional district polygons (areas.geojson).

In the foundation because the pipeline (published station fields) and the API (live feeds, which may
only show public stations) both read it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

PUBLIC_ACCESS = "public"
UNKNOWN_AREA = "unknown"


class RegistryError(ValueError):
    """The registry file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class RegistryStation:
    station_id: str
    name: str | None
    latitude: float | None
    longitude: float | None
    area: str
    max_power_kw: float | None
    access: str

    @property
    def public(self) -> bool:
        return self.access == PUBLIC_ACCESS


def _float(value: str | None, path: Path, line: int, column: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise RegistryError(f"{path.name} line {line}: {column} is not a number: {value!r}") from exc


def _point_in_polygon(x: float, y: float, ring: list[list[float]]) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i][0], ring[i][1]
        xj, yj = ring[j][0], ring[j][1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / ((yj - yi) or 1e-300) + xi:
            inside = not inside
        j = i
    return inside


def load_areas(path: Path) -> list[tuple[str, list[list[list[list[float]]]]]]:
    """(name, polygons) per feature; each polygon is [outer ring, holes...]."""
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path.name}: not readable GeoJSON ({exc})") from exc
    out = []
    for feature in doc.get("features", []):
        geom = feature.get("geometry") or {}
        name = (feature.get("properties") or {}).get("name")
        if not name:
            continue
        if geom.get("type") == "Polygon":
            out.append((str(name), [geom["coordinates"]]))
        elif geom.get("type") == "MultiPolygon":
            out.append((str(name), list(geom["coordinates"])))
    return out


def area_of(lon: float, lat: float, areas: list[tuple[str, list]]) -> str | None:
    for name, polygons in areas:
        for poly in polygons:
            if _point_in_polygon(lon, lat, poly[0]) and not any(
                _point_in_polygon(lon, lat, hole) for hole in poly[1:]
            ):
                return name
    return None


def load_registry(path: Path, areas_path: Path | None = None) -> dict[str, RegistryStation]:
    """Stations by id. A missing registry gives an empty one: then no station is public (safe default)."""
    if not path.exists():
        return {}
    areas = load_areas(areas_path) if areas_path else []
    out: dict[str, RegistryStation] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise RegistryError(f"{path.name}: the header must name an 'id' column")
        for line, row in enumerate(reader, start=2):
            sid = (row.get("id") or "").strip()
            if not sid:
                raise RegistryError(f"{path.name} line {line}: empty id")
            lat = _float(row.get("latitude"), path, line, "latitude")
            lon = _float(row.get("longitude"), path, line, "longitude")
            area = (row.get("area") or "").strip() or None
            if area is None and lat is not None and lon is not None:
                area = area_of(lon, lat, areas)
            out[sid] = RegistryStation(
                station_id=sid,
                name=(row.get("name") or "").strip() or None,
                latitude=lat,
                longitude=lon,
                area=area or UNKNOWN_AREA,
                max_power_kw=_float(row.get("max_power_kw"), path, line, "max_power_kw"),
                access=(row.get("access") or "").strip().lower() or "unknown",
            )
    return out
