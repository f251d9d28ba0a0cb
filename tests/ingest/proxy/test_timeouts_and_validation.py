"""A CSMS too slow to answer (refuse and store-and-forward), and schema validation deferred to the roll.

The CSMS is the real one of tests/support/csms.py; `--slow-action MeterValues` makes it sit on that
action's CALLs, so the proxy's `--upstream-answer-timeout` is what answers (or closes) first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from tests.support.chargers import iso, raw_charger, rows
from tests.support.csms import RunningCsms
from tests.support.listener import free_port, make_listener

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
ONE_SECOND = ("--upstream-answer-timeout", "1")
SF = ("--upstream-offline", "store-and-forward", "--upstream-retry-seconds", "1")
LATE_ANSWER_S = 3.0  # how long the slow CSMS sits on a MeterValues: well past the 1 s timeout


@contextlib.contextmanager
def slow_csms(tmp_path: Path, seconds: float, times: int | None = None) -> Iterator[RunningCsms]:
    """A real CSMS that handles MeterValues only after `seconds` (the first `times` of them)."""
    running = RunningCsms(
        free_port(), tmp_path / "slow-csms.jsonl", slow_action="MeterValues", slow_seconds=seconds,
        slow_times=times,
    ).start()  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def meter(minute: int) -> dict[str, Any]:
    sampled = [{"value": str(1000 + 10 * minute), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]
    return {
        "connectorId": 1,
        "meterValue": [{"timestamp": iso(T0.replace(minute=minute)), "sampledValue": sampled}],
    }


def journal(csms: RunningCsms, cp: str, direction: str = "in") -> list[dict[str, Any]]:
    """The CSMS's journal entries of one charger (frame parsed into "frame"), with their times."""
    entries = [json.loads(line) for line in csms.log.read_text().splitlines()] if csms.log.exists() else []
    return [{**e, "frame": json.loads(e["text"])} for e in entries if e["cp"] == cp and e["dir"] == direction]


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# --- the answer timeout ---------------------------------------------------------------------------


async def test_a_meter_values_the_csms_does_not_answer_in_time_closes_the_charger_with_1013_and_is_kept(
    tmp_path: Path,
) -> None:
    with slow_csms(tmp_path, LATE_ANSWER_S, times=1) as csms:
        proxy = make_listener(tmp_path / "data", "--upstream", csms.url, *ONE_SECOND).start()
        try:
            async with raw_charger(proxy.url, "TO-R") as charger:
                assert (await charger.call("Heartbeat", {}))[0] == 3
                sent = time.monotonic()
                await charger.ws.send(orjson.dumps([2, "late-r", "MeterValues", meter(1)]).decode())
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(charger.ws.recv(), 10)
                waited = time.monotonic() - sent
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert 0.9 <= waited < 2.5, f"closed {waited:.2f} s after the CALL, not by the 1 s timeout"
            assert [e["frame"][1] for e in journal(csms, "TO-R") if e["frame"][0] == 2] == ["m1", "late-r"]

            # The charger kept the unanswered CALL and resends it: the CSMS (quick again) answers it.
            async with raw_charger(proxy.url, "TO-R") as charger:
                assert await charger.call("MeterValues", meter(1), message_id="late-r") == [3, "late-r", {}]
        finally:
            assert proxy.stop() == 0

    assert "did not answer in time" in proxy.log()
    late = rows(proxy.data_dir, "frames", "message_id = 'late-r'")
    assert [(f["direction"], f["message_type"]) for f in late] == [("in", 2), ("in", 2), ("out", 3)], (
        "the CALL that was never answered is in the raw zone, and so is its resent copy"
    )
    assert [f["validation_error"] for f in late] == [None, None, None]


async def test_a_meter_values_the_csms_does_not_answer_in_time_is_answered_locally_then_forwarded(
    tmp_path: Path,
) -> None:
    with slow_csms(tmp_path, LATE_ANSWER_S, times=1) as csms:
        proxy = make_listener(tmp_path / "data", "--upstream", csms.url, *ONE_SECOND, *SF).start()
        try:
            async with raw_charger(proxy.url, "TO-S") as charger:
                assert (await charger.call("Heartbeat", {}))[0] == 3
                sent = time.monotonic()
                answer = await charger.call("MeterValues", meter(2), message_id="late-s")
                waited = time.monotonic() - sent
                assert answer == [3, "late-s", {}], "the listener's own MeterValues.conf"
                assert 0.9 <= waited < 2.5, f"answered {waited:.2f} s after the CALL, not at the 1 s timeout"

                def copies() -> list[dict[str, Any]]:
                    return [
                        e for e in journal(csms, "TO-S") if e["frame"][:3] == [2, "late-s", "MeterValues"]
                    ]

                await wait_for(lambda: len(copies()) == 2, 15, "the queued MeterValues to reach the CSMS")
                first, forwarded = copies()
                assert forwarded["text"] == first["text"], "forwarded as the original text"
                assert forwarded["at"] - first["at"] >= 0.9, "the second copy came from the queue, later"
                await wait_for(lambda: "queue drained" in proxy.log(), 15, "the queue to drain")
                # Live again: the CSMS decides (it refuses BLOCKED; the local accept-all would not).
                blocked = await charger.call("Authorize", {"idTag": "BLOCKED"})
                assert blocked[2] == {"idTagInfo": {"status": "Invalid"}}
        finally:
            assert proxy.stop() == 0

    assert "did not answer in time" in proxy.log()
    late = rows(proxy.data_dir, "frames", "message_id = 'late-s'", order="direction")
    assert sorted((f["direction"], f["message_type"]) for f in late) == [
        ("down", 3), ("in", 2), ("out", 3), ("up", 2)
    ]  # fmt: skip
    assert next(f for f in late if f["direction"] == "in")["validation_error"] is None
    meters = rows(proxy.data_dir, "meter_values")
    assert [(m["message_id"], m["value"]) for m in meters] == [("late-s", 1020.0)], "derived once"


async def test_calls_answered_in_time_do_not_trip_the_answer_timeout_after_it_has_passed(
    tmp_path: Path, csms: RunningCsms
) -> None:
    proxy = make_listener(tmp_path / "data", "--upstream", csms.url, *ONE_SECOND).start()
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    try:
        async with raw_charger(proxy.url, "TO-OK") as charger:
            assert (await charger.call("Heartbeat", {}))[0] == 3
            assert await charger.call("StatusNotification", status) == [3, "m2", {}]
            await asyncio.sleep(1.5)  # past both deadlines: the timer fires with nothing pending
            assert (await charger.call("Heartbeat", {}))[0] == 3, "the same connection still relays"
            await asyncio.sleep(1.5)
            assert (await charger.call("Heartbeat", {}))[0] == 3
    finally:
        assert proxy.stop() == 0
    assert [f[1] for f in csms.frames("TO-OK") if f[0] == 2] == ["m1", "m2", "m3", "m4"]
    assert "did not answer in time" not in proxy.log()


async def test_a_slow_answer_within_its_own_deadline_survives_the_timer_firing_for_an_earlier_call(
    tmp_path: Path,
) -> None:
    # Timeout 2 s, MeterValues answered after 1 s. The Heartbeat arms the one timer for t+2; the
    # MeterValues sent at t+1.2 is still pending when it fires, but not late (its deadline is t+3.2),
    # so the timer must be re-armed, not trip: the answer comes at about t+2.2.
    with slow_csms(tmp_path, 1.0) as csms:
        proxy = make_listener(tmp_path / "data", "--upstream", csms.url, "--upstream-answer-timeout", "2")
        proxy.start()
        try:
            async with raw_charger(proxy.url, "TO-SLOW") as charger:
                started = time.monotonic()
                assert (await charger.call("Heartbeat", {}))[0] == 3
                await asyncio.sleep(1.2)
                sent = time.monotonic()
                assert await charger.call("MeterValues", meter(3)) == [3, "m2", {}]
                assert time.monotonic() - sent >= 0.9, "the CSMS really sat on it"
                assert time.monotonic() - started > 2.0, "answered after the Heartbeat's deadline had passed"
                await asyncio.sleep(max(0.0, started + 3.6 - time.monotonic()))  # past the re-armed timer
                assert (await charger.call("Heartbeat", {}))[0] == 3, "the same connection still relays"
        finally:
            assert proxy.stop() == 0
    assert "did not answer in time" not in proxy.log()


# --- deferred schema validation -------------------------------------------------------------------


async def test_a_schema_invalid_16_call_reaches_the_csms_and_its_validation_error_is_recorded_at_the_roll(
    tmp_path: Path, csms: RunningCsms
) -> None:
    proxy = make_listener(tmp_path / "data", "--upstream", csms.url).start()
    bad_status = {"connectorId": 1, "errorCode": "NoError", "status": "Exploded"}
    bad_meter = {"meterValue": meter(4)["meterValue"]}  # no connectorId
    good_status = {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": iso(T0)}
    try:
        async with raw_charger(proxy.url, "VAL-16") as charger:
            answers = {
                "bad-status": await charger.call("StatusNotification", bad_status, message_id="bad-status"),
                "bad-meter": await charger.call("MeterValues", bad_meter, message_id="bad-meter"),
                "good-status": await charger.call(
                    "StatusNotification", good_status, message_id="good-status"
                ),
            }
    finally:
        assert proxy.stop() == 0

    # Relayed, not refused locally: the CSMS saw each CALL as sent, and its answers are what the charger got.
    got = [f for f in csms.frames("VAL-16") if f[0] == 2]
    assert [(f[1], f[3]) for f in got] == [
        ("bad-status", bad_status), ("bad-meter", bad_meter), ("good-status", good_status)
    ]  # fmt: skip
    assert list(answers.values()) == csms.frames("VAL-16", "out")
    assert [a[0] for a in answers.values()] == [4, 4, 3], "the CSMS rejected the invalid ones itself"

    calls = {f["message_id"]: f for f in rows(proxy.data_dir, "frames", "direction = 'in'")}
    assert set(calls) == set(answers)
    assert calls["bad-status"]["validation_error"].startswith("data.status must be one of ['Available'")
    assert calls["bad-meter"]["validation_error"] == "data must contain ['connectorId'] properties"
    assert calls["good-status"]["validation_error"] is None
    statuses = {s["message_id"]: s for s in rows(proxy.data_dir, "status_notifications")}
    assert "schema_invalid" in statuses["bad-status"]["quality"]
    assert "schema_invalid" not in statuses["good-status"]["quality"]
    meters = rows(proxy.data_dir, "meter_values")
    assert meters and all("schema_invalid" in m["quality"] for m in meters)
