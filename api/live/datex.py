"""DATEX II v3.5 Energy Infrastructure in the AFIR recharging profile, JSON encoding, from a LiveView.

Followed: the published v3.5 "AFIR Energy Infrastructure" profile (profile version 01-00-00), JSON
schemas DATEXII_3_AfirEnergyInfrastructure.json / DATEXII_3_D2Payload.json as distributed for the
German Mobilithek NAP (static: EnergyInfrastructureTablePublication; dynamic:
EnergyInfrastructureStatusPublication). Root object: D2Payload ({"payload": PayloadPublicationG}).
See docs/live.md for what each field comes from.
"""

from __future__ import annotations

from typing import Any

from api.live.ocpi import Party, connector_fields, ocpi_time
from api.live.view import EvseView, LiveView, LocationView

PAYLOAD_HEAD = {
    "versionG": "3.5",
    "modelBaseVersionG": "3",
    "profileNameG": "AFIR Energy Infrastructure",
    "profileVersionG": "01-00-00",
}
LANG = "en"
TABLE_ID = "ocpp-opendata"
UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 user-assigned "unknown", when no country code is configured

# OCPI ConnectorType → DATEX II ConnectorTypeEnum (same connectors, DATEX II spelling).
CONNECTOR_TYPES = {
    "CHADEMO": "chademo",
    "IEC_62196_T1": "iec62196T1",
    "IEC_62196_T1_COMBO": "iec62196T1COMBO",
    "IEC_62196_T2": "iec62196T2",
    "IEC_62196_T2_COMBO": "iec62196T2COMBO",
    "IEC_62196_T3A": "iec62196T3A",
    "IEC_62196_T3C": "iec62196T3C",
    "IEC_60309_2_single_16": "iec60309x2single16",
    "IEC_60309_2_three_16": "iec60309x2three16",
    "IEC_60309_2_three_32": "iec60309x2three32",
    "IEC_60309_2_three_64": "iec60309x2three64",
    "PANTOGRAPH_BOTTOM_UP": "pantographBottomUp",
    "PANTOGRAPH_TOP_DOWN": "pantographTopDown",
    "TESLA_R": "teslaR",
    "TESLA_S": "teslaS",
    **{f"DOMESTIC_{c}": f"domestic{c}" for c in "ABCDEFGHIJKLMNO"},
}


def _text(value: str) -> dict[str, Any]:
    return {"values": [{"lang": LANG, "value": value}]}


def _ref(id_: str, version: str) -> dict[str, str]:
    return {"targetClass": "FacilityObject", "idG": id_, "versionG": version}


def table_version(view: LiveView) -> str:
    """The static table's version: the registry's modification time (whole seconds since 1970)."""
    return str(int(view.static_since.timestamp()))


def creator(party: Party) -> dict[str, str]:
    return {
        "country": (party.country_code or UNKNOWN_COUNTRY).upper()[:2],
        "nationalIdentifier": party.operator_name or party.party_id or TABLE_ID,
    }


def refill_point_id(evse: EvseView) -> str:
    return evse.evse_id or evse.uid


def _charging_point(loc: LocationView, evse: EvseView, version: str) -> dict[str, Any]:
    spec = connector_fields(loc)
    dc = spec["power_type"] == "DC"
    fmt = spec["format"]
    connector = {
        "connectorType": {"value": CONNECTOR_TYPES.get(spec["standard"], "other")},
        "connectorFormat": {"value": "socket" if fmt == "SOCKET" else ("otherCable" if dc else "cableMode3")},
        "maxPowerAtSocket": float(spec["max_electric_power"]),
        "voltage": float(spec["max_voltage"]),
        "maximumCurrent": float(spec["max_amperage"]),
    }
    return {
        "aegiElectricChargingPoint": {
            "idG": refill_point_id(evse),
            "versionG": version,
            "deliveryUnit": {"value": "kWh"},
            "currentType": {"value": "dc" if dc else "ac"},
            "numberOfConnectors": len(evse.connector_ids),
            "availableChargingPower": [float(spec["max_electric_power"])],
            "connector": [dict(connector) for _ in evse.connector_ids],
        }
    }


def _site(loc: LocationView, party: Party, version: str) -> dict[str, Any] | None:
    st = loc.station
    if st.latitude is None or st.longitude is None:
        return None
    power = float(connector_fields(loc)["max_electric_power"])
    site: dict[str, Any] = {"idG": st.station_id, "versionG": version}
    if st.name:
        site["name"] = _text(st.name)
    site["locationReference"] = {
        "locPointLocation": {
            "pointByCoordinates": {"pointCoordinates": {"latitude": st.latitude, "longitude": st.longitude}}
        }
    }
    if party.operator_name:
        site["operator"] = {"afacAnOrganisation": {"name": _text(party.operator_name)}}
    site["energyInfrastructureStation"] = [
        {
            "idG": st.station_id,
            "versionG": version,
            "totalMaximumPower": power * len(loc.evses),
            "numberOfRefillPoints": len(loc.evses),
            "serviceType": [{"serviceType": {"value": "unattended"}}],
            "refillPoint": [_charging_point(loc, evse, version) for evse in loc.evses],
        }
    ]
    return site


def table_publication(view: LiveView, party: Party) -> dict[str, Any]:
    version = table_version(view)
    found = (loc.memoized("datex-site", lambda loc=loc: _site(loc, party, version)) for loc in view.locations)
    sites = [s for s in found if s is not None]
    return {
        "payload": {
            **PAYLOAD_HEAD,
            "aegiEnergyInfrastructureTablePublication": {
                "lang": LANG,
                "publicationTime": ocpi_time(view.static_since),
                "publicationCreator": creator(party),
                "energyInfrastructureTable": [
                    {"idG": TABLE_ID, "versionG": version, "energyInfrastructureSite": sites}
                ],
            },
        }
    }


def status_publication(view: LiveView, party: Party) -> dict[str, Any]:
    version = table_version(view)
    found = (
        loc.memoized("datex-status", lambda loc=loc: _site_status(loc, version)) for loc in view.locations
    )
    sites = [s for s in found if s is not None]
    return {
        "payload": {
            **PAYLOAD_HEAD,
            "aegiEnergyInfrastructureStatusPublication": {
                "lang": LANG,
                "publicationTime": ocpi_time(view.last_modified),
                "publicationCreator": creator(party),
                "tableReference": [
                    {"targetClass": "EnergyInfrastructureTable", "idG": TABLE_ID, "versionG": version}
                ],
                "energyInfrastructureSiteStatus": sites,
            },
        }
    }


def _site_status(loc: LocationView, version: str) -> dict[str, Any] | None:
    if loc.station.latitude is None or loc.station.longitude is None:
        return None  # not in the table either
    updated = ocpi_time(loc.last_updated)
    points = [
        {
            "aegiElectricChargingPointStatus": {
                "reference": _ref(refill_point_id(evse), version),
                "lastUpdated": ocpi_time(evse.since),
                "status": {"value": evse.datex},
            }
        }
        for evse in loc.evses
    ]
    sid = loc.station.station_id
    return {
        "reference": _ref(sid, version),
        "lastUpdated": updated,
        "energyInfrastructureStationStatus": [
            {"reference": _ref(sid, version), "lastUpdated": updated, "refillPointStatus": points}
        ],
    }
