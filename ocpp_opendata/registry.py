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
    # Optional columns for the live feeds (OCPI Location/EVSE/Connector, DATEX II site/refill point);
    # empty means "not given" and the API falls back to its settings or leaves the field out.
    country_code: str | None = None  # OCPI: ISO 3166-1 alpha-2 of the operator (CPO)
    party_id: str | None = None  # OCPI: the operator's 3-character party id
    address: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-3 of the location
    time_zone: str | None = None  # IANA name
    connectors: int | None = None  # EVSEs (charging points) of the station
    evse_ids: tuple[str, ...] = ()  # eMI3 EVSE ids (e.g. SE*ABC*E123*1), in EVSE order, ';'-separated
    connector_standard: str | None = None  # OCPI ConnectorType, e.g. IEC_62196_T2
    connector_format: str | None = None  # SOCKET or CABLE
    power_type: str | None = None  # AC_1_PHASE, AC_3_PHASE, DC, ...
    max_voltage: int | None = None  # V (line to neutral for AC 3-phase, as OCPI defines it)
    max_amperage: int | None = None  # A

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


def _int(value: str | None, path: Path, line: int, column: str) -> int | None:
    number = _float(value, path, line, column)
    if number is None:
        return None
    if number != int(number) or number < 0:
        raise RegistryError(f"{path.name} line {line}: {column} is not a whole number: {value!r}")
    return int(number)


def _text(row: dict[str, str | None], column: str) -> str | None:
    return (row.get(column) or "").strip() or None


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
                country_code=_text(row, "country_code"),
                party_id=_text(row, "party_id"),
                address=_text(row, "address"),
                city=_text(row, "city"),
                postal_code=_text(row, "postal_code"),
                country=_text(row, "country"),
                time_zone=_text(row, "time_zone"),
                connectors=_int(row.get("connectors"), path, line, "connectors"),
                evse_ids=tuple(e.strip() for e in (row.get("evse_ids") or "").split(";") if e.strip()),
                connector_standard=_text(row, "connector_standard"),
                connector_format=(_text(row, "connector_format") or "").upper() or None,
                power_type=(_text(row, "power_type") or "").upper() or None,
                max_voltage=_int(row.get("max_voltage"), path, line, "max_voltage"),
                max_amperage=_int(row.get("max_amperage"), path, line, "max_amperage"),
            )
    return out
