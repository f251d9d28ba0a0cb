"""The status table and the registry's feed columns (plain functions: no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ocpp_opendata.live import (
    DATEX_STATUS,
    DATEX_STATUSES,
    OCPI_STATUS,
    OCPI_STATUSES,
    ChargerState,
    datex_status,
    ocpi_status,
    offline_limit,
    offline_since,
)
from ocpp_opendata.registry import RegistryError, load_registry


def test_every_ocpp_status_has_an_ocpi_and_a_datex_status_from_their_vocabularies() -> None:
    assert set(DATEX_STATUS) == set(OCPI_STATUS)
    assert set(OCPI_STATUS.values()) <= set(OCPI_STATUSES)
    assert set(DATEX_STATUS.values()) <= set(DATEX_STATUSES)
    assert (ocpi_status("Charging", offline=True), datex_status("Charging", offline=True)) == (
        "UNKNOWN",
        "unknown",
    )
    assert (ocpi_status("Bogus"), datex_status("Bogus")) == ("UNKNOWN", "unknown")


def test_the_offline_limit_defaults_to_two_heartbeat_intervals() -> None:
    now = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    cp = ChargerState("X", heartbeat_interval=60, last_seen=(now - timedelta(seconds=119)).isoformat())
    assert offline_limit(cp, None, 300) == 120
    assert offline_limit(ChargerState("Y"), None, 300) == 600
    assert offline_limit(cp, 10, 300) == 10
    assert offline_since(cp, now, 120) is None
    assert offline_since(cp, now + timedelta(seconds=2), 120) == now + timedelta(seconds=1)


def test_the_registry_reads_the_optional_feed_columns(tmp_path: Path) -> None:
    path = tmp_path / "stations.csv"
    path.write_text(
        "id,name,latitude,longitude,access,connectors,country_code,party_id,address,city,postal_code,"
        "country,time_zone,evse_ids,connector_standard,connector_format,power_type,max_voltage,max_amperage\n"
        "A,Hub,59.1,18.2,public,2,SE,ABC,Gata 1,Stad,12345,SWE,Europe/Stockholm,SE*ABC*E1*1; SE*ABC*E1*2,"
        "IEC_62196_T2_COMBO,cable,dc,920,200\n"
        "B,Old,59.1,18.2,public,,,,,,,,,,,,,,\n",
        encoding="utf-8",
    )
    a, b = load_registry(path)["A"], load_registry(path)["B"]
    assert (a.country_code, a.party_id, a.address, a.city, a.postal_code, a.country, a.time_zone) == (
        "SE", "ABC", "Gata 1", "Stad", "12345", "SWE", "Europe/Stockholm"
    )  # fmt: skip
    assert a.evse_ids == ("SE*ABC*E1*1", "SE*ABC*E1*2")
    assert (a.connectors, a.connector_standard, a.connector_format, a.power_type) == (
        2,
        "IEC_62196_T2_COMBO",
        "CABLE",
        "DC",
    )
    assert (a.max_voltage, a.max_amperage) == (920, 200)
    assert (b.connectors, b.evse_ids, b.country_code, b.power_type) == (None, (), None, None)
    path.write_text("id,access,max_amperage\nC,public,32.5\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="line 2: max_amperage is not a whole number"):
        load_registry(path)
