"""Whole sessions through the proxy: the CSMS decides, the raw tables record what it decided."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from tests.support.chargers import iso, rows
from tests.support.csms import RunningCsms
from tests.support.listener import make_listener

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


class Charger16(ChargePoint16):
    @on("RemoteStartTransaction")
    async def remote_start(self, id_tag: str, **_: Any) -> Any:
        self.remote_tags = [*getattr(self, "remote_tags", []), id_tag]
        return result16.RemoteStartTransaction(status="Accepted")


class Charger201(ChargePoint201):
    @on("RequestStartTransaction")
    async def request_start(self, id_token: dict[str, Any], **_: Any) -> Any:
        self.remote_tags = [*getattr(self, "remote_tags", []), id_token["id_token"]]
        return result201.RequestStartTransaction(status="Accepted")


@contextlib.asynccontextmanager
async def charger(url: str, cp_id: str, version: str = "1.6") -> AsyncIterator[Any]:
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=[subprotocol]) as ws:  # type: ignore[list-item]
        cp = (Charger16 if version == "1.6" else Charger201)(cp_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


def sampled(energy_wh: float) -> list[dict[str, str]]:
    return [{"value": f"{energy_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]


async def test_a_16_session_through_the_proxy_carries_the_csms_transaction_id_and_authorization(
    tmp_path: Path, csms: RunningCsms
) -> None:
    proxy = make_listener(tmp_path / "data", "--upstream", csms.url).start()
    try:
        async with charger(proxy.url, "PX-16") as cp:
            boot = await cp.call(call16.BootNotification(charge_point_model="M1", charge_point_vendor="V1"))
            assert boot.status == "Accepted"
            blocked = await cp.call(call16.Authorize(id_tag="BLOCKED"))
            assert blocked.id_tag_info["status"] == "Invalid", "the CSMS's answer, not the local accept-all"
            start = await cp.call(
                call16.StartTransaction(
                    connector_id=1, id_tag="CAFE0001", meter_start=1000, timestamp=iso(T0)
                )
            )
            assert start.transaction_id == 7000
            await cp.call(
                call16.MeterValues(
                    connector_id=1,
                    transaction_id=7000,
                    meter_value=[
                        {"timestamp": iso(T0 + timedelta(minutes=1)), "sampledValue": sampled(1120)}
                    ],
                )
            )
            await cp.call(
                call16.StopTransaction(
                    meter_stop=1400,
                    timestamp=iso(T0 + timedelta(minutes=4)),
                    transaction_id=7000,
                    id_tag="BLOCKED",
                )
            )
    finally:
        assert proxy.stop() == 0

    data = proxy.data_dir
    frames = rows(data, "frames", order="seq")
    assert [(f["direction"], f["action"]) for f in frames] == [
        (d, a)
        for a in ("BootNotification", "Authorize", "StartTransaction", "MeterValues", "StopTransaction")
        for d in ("in", "out")
    ]
    received = csms.frames("PX-16")
    sent = csms.frames("PX-16", "out")
    assert [f["text"] for f in frames if f["direction"] == "in"] == [
        _text(csms, "PX-16", "in", i) for i in range(5)
    ]
    assert [f["text"] for f in frames if f["direction"] == "out"] == [
        _text(csms, "PX-16", "out", i) for i in range(5)
    ]
    assert len(received) == len(sent) == 5
    events = rows(data, "transaction_events", order="received_at")
    assert [(e["event_type"], e["transaction_id"], e["id_tag_status"]) for e in events] == [
        ("Started", "7000", "Accepted"),
        ("Ended", "7000", "Invalid"),
    ]
    meters = rows(data, "meter_values")
    assert [(m["transaction_id"], m["value"]) for m in meters] == [("7000", 1120.0)]


def _text(csms: RunningCsms, cp: str, direction: str, index: int) -> str:
    import json

    lines = [json.loads(line) for line in csms.log.read_text().splitlines()]
    return [e["text"] for e in lines if e["cp"] == cp and e["dir"] == direction][index]


async def test_a_201_session_and_a_csms_remote_start_pass_through_the_proxy_both_ways(
    tmp_path: Path, csms: RunningCsms
) -> None:
    proxy = make_listener(tmp_path / "data", "--upstream", csms.url).start()
    try:
        async with charger(proxy.url, "PX-201", "2.0.1") as cp:
            await cp.call(
                call201.BootNotification(
                    charging_station={"model": "M2", "vendor_name": "V2"}, reason="PowerUp"
                )
            )
            answer = await asyncio.to_thread(csms.remote_start, "PX-201", "REMOTE77")
            assert answer == {"status": "Accepted"}
            assert cp.remote_tags == ["REMOTE77"]
            started = await cp.call(
                call201.TransactionEvent(
                    event_type="Started", timestamp=iso(T0), trigger_reason="RemoteStart", seq_no=0,
                    transaction_info={"transaction_id": "TX-201-A", "remote_start_id": 42},
                    id_token={"id_token": "BLOCKED", "type": "ISO14443"}, evse={"id": 1, "connector_id": 1},
                )
            )  # fmt: skip
            assert started.id_token_info["status"] == "Invalid"
            ended_at = iso(T0 + timedelta(minutes=5))
            register = [{"value": 2500, "measurand": "Energy.Active.Import.Register"}]
            await cp.call(
                call201.TransactionEvent(
                    event_type="Ended", timestamp=ended_at, trigger_reason="StopAuthorized", seq_no=1,
                    transaction_info={"transaction_id": "TX-201-A", "stopped_reason": "Local"},
                    meter_value=[{"timestamp": ended_at, "sampled_value": register}],
                )
            )  # fmt: skip
    finally:
        assert proxy.stop() == 0

    data = proxy.data_dir
    frames = rows(data, "frames", order="seq")
    assert [(f["direction"], f["message_type"], f["action"]) for f in frames] == [
        ("in", 2, "BootNotification"), ("out", 3, "BootNotification"),
        ("out", 2, "RequestStartTransaction"), ("in", 3, "RequestStartTransaction"),
        ("in", 2, "TransactionEvent"), ("out", 3, "TransactionEvent"),
        ("in", 2, "TransactionEvent"), ("out", 3, "TransactionEvent"),
    ]  # fmt: skip
    csms_got = csms.frames("PX-201")
    assert [f[0] for f in csms_got] == [2, 3, 2, 2], (
        "the charger's answer to the remote start reached the CSMS"
    )
    assert csms_got[1][2] == {"status": "Accepted"}
    events = rows(data, "transaction_events", order="seq_no")
    assert [
        (e["event_type"], e["transaction_id"], e["id_tag_status"], e["remote_start_id"]) for e in events
    ] == [
        ("Started", "TX-201-A", "Invalid", 42),
        ("Ended", "TX-201-A", None, None),
    ]
    assert [m["value"] for m in rows(data, "meter_values")] == [2500.0]
