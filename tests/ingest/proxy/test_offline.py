"""The CSMS away for 30 s (both offline modes), and the proxy killed with kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import websockets

from ingest.proxy.queue import LOCAL_BASE
from tests.support.chargers import iso, raw_charger, rows
from tests.support.csms import RunningCsms
from tests.support.listener import make_listener

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
OUTAGE_S = 30.0
SF = ("--upstream-offline", "store-and-forward", "--upstream-retry-seconds", "1")


def meter(tx: int, minute: int) -> dict[str, object]:
    sampled = [
        {"value": str(1000 + 100 * minute), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    ]
    at = iso(T0 + timedelta(minutes=minute))
    return {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": at, "sampledValue": sampled}]}


async def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def refused_status(url: str) -> int | None:
    try:
        async with websockets.connect(url, subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            return None
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_a_30_s_csms_outage_turns_chargers_away_or_is_answered_locally_and_forwarded_in_order(
    tmp_path: Path, csms: RunningCsms
) -> None:
    refusing = make_listener(tmp_path / "refuse", "--upstream", csms.url, log_name="refuse.log").start()
    storing = make_listener(tmp_path / "sf", "--upstream", csms.url, *SF, log_name="sf.log").start()
    try:
        async with raw_charger(refusing.url, "R-1") as r1, raw_charger(storing.url, "S-1") as s1:
            assert (await r1.call("Heartbeat", {}))[0] == 3
            assert (await s1.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}))[
                0
            ] == 3

            csms.stop()
            outage_started = time.monotonic()
            # Refuse: the open connection is closed ("try again later") and new ones are refused, so the
            # charger keeps its own queue.
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(r1.ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert await refused_status(f"{refusing.url}/R-1") == 503

            # Store-and-forward: answered locally, with a local transaction id.
            begin = {"connectorId": 1, "idTag": "CAFE0001", "meterStart": 1000, "timestamp": iso(T0)}
            start = await s1.call("StartTransaction", begin)
            local_tx = start[2]["transactionId"]
            assert start[0] == 3 and local_tx >= LOCAL_BASE
            minute = 0
            while time.monotonic() - outage_started < OUTAGE_S / 2:
                minute += 1
                assert (await s1.call("MeterValues", meter(local_tx, minute)))[0] == 3
                await asyncio.sleep(1.5)

        # kill -9 in the middle of the outage: the queue and every acknowledged frame survive.
        storing.kill()
        storing = make_listener(tmp_path / "sf", "--upstream", csms.url, *SF, log_name="sf2.log").start()
        async with raw_charger(storing.url, "S-1") as s1:
            while time.monotonic() - outage_started < OUTAGE_S:
                minute += 1
                assert (await s1.call("MeterValues", meter(local_tx, minute)))[0] == 3
                await asyncio.sleep(1.5)
            end = {"transactionId": local_tx, "meterStop": 1000 + 100 * minute,
                   "timestamp": iso(T0 + timedelta(minutes=minute + 1)), "idTag": "CAFE0001"}  # fmt: skip
            stop = await s1.call("StopTransaction", end)
            assert stop[0] == 3

            csms.start()
            await wait_for(
                lambda: any(f[2] == "StopTransaction" for f in csms.frames("S-1")), 30, "the queue"
            )
            assert await refused_status(f"{refusing.url}/R-1") is None, "back: chargers are relayed again"
            # Live again: the next CALL goes to the CSMS, after the queue.
            assert (await s1.call("Heartbeat", {}))[0] == 3
            await wait_for(lambda: csms.frames("S-1")[-1][2] == "Heartbeat", 10, "the live heartbeat")
    finally:
        refusing.stop()
        storing.stop()

    forwarded = [f for f in csms.frames("S-1") if f[0] == 2]
    assert [f[2] for f in forwarded] == [
        "BootNotification", "StartTransaction", *["MeterValues"] * minute, "StopTransaction", "Heartbeat"
    ]  # fmt: skip
    csms_tx = next(
        f[2]["transactionId"] for f in csms.frames("S-1", "out") if f[0] == 3 and "transactionId" in f[2]
    )
    assert 7000 <= csms_tx < LOCAL_BASE
    # In order, with the charger's original timestamps, and the CSMS's id instead of the local one.
    assert [f[3]["meterValue"][0]["timestamp"] for f in forwarded[2:-2]] == [
        iso(T0 + timedelta(minutes=m)) for m in range(1, minute + 1)
    ]
    assert {f[3]["transactionId"] for f in forwarded[2:-1]} == {csms_tx}

    data = tmp_path / "sf"
    events = rows(data, "transaction_events", order="received_at")
    assert [(e["event_type"], e["transaction_id"]) for e in events] == [("Started", str(csms_tx)),
                                                                        ("Ended", str(csms_tx))]  # fmt: skip
    meters = rows(data, "meter_values", order="timestamp")
    assert [m["value"] for m in meters] == [1000.0 + 100 * m for m in range(1, minute + 1)]
    assert {m["transaction_id"] for m in meters} == {str(csms_tx)}
    frames = rows(data, "frames")
    charger_in = [f for f in frames if f["direction"] == "in" and f["message_type"] == 2]
    assert len(charger_in) == minute + 4, "every acknowledged CALL is in the raw zone, once"
    assert sorted(f["direction"] for f in frames if f["direction"] in ("up", "down")) == (
        ["down"] * (minute + 2) + ["up"] * (minute + 2)
    )


async def send_meter_values(url: str, cp: str, acked: list[str]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed, OSError):
        async with raw_charger(url, cp) as charger:
            for n in range(10_000):
                answer = await charger.call("MeterValues", meter(7000, n % 60), message_id=f"{cp}-{n}")
                assert answer[0] == 3
                acked.append(answer[1])


async def test_a_proxy_killed_with_kill_9_and_restarted_loses_nothing_it_acknowledged(
    tmp_path: Path, csms: RunningCsms
) -> None:
    data = tmp_path / "data"
    first = make_listener(data, "--upstream", csms.url, "--rate-limit", "0").start()
    acked: list[str] = []
    senders = [asyncio.create_task(send_meter_values(first.url, f"K-{i}", acked)) for i in range(4)]
    await wait_for(lambda: len(acked) >= 300, 30, "some load")
    first.kill()
    await asyncio.gather(*senders)
    second = make_listener(data, "--upstream", csms.url, log_name="second.log").start()
    async with raw_charger(second.url, "K-0") as charger:
        assert (await charger.call("Heartbeat", {}))[0] == 3, "the restarted proxy relays again"
    assert second.stop() == 0

    frames = rows(data, "frames")
    stored_in = [f["message_id"] for f in frames if f["direction"] == "in" and f["action"] == "MeterValues"]
    stored_out = {f["message_id"] for f in frames if f["direction"] == "out" and f["action"] == "MeterValues"}
    assert set(acked) <= set(stored_in)
    # A MeterValues answer is relayed before its own fsync (docs/proxy.md, "Durability"); it is durable
    # with the charger's next CALL, so only each charger's last answer can be missing after a kill -9.
    assert len(set(acked) - stored_out) <= len(senders)
    assert len(stored_in) == len(set(stored_in)), "no frame written twice"
    csms_got = {f[1] for f in csms.frames() if f[0] == 2 and f[2] == "MeterValues"}
    assert set(acked) <= csms_got
    assert set(stored_in) >= csms_got, "the CSMS got nothing that was not durable first"
