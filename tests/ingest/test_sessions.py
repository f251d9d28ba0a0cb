"""Whole charging sessions through a real listener, read back from Parquet value for value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.support.chargers import iso, ocpp_charger, rows
from tests.support.listener import RunningListener

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def sampled(energy_wh: float, power_w: float) -> list[dict[str, str]]:
    return [
        {"value": f"{energy_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": f"{power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
    ]


async def test_a_full_16_session_lands_in_parquet_value_for_value(listener: RunningListener) -> None:
    async with ocpp_charger(listener.url, "CP-16-A") as cp:
        boot = await cp.call(call16.BootNotification(charge_point_model="M1", charge_point_vendor="V1"))
        assert boot.status == "Accepted"
        await cp.call(
            call16.StatusNotification(
                connector_id=1, error_code="NoError", status="Preparing", timestamp=iso(T0)
            )
        )
        start = await cp.call(
            call16.StartTransaction(connector_id=1, id_tag="CAFE0001", meter_start=1000, timestamp=iso(T0))
        )
        assert start.id_tag_info["status"] == "Accepted"
        tx = start.transaction_id
        assert isinstance(tx, int) and 0 < tx < 2**31
        for minute in (1, 2, 3):
            ts = iso(T0 + timedelta(minutes=minute))
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=tx,
                    meter_value=[{"timestamp": ts, "sampledValue": sampled(1000 + 120 * minute, 7200)}],
                )
            )
        await cp.call(
            call16.StopTransaction(
                meter_stop=1400,
                timestamp=iso(T0 + timedelta(minutes=4)),
                transaction_id=tx,
                reason="EVDisconnected",
                id_tag="CAFE0001",
            )
        )
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    assert listener.stop() == 0

    data = listener.data_dir
    frames = rows(data, "frames", order="seq")
    assert [f["direction"] for f in frames] == ["in", "out"] * 8
    assert [f["action"] for f in frames if f["direction"] == "in"] == [
        "BootNotification", "StatusNotification", "StartTransaction", "MeterValues", "MeterValues",
        "MeterValues", "StopTransaction", "StatusNotification",
    ]  # fmt: skip
    assert all(f["validation_error"] is None for f in frames)
    assert {f["ocpp_version"] for f in frames} == {"1.6"}

    meters = rows(data, "meter_values", order="timestamp, value_index")
    energy = [m["value"] for m in meters if m["measurand"] == "Energy.Active.Import.Register"]
    assert energy == [1120.0, 1240.0, 1360.0]
    assert {m["transaction_id"] for m in meters} == {str(tx)}
    assert {m["unit"] for m in meters} == {"Wh", "W"}
    assert all(m["quality"] == [] for m in meters)
    assert meters[0]["timestamp"] == T0 + timedelta(minutes=1)

    events = rows(data, "transaction_events", order="seq_no NULLS FIRST, received_at")
    assert [(e["event_type"], e["transaction_id"]) for e in events] == [
        ("Started", str(tx)),
        ("Ended", str(tx)),
    ]
    assert events[0]["id_tag"] == "CAFE0001" and events[0]["meter_start_wh"] == 1000
    assert events[1]["meter_stop_wh"] == 1400 and events[1]["stopped_reason"] == "EVDisconnected"
    assert events[1]["quality"] == []

    statuses = rows(data, "status_notifications")
    assert [s["status"] for s in statuses] == ["Preparing", "Available"]
    assert statuses[0]["timestamp"] == T0 and statuses[1]["timestamp"] is None

    boots = rows(data, "boot_notifications")
    assert [(b["vendor"], b["model"]) for b in boots] == [("V1", "M1")]

    connections = rows(data, "connections")
    assert [c["event"] for c in connections] == ["connected", "disconnected"]
    assert connections[0]["ocpp_version"] == "1.6"
    assert connections[0]["connection_id"] == frames[0]["connection_id"]


async def test_a_full_201_session_lands_in_parquet_value_for_value(listener: RunningListener) -> None:
    def event(event_type: str, seq: int, minute: int, energy: float, state: str, **extra: object) -> object:
        return call201.TransactionEvent(
            event_type=event_type, timestamp=iso(T0 + timedelta(minutes=minute)),
            trigger_reason="MeterValuePeriodic" if event_type == "Updated" else "Authorized",
            seq_no=seq, transaction_info={"transactionId": "TX-201-1", "chargingState": state},
            evse={"id": 1, "connectorId": 1},
            meter_value=[{"timestamp": iso(T0 + timedelta(minutes=minute)), "sampledValue": [
                {"value": energy, "measurand": "Energy.Active.Import.Register",
                 "unitOfMeasure": {"unit": "kWh", "multiplier": 0}},
                {"value": 11.0, "measurand": "Power.Active.Import",
                 "unitOfMeasure": {"unit": "W", "multiplier": 3}},
            ]}],
            **extra,
        )  # fmt: skip

    async with ocpp_charger(listener.url, "CP-201-A", "2.0.1") as cp:
        boot = await cp.call(call201.BootNotification(
            charging_station={"model": "M2", "vendor_name": "V2"}, reason="PowerUp"))  # fmt: skip
        assert boot.status == "Accepted"
        await cp.call(
            call201.StatusNotification(
                timestamp=iso(T0), connector_status="Occupied", evse_id=1, connector_id=1
            )
        )
        started = await cp.call(
            event("Started", 0, 0, 5.0, "EVConnected", id_token={"idToken": "DEADBEEF", "type": "ISO14443"})
        )
        assert started.id_token_info["status"] == "Accepted"
        await cp.call(event("Updated", 1, 1, 5.2, "Charging"))
        await cp.call(
            event(
                "Ended",
                2,
                2,
                5.4,
                "EVConnected",
            )
        )
        await cp.call(
            call201.StatusNotification(
                timestamp=iso(T0 + timedelta(minutes=3)),
                connector_status="Available",
                evse_id=1,
                connector_id=1,
            )
        )
    assert listener.stop() == 0

    data = listener.data_dir
    events = rows(data, "transaction_events", order="seq_no")
    assert [(e["event_type"], e["seq_no"], e["charging_state"]) for e in events] == [
        ("Started", 0, "EVConnected"), ("Updated", 1, "Charging"), ("Ended", 2, "EVConnected")]  # fmt: skip
    assert events[0]["id_tag"] == "DEADBEEF" and events[0]["id_token_type"] == "ISO14443"
    assert {e["ocpp_version"] for e in events} == {"2.0.1"}

    meters = rows(data, "meter_values", order="timestamp, value_index")
    energy = [
        (m["value"], m["unit"], m["unit_raw"], m["value_raw"])
        for m in meters
        if m["measurand"].startswith("E")
    ]
    # kWh converted to Wh; the value as sent kept in value_raw.
    assert energy == [
        (5000.0, "Wh", "kWh", "5.0"),
        (5200.0, "Wh", "kWh", "5.2"),
        (5400.0, "Wh", "kWh", "5.4"),
    ]
    power = {m["value"] for m in meters if m["measurand"] == "Power.Active.Import"}
    assert power == {11000.0}  # multiplier 3 applied
    assert {(m["transaction_id"], m["evse_id"], m["connector_id"]) for m in meters} == {("TX-201-1", 1, 1)}

    statuses = rows(data, "status_notifications")
    assert [(s["status"], s["evse_id"]) for s in statuses] == [("Occupied", 1), ("Available", 1)]
    assert rows(data, "boot_notifications")[0]["reason"] == "PowerUp"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_heartbeat_answers_carry_the_listener_clock(listener: RunningListener, version: str) -> None:
    async with ocpp_charger(listener.url, f"HB-{version}", version) as cp:
        answer = await cp.call(call16.Heartbeat() if version == "1.6" else call201.Heartbeat())
    now = datetime.now(UTC)
    assert abs(datetime.fromisoformat(answer.current_time) - now) < timedelta(seconds=5)
