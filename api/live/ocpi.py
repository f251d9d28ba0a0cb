"""OCPI 2.2.1 Locations module, sender (CPO) interface, read-only, rendered from a LiveView.

Spec: https://github.com/ocpi/ocpi/blob/2.2.1/mod_locations.asciidoc (Location, EVSE, Connector
objects; GET list with date_from/date_to) and
https://github.com/ocpi/ocpi/blob/2.2.1/transport_and_format.asciidoc (response envelope, pagination:
offset, limit, Link, X-Total-Count, X-Limit; DateTime format).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from api.live.view import EvseView, LiveView, LocationView

VERSION = "2.2.1"
MAX_LIMIT = 1000  # X-Limit: the most Locations one page holds
PAGE_CACHE = 512  # pages kept per view (distinct offset/limit/date queries)

# Defaults for a registry that does not describe its connectors: the commonest public AC point in
# Europe (a Type 2 socket, three-phase at 230 V line to neutral). Documented in docs/live.md.
DEFAULT_STANDARD = "IEC_62196_T2"
DEFAULT_FORMAT = "SOCKET"
DEFAULT_POWER_TYPE = "AC_3_PHASE"
DEFAULT_AC_VOLTAGE = 230
DEFAULT_DC_VOLTAGE = 400
DEFAULT_AMPERAGE = 16


@dataclass(frozen=True)
class Party:
    """What the registry may leave out and the operator's settings fill in."""

    country_code: str | None
    party_id: str | None
    country: str | None
    time_zone: str
    operator_name: str | None


class OcpiError(Exception):
    def __init__(self, http_status: int, status_code: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code
        self.message = message


def ocpi_time(moment: datetime) -> str:
    """OCPI DateTime: RFC 3339 in UTC with a Z, at most 25 characters (transport_and_format, DateTime)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ocpi_time(name: str, value: str) -> datetime:
    """A date_from/date_to value; no zone means UTC, as OCPI says."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise OcpiError(400, 2001, f"{name} is not an RFC 3339 date-time: {value[:40]!r}") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def connector_fields(loc: LocationView) -> dict[str, Any]:
    st = loc.station
    power_type = st.power_type or DEFAULT_POWER_TYPE
    voltage = st.max_voltage or (DEFAULT_DC_VOLTAGE if power_type == "DC" else DEFAULT_AC_VOLTAGE)
    phases = 3 if power_type == "AC_3_PHASE" else 1
    watts = round(st.max_power_kw * 1000) if st.max_power_kw else None
    amperage = st.max_amperage or (round(watts / (phases * voltage)) if watts else DEFAULT_AMPERAGE)
    return {
        "standard": st.connector_standard or DEFAULT_STANDARD,
        "format": st.connector_format or DEFAULT_FORMAT,
        "power_type": power_type,
        "max_voltage": voltage,
        "max_amperage": amperage,
        "max_electric_power": watts or phases * voltage * amperage,
    }


def evse_object(loc: LocationView, evse: EvseView, static_since: datetime) -> dict[str, Any]:
    spec = connector_fields(loc)
    out: dict[str, Any] = {"uid": evse.uid}
    if evse.evse_id:
        out["evse_id"] = evse.evse_id
    out["status"] = evse.status
    out["connectors"] = [
        {"id": cid, **spec, "last_updated": ocpi_time(static_since)} for cid in evse.connector_ids
    ]
    out["last_updated"] = ocpi_time(evse.since)
    return out


def location_object(loc: LocationView, party: Party, static_since: datetime) -> dict[str, Any] | None:
    """The Location, or None when the registry and settings lack a field OCPI requires."""
    st = loc.station
    required = {
        "country_code": st.country_code or party.country_code,
        "party_id": st.party_id or party.party_id,
        "address": st.address or st.name,
        "city": st.city,
        "country": st.country or party.country,
    }
    if any(v is None for v in required.values()) or st.latitude is None or st.longitude is None:
        return None
    out: dict[str, Any] = {
        "country_code": required["country_code"].upper(),
        "party_id": required["party_id"].upper(),
        "id": st.station_id,
        "publish": True,
    }
    if st.name:
        out["name"] = st.name
    out["address"] = required["address"]
    out["city"] = required["city"]
    if st.postal_code:
        out["postal_code"] = st.postal_code
    out["country"] = required["country"].upper()
    # OCPI GeoLocation: decimal strings, 5 to 7 decimals.
    out["coordinates"] = {"latitude": f"{st.latitude:.6f}", "longitude": f"{st.longitude:.6f}"}
    out["evses"] = [evse_object(loc, evse, static_since) for evse in loc.evses]
    if party.operator_name:
        out["operator"] = {"name": party.operator_name}
    out["time_zone"] = st.time_zone or party.time_zone
    out["last_updated"] = ocpi_time(loc.last_updated)
    return out


@dataclass
class Rendered:
    """The view's Locations as OCPI objects, pre-encoded, in a stable order (the registry's ids)."""

    ids: list[str]
    updated: list[datetime]
    encoded: list[bytes]
    objects: dict[str, dict[str, Any]]
    skipped: int


def _encoded(loc: LocationView, party: Party, static_since: datetime) -> tuple[dict[str, Any] | None, bytes]:
    obj = location_object(loc, party, static_since)
    return obj, (orjson.dumps(obj) if obj is not None else b"")


def rendered(view: LiveView, party: Party) -> Rendered:
    found = view.cache.get("ocpi")
    if found is None:
        ids, updated, encoded, objects, skipped = [], [], [], {}, 0
        for loc in view.locations:
            # The party is the app's, fixed for its life, and static_since is part of a location's
            # inputs: a memo made for one view is right for every view the location is carried into.
            obj, body = loc.memoized("ocpi", lambda loc=loc: _encoded(loc, party, view.static_since))
            if obj is None:
                skipped += 1
                continue
            ids.append(loc.station.station_id)
            updated.append(loc.last_updated)
            encoded.append(body)
            objects[loc.station.station_id] = obj
        found = view.cache["ocpi"] = Rendered(ids, updated, encoded, objects, skipped)
    return found  # type: ignore[no-any-return]


def envelope(data_json: bytes, timestamp: datetime) -> bytes:
    return (
        b'{"data":'
        + data_json
        + b',"status_code":1000,"status_message":"Success","timestamp":"'
        + ocpi_time(timestamp).encode()
        + b'"}'
    )


def error_body(status_code: int, message: str, timestamp: datetime) -> bytes:
    return orjson.dumps(
        {"status_code": status_code, "status_message": message, "timestamp": ocpi_time(timestamp)}
    )


@dataclass(frozen=True)
class Page:
    body: bytes
    etag: str
    total: int
    limit: int
    next_offset: int | None


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def page(
    view: LiveView,
    party: Party,
    offset: int,
    limit: int,
    date_from: datetime | None,
    date_to: datetime | None,
) -> Page:
    key = ("page", offset, limit, date_from, date_to)
    found = view.cache.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    r = rendered(view, party)
    # date_from inclusive, date_to exclusive (transport_and_format, "Paginated Request").
    chosen = [
        i
        for i, when in enumerate(r.updated)
        if (date_from is None or when >= date_from) and (date_to is None or when < date_to)
    ]
    window = chosen[offset : offset + limit]
    body = envelope(b"[" + b",".join(r.encoded[i] for i in window) + b"]", view.last_modified)
    nxt = offset + limit if offset + limit < len(chosen) else None
    result = Page(body, etag_of(body), len(chosen), limit, nxt)
    if sum(1 for k in view.cache if isinstance(k, tuple)) < PAGE_CACHE:
        view.cache[key] = result
    return result


def location(view: LiveView, party: Party, location_id: str) -> dict[str, Any]:
    obj = rendered(view, party).objects.get(location_id)
    if obj is None:
        raise OcpiError(404, 2003, f"unknown location {location_id[:40]!r}")
    return obj


def evse(view: LiveView, party: Party, location_id: str, evse_uid: str) -> dict[str, Any]:
    for item in location(view, party, location_id)["evses"]:
        if item["uid"] == evse_uid:
            return item  # type: ignore[no-any-return]
    raise OcpiError(404, 2003, f"unknown EVSE {evse_uid[:40]!r} at location {location_id[:40]!r}")


def connector(
    view: LiveView, party: Party, location_id: str, evse_uid: str, connector_id: str
) -> dict[str, Any]:
    for item in evse(view, party, location_id, evse_uid)["connectors"]:
        if item["id"] == connector_id:
            return item  # type: ignore[no-any-return]
    raise OcpiError(404, 2003, f"unknown connector {connector_id[:40]!r}")
