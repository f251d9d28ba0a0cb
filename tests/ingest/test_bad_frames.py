"""Frames that cannot be understood: a CallError, the frame quarantined, the connection kept."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson

from tests.support.chargers import raw_charger, rows
from tests.support.listener import RunningListener, make_listener


async def test_invalid_json_gets_a_formation_violation_with_id_minus_one(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-1") as charger:
        answer = await charger.send_text("[2, this is not json")
        still_up = await charger.call("Heartbeat", {})
    assert answer[:3] == [4, "-1", "FormationViolation"]
    assert still_up[0] == 3
    listener.stop()
    [q] = rows(listener.data_dir, "quarantine")
    assert (q["reason"], q["text"]) == ("invalid_json", "[2, this is not json")


async def test_invalid_json_on_201_gets_a_format_violation_with_the_readable_id(
    listener: RunningListener,
) -> None:
    async with raw_charger(listener.url, "BAD-2", "ocpp2.0.1") as charger:
        answer = await charger.send_text('[2, "abc-1", "Heartbeat", {,}]')
    assert answer[:3] == [4, "abc-1", "FormatViolation"]


async def test_an_unknown_action_gets_not_implemented_and_is_quarantined(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-3") as charger:
        answer = await charger.call("BrewCoffee", {"strength": 9})
        still_up = await charger.call("Heartbeat", {})
    assert answer[:3] == [4, "m1", "NotImplemented"]
    assert still_up[0] == 3
    listener.stop()
    [q] = rows(listener.data_dir, "quarantine")
    assert (q["reason"], q["action"], q["message_id"]) == ("unknown_action", "BrewCoffee", "m1")


async def test_an_action_of_the_other_version_is_answered_and_flagged(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-4") as charger:
        answer = await charger.call("NotifyEvent", {"generatedAt": "2026-11-20T08:00:00Z", "seqNo": 0,
                                                    "eventData": []})  # fmt: skip
    assert answer == [3, "m1", {}]


async def test_an_oversized_frame_is_quarantined_truncated_with_length_and_hash(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--max-frame-bytes", "1000").start()
    big = orjson.dumps([2, "big-1", "DataTransfer", {"vendorId": "X", "data": "y" * 5000}]).decode()
    try:
        async with raw_charger(running.url, "BAD-5") as charger:
            answer = await charger.send_text(big)
            still_up = await charger.call("Heartbeat", {})
    finally:
        running.stop()
    assert answer[:3] == [4, "big-1", "FormationViolation"]
    assert still_up[0] == 3
    [q] = rows(running.data_dir, "quarantine")
    assert q["reason"] == "oversized" and q["length"] == len(big)
    assert len(q["text"]) == 1000 and big.startswith(q["text"])
    assert q["sha256"] == hashlib.sha256(big.encode()).hexdigest()


async def test_a_binary_frame_is_kept_and_answered(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-6") as charger:
        answer = await charger.send_text(b"\x00\x01binary")
    assert answer[0] == 4
    listener.stop()
    [q] = rows(listener.data_dir, "quarantine")
    assert q["reason"] == "binary_frame"


async def test_a_payload_that_is_not_an_object_gets_a_call_error(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-7") as charger:
        answer = await charger.call("StatusNotification", ["not", "an", "object"])
    assert answer[:3] == [4, "m1", "FormationViolation"]
    listener.stop()
    [q] = rows(listener.data_dir, "quarantine")
    assert q["reason"] == "unintelligible"


async def test_results_sent_by_a_charger_are_stored_and_never_answered(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "BAD-8") as charger:
        await charger.ws.send('[3, "csms-1", {"status": "Accepted"}]')
        await charger.ws.send('[4, "csms-2", "NotImplemented", "", {}]')
        answer = await charger.call("Heartbeat", {})  # the next answer is the heartbeat's
    assert answer[:2] == [3, "m1"]
    listener.stop()
    frames = rows(listener.data_dir, "frames", "direction = 'in'", order="seq")
    assert [f["message_type"] for f in frames] == [3, 4, 2]


async def test_every_frame_is_stored_byte_identical(listener: RunningListener) -> None:
    odd = '[2,"id-ü",  "Heartbeat" , {  } ]'
    async with raw_charger(listener.url, "BAD-9") as charger:
        await charger.send_text(odd)
    listener.stop()
    [frame] = rows(listener.data_dir, "frames", "direction = 'in'")
    assert frame["text"] == odd and frame["length"] == len(odd.encode())
