"""Each tolerated deviation of docs/leniency.md: answered with a CallResult, stored, flagged."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chargers import raw_charger, rows
from tests.support.listener import RunningListener

TS = "2026-11-20T08:00:00Z"


def meter_values(*sampled: Any, meter_value: Any = None) -> dict[str, Any]:
    mv = meter_value if meter_value is not None else [{"timestamp": TS, "sampledValue": list(sampled)}]
    return {"connectorId": 1, "transactionId": 7, "meterValue": mv}


# (sampled value as sent, expected value, expected unit, expected quality flags)
CASES_16 = [
    ({"value": "1234"}, 1234.0, "Wh", []),
    ({"value": 1234}, 1234.0, "Wh", ["schema_invalid", "value_not_string"]),
    ({"value": 12.5, "unit": "kWh"}, 12500.0, "Wh", ["schema_invalid", "value_not_string", "unit_scaled"]),
    ({"value": "12.5", "unit": "kWh"}, 12500.0, "Wh", ["unit_scaled"]),
    ({"value": "7", "unit": "kw", "measurand": "Power.Active.Import"}, 7000.0, "W",
     ["schema_invalid", "unit_scaled"]),
    ({"value": "230", "unit": "v", "measurand": "Voltage"}, 230.0, "V", ["schema_invalid", "unit_case"]),
    ({"value": ""}, None, "Wh", ["value_empty"]),
    ({"value": "12,5"}, 12.5, "Wh", ["value_decimal_comma"]),
    ({"value": "garbage"}, None, "Wh", ["value_unparsable"]),
    ({"value": "a1b2c3", "format": "SignedData"}, None, "Wh", ["signed_data"]),
    ({"value": "5", "unit": "Bananas"}, 5.0, "Bananas", ["schema_invalid", "unit_nonstandard"]),
    ({"value": "5", "context": "Sample.Weird"}, 5.0, "Wh", ["schema_invalid", "context_nonstandard"]),
    ({"value": "5", "measurand": "Energy.Active.Import.Total"}, 5.0, "Wh",
     ["schema_invalid", "measurand_nonstandard"]),
]  # fmt: skip


@pytest.mark.parametrize("sv, value, unit, flags", CASES_16, ids=[str(c[0]) for c in CASES_16])
async def test_a_16_sampled_value_variant_is_answered_and_stored_with_its_flags(
    listener: RunningListener, sv: dict[str, Any], value: float | None, unit: str, flags: list[str]
) -> None:
    async with raw_charger(listener.url, "LENIENT-1") as charger:
        answer = await charger.call("MeterValues", meter_values(sv))
    assert answer == [3, "m1", {}]
    listener.stop()
    [row] = rows(listener.data_dir, "meter_values")
    assert row["value"] == value
    assert row["unit"] == unit
    assert row["quality"] == flags
    expected_raw = sv["value"] if isinstance(sv["value"], str) else str(sv["value"])
    assert row["value_raw"] == expected_raw
    [frame] = rows(listener.data_dir, "frames", "direction = 'in'")
    assert (frame["validation_error"] is not None) == ("schema_invalid" in flags)


async def test_defaults_of_16_are_filled_in(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "LENIENT-2") as charger:
        await charger.call("MeterValues", meter_values({"value": "10"}))
    listener.stop()
    [row] = rows(listener.data_dir, "meter_values")
    filled = tuple(row[c] for c in ("measurand", "context", "format", "location", "unit", "unit_raw"))
    assert filled == ("Energy.Active.Import.Register", "Sample.Periodic", "Raw", "Outlet", "Wh", None)


async def test_meter_value_sent_as_an_object_and_missing_timestamp_are_tolerated(
    listener: RunningListener,
) -> None:
    async with raw_charger(listener.url, "LENIENT-3") as charger:
        answer = await charger.call(
            "MeterValues", meter_values(meter_value={"sampledValue": [{"value": "3"}]})
        )
        empty = await charger.call(
            "MeterValues", meter_values(meter_value=[{"timestamp": TS, "sampledValue": []}])
        )
    assert answer[0] == 3 and empty[0] == 3
    listener.stop()
    [row] = rows(listener.data_dir, "meter_values")
    assert row["value"] == 3.0 and row["timestamp"] is None
    assert row["quality"] == ["schema_invalid", "meter_value_object", "timestamp_missing"]
    frames = rows(listener.data_dir, "frames", "direction = 'in'", order="seq")
    assert all(f["validation_error"] for f in frames)


async def test_201_multiplier_and_json_number_values_are_applied_and_flagged(
    listener: RunningListener,
) -> None:
    payload = {"evseId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [
        {"value": 42, "unitOfMeasure": {"unit": "Wh", "multiplier": 3}},
        {"value": "42", "measurand": "Power.Active.Import"},
    ]}]}  # fmt: skip
    async with raw_charger(listener.url, "LENIENT-4", "ocpp2.0.1") as charger:
        answer = await charger.call("MeterValues", payload)
    assert answer == [3, "m1", {}]
    listener.stop()
    first, second = rows(listener.data_dir, "meter_values", order="value_index")
    # schema_invalid marks every row of the frame: the frame as a whole broke its schema.
    assert (first["value"], first["multiplier"], first["quality"]) == (42000.0, 3, ["schema_invalid"])
    # 2.0.1 values are JSON numbers: a string is a schema violation, still understood.
    assert (second["value"], second["unit"]) == (42.0, "W")
    assert second["quality"] == ["schema_invalid", "value_string"]


async def test_schema_invalid_but_meaningful_start_is_answered_with_a_transaction_id(
    listener: RunningListener,
) -> None:
    # meterStart as a string and an unknown extra field: still a start we can record.
    payload = {"connectorId": 1, "idTag": "ABC", "meterStart": "100", "timestamp": TS, "vendorThing": 1}
    async with raw_charger(listener.url, "LENIENT-5") as charger:
        answer = await charger.call("StartTransaction", payload)
    assert answer[0] == 3 and isinstance(answer[2]["transactionId"], int)
    listener.stop()
    [event] = rows(listener.data_dir, "transaction_events")
    assert event["meter_start_wh"] == 100.0 and event["quality"] == ["schema_invalid"]
    assert event["transaction_id"] == str(answer[2]["transactionId"])


async def test_an_over_long_message_id_is_answered_with_the_same_id_and_flagged(
    listener: RunningListener,
) -> None:
    long_id = "x" * 80
    async with raw_charger(listener.url, "LENIENT-6") as charger:
        answer = await charger.call("Heartbeat", {}, message_id=long_id)
    assert answer[:2] == [3, long_id]
    listener.stop()
    [frame] = rows(listener.data_dir, "frames", "direction = 'in'")
    assert "longer than 36" in frame["validation_error"]


async def test_strict_mode_refuses_what_lenient_mode_accepts(tmp_path: Any) -> None:
    from tests.support.listener import make_listener

    strict = make_listener(tmp_path / "data", "--strict").start()
    try:
        async with raw_charger(strict.url, "STRICT-1") as charger:
            answer = await charger.call("MeterValues", meter_values({"value": 1234}))
    finally:
        strict.stop()
    assert answer[0] == 4 and answer[2] == "TypeConstraintViolation"
    [q] = rows(strict.data_dir, "quarantine")
    assert q["reason"] == "strict_validation"
    assert rows(strict.data_dir, "meter_values") == []
