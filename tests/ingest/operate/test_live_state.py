"""The listener's live charger state: one snapshot per process in DATA_DIR/live, within a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import redis.asyncio as aioredis
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from ingest.live_state import LIVE_CHANNEL
from ocpp_opendata.live import read_snapshot_dir
from tests.ingest.operate.support import charger_in, eventually, instance_of, snapshot
from tests.support.chargers import iso, ocpp_charger
from tests.support.listener import RunningListener, make_listener


def connector(charger: dict | None, evse: int, conn: int) -> dict | None:
    for c in (charger or {}).get("connectors", []):
        if (c["evse_id"], c["connector_id"]) == (evse, conn):
            return c
    return None


async def test_a_16_chargers_boot_and_status_appear_in_the_snapshot_within_a_second(
    listener: RunningListener,
) -> None:
    instance = instance_of(listener)
    async with ocpp_charger(listener.url, "LIVE-16") as cp:
        await cp.call(
            call16.BootNotification(
                charge_point_model="M16", charge_point_vendor="V16", firmware_version="1.2.3"
            )
        )
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        sent = time.monotonic()
        charger = await eventually(
            lambda: (
                (c := charger_in(snapshot(listener, instance), "LIVE-16"))
                and (connector(c, 1, 1) or {}).get("status") == "Charging"
                and c
            )
        )
        assert time.monotonic() - sent < 1.5
        assert charger["connected"] is True
        assert (charger["vendor"], charger["model"], charger["firmware_version"]) == ("V16", "M16", "1.2.3")
        assert charger["ocpp_version"] == "1.6"
        assert charger["connected_since"] and charger["last_seen"]
        assert connector(charger, 1, 1)["error_code"] == "NoError"
        await cp.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted"))
        await eventually(
            lambda: (
                (connector(charger_in(snapshot(listener, instance), "LIVE-16"), 1, 1) or {}).get("error_code")
                == "GroundFailure"
            )
        )
    # Closed: the charger stays known, not connected.
    await eventually(lambda: charger_in(snapshot(listener, instance), "LIVE-16")["connected"] is False)


async def test_a_201_chargers_status_and_transaction_state_appear_in_the_snapshot(
    listener: RunningListener,
) -> None:
    instance = instance_of(listener)
    async with ocpp_charger(listener.url, "LIVE-201", "2.0.1") as cp:
        await cp.call(call201.BootNotification(
            charging_station={"model": "M2", "vendor_name": "V2", "firmware_version": "9"},
            reason="PowerUp"))  # fmt: skip
        await cp.call(
            call201.StatusNotification(
                timestamp=iso(), connector_status="Occupied", evse_id=2, connector_id=1
            )
        )
        await eventually(
            lambda: (
                (connector(charger_in(snapshot(listener, instance), "LIVE-201"), 2, 1) or {}).get("status")
                == "Occupied"
            )
        )
        # Only the first TransactionEvent names the EVSE; the later ones are placed by transaction id.
        await cp.call(call201.TransactionEvent(
            event_type="Started", timestamp=iso(), trigger_reason="CablePluggedIn", seq_no=0,
            transaction_info={"transactionId": "T1", "chargingState": "EVConnected"},
            evse={"id": 2, "connectorId": 1}))  # fmt: skip
        await cp.call(call201.TransactionEvent(
            event_type="Updated", timestamp=iso(), trigger_reason="ChargingStateChanged", seq_no=1,
            transaction_info={"transactionId": "T1", "chargingState": "Charging"}))  # fmt: skip
        charger = await eventually(
            lambda: (
                (c := charger_in(snapshot(listener, instance), "LIVE-201"))
                and (connector(c, 2, 1) or {}).get("status") == "Charging"
                and c
            )
        )
        assert (charger["vendor"], charger["model"], charger["ocpp_version"]) == ("V2", "M2", "2.0.1")
        assert len(charger["connectors"]) == 1


async def test_after_a_kill_9_the_restarted_listener_keeps_the_chargers_but_not_connected(
    tmp_path: Path,
) -> None:
    first = make_listener(tmp_path / "data").start()
    old = instance_of(first)
    async with ocpp_charger(first.url, "LIVE-RESTART") as cp:
        await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        await eventually(lambda: charger_in(snapshot(first, old), "LIVE-RESTART"))
        first.kill()
    second = make_listener(tmp_path / "data", port=first.port).start()
    try:
        new = instance_of(second)
        assert new != old
        charger = await eventually(lambda: charger_in(snapshot(second, new), "LIVE-RESTART"))
        assert charger["connected"] is False
        assert connector(charger, 1, 1)["status"] == "Charging"  # as the charger last said
        # The dead process's snapshot is gone: no reader can take it for a live one.
        assert [s.instance for s in read_snapshot_dir(tmp_path / "data" / "live")] == [new]
        async with ocpp_charger(second.url, "LIVE-RESTART"):
            await eventually(lambda: charger_in(snapshot(second, new), "LIVE-RESTART")["connected"])
    finally:
        second.stop()


async def test_status_changes_are_published_on_redis(tmp_path: Path) -> None:
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    pubsub = client.pubsub()
    await pubsub.subscribe(LIVE_CHANNEL)
    running = make_listener(tmp_path / "data", "--operator-broker", "redis://127.0.0.1:6379/0").start()
    try:
        async with ocpp_charger(running.url, "LIVE-REDIS") as cp:
            await cp.call(call16.StatusNotification(connector_id=2, error_code="NoError", status="Reserved"))

            async def status_event() -> dict:
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        event = orjson.loads(message["data"])
                        if event["charge_point_id"] == "LIVE-REDIS" and event["status"] is not None:
                            return event

            event = await asyncio.wait_for(status_event(), 5)
        assert event["status"] == "Reserved"
        assert (event["evse_id"], event["connector_id"], event["connected"]) == (2, 2, True)
        assert event["error_code"] == "NoError" and event["updated_at"]
    finally:
        running.stop()
        await pubsub.aclose()
        await client.aclose()
