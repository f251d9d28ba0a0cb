"""The operator API of a real listener: tokens, live charger state, and calls answered by real chargers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from ocpp.v16 import call as call16

from tests.ingest.operate.operator import (
    BOOT16,
    BOOT201,
    Charger16,
    Charger201,
    Operated,
    connected,
    operated_listener,
)
from tests.ingest.operate.support import eventually
from tests.support.chargers import raw_charger, rows


async def test_without_a_token_file_the_listener_serves_no_operator_api(listener, tmp_path: Path) -> None:
    # The default listener fixture: nothing listens on the default operator port.
    try:
        httpx.get("http://127.0.0.1:9001/v1/chargers", timeout=1)
        reachable = True
    except httpx.HTTPError:
        reachable = False
    assert not reachable


async def test_missing_and_wrong_tokens_get_the_same_401_and_a_read_token_cannot_call(tmp_path: Path) -> None:
    with operated_listener(tmp_path) as op:
        missing = httpx.get(op.api + "/v1/chargers", timeout=10)
        wrong = httpx.get(
            op.api + "/v1/chargers", headers={"Authorization": "Bearer oo_abcdefgh_" + "x" * 43}
        )
        garbage = httpx.get(op.api + "/v1/chargers", headers={"Authorization": "Basic dXNlcjpwdw=="})
        assert missing.status_code == wrong.status_code == garbage.status_code == 401
        assert missing.content == wrong.content == garbage.content
        assert (await op.get("/v1/chargers", op.read)).status_code == 200
        refused = await op.call("CP1", "Reset", {"type": "Soft"}, op.read)
        assert refused.status_code == 403 and "read token" in refused.json()["error"]
        # Revoking is deleting the line: the running listener notices without a restart.
        lines = op.tokens.read_text().splitlines()
        op.tokens.write_text("\n".join(line for line in lines if " bob " not in line) + "\n")
        assert (await op.get("/v1/chargers", op.read)).status_code == 401
        assert (await op.get("/v1/chargers")).status_code == 200
        log = op.listener.log()
        assert "operator request denied" in log and "read_token_on_call" in log
        assert op.read not in log and op.control not in log and op.read.split("_")[2] not in log


async def test_repeated_failed_authentications_are_rate_limited(tmp_path: Path) -> None:
    with operated_listener(tmp_path) as op:
        statuses = [
            httpx.get(op.api + "/v1/chargers", headers={"Authorization": f"Bearer wrong{i}"}).status_code
            for i in range(12)
        ]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
        # Even the right token waits out the window from that address.
        assert (await op.get("/v1/chargers")).status_code == 429


async def test_chargers_show_their_live_state_with_filters(tmp_path: Path) -> None:
    with operated_listener(tmp_path) as op:
        async with connected(op.listener.url, "OP-16", Charger16) as cp:
            await cp.call(BOOT16)
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted")
            )

            async def faulted() -> list:
                answer = await op.get("/v1/chargers?status=Faulted", op.read)
                return answer.json()["chargers"]

            found = await eventually_async(faulted)
            (charger,) = found
            assert charger["charge_point_id"] == "OP-16" and charger["connected"] is True
            assert (
                charger["ocpp_version"] == "1.6"
                and charger["vendor"] == "Acme"
                and charger["model"] == "OP16"
            )
            (conn,) = charger["connectors"]
            assert conn["status"] == "Faulted" and conn["ocpi_status"] == "OUTOFORDER"
            assert conn["error_code"] == "GroundFailure" and conn["updated_at"]
            one = await op.get("/v1/chargers/OP-16", op.read)
            assert one.status_code == 200 and one.json()["charge_point_id"] == "OP-16"
            assert (await op.get("/v1/chargers?connected=false")).json()["chargers"] == []
        assert (await op.get("/v1/chargers/NOPE")).status_code == 404
        assert (await op.get("/v1/chargers?connected=maybe")).status_code == 400


async def eventually_async(probe, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s; last {last!r}")


async def test_a_16_charger_answers_operator_calls_and_everything_is_in_the_raw_zone(tmp_path: Path) -> None:
    with operated_listener(tmp_path) as op:
        async with connected(op.listener.url, "OP-16", Charger16) as cp:
            await cp.call(BOOT16)
            reset = await op.call("OP-16", "Reset", {"type": "Soft"})
            assert reset.status_code == 200 and reset.json() == {"result": {"status": "Accepted"}}
            start = await op.call(
                "OP-16", "RemoteStartTransaction", {"idTag": "OPERATOR-TAG", "connectorId": 1}
            )
            assert start.json()["result"]["status"] == "Accepted"
            config = await op.call("OP-16", "GetConfiguration", {"key": ["HeartbeatInterval"]})
            assert config.json()["result"]["configurationKey"][0]["value"] == "300"
            trigger = await op.call("OP-16", "TriggerMessage", {"requestedMessage": "StatusNotification"})
            assert trigger.json()["result"]["status"] == "Accepted"
            # The operator takes a connector out of service; the charger then reports it Unavailable.
            avail = await op.call("OP-16", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
            assert avail.json()["result"]["status"] == "Accepted"
            await cp.call(
                call16.StatusNotification(connector_id=1, error_code="NoError", status="Unavailable")
            )
            charger = await eventually_async(lambda: _status_is(op, "OP-16", "Unavailable"))
            assert charger["connectors"][0]["ocpi_status"] == "INOPERATIVE"
            assert cp.asked == ["Reset", "RemoteStartTransaction", "GetConfiguration", "TriggerMessage",
                                "ChangeAvailability"]  # fmt: skip
    data = op.listener.data_dir
    out = rows(data, "frames", "direction = 'out' AND message_type = 2", "seq")
    assert [r["action"] for r in out] == [
        "Reset",
        "RemoteStartTransaction",
        "GetConfiguration",
        "TriggerMessage",
        "ChangeAvailability",
    ]
    ids = [r["message_id"] for r in out]
    answers = rows(data, "frames", "direction = 'in' AND message_type = 3 AND message_id LIKE 'op-%'", "seq")
    assert [r["message_id"] for r in answers] == ids
    assert [r["action"] for r in answers] == [r["action"] for r in out]  # each answer names what it answers
    calls = rows(data, "operator_calls")
    assert [(c["operator"], c["action"], c["outcome"], c["http_status"]) for c in calls] == [
        ("alice", a, "result", 200) for a in ("Reset", "RemoteStartTransaction", "GetConfiguration",
                                                "TriggerMessage", "ChangeAvailability")
    ]  # fmt: skip
    assert [c["message_id"] for c in calls] == ids and all(c["latency_ms"] > 0 for c in calls)
    raw = (data / "raw").rglob("*.parquet")
    assert not any(op.control.encode() in p.read_bytes() for p in raw)


async def _status_is(op: Operated, cp_id: str, status: str) -> dict | None:
    charger = (await op.get(f"/v1/chargers/{cp_id}")).json()
    return charger if charger["connectors"] and charger["connectors"][0]["status"] == status else None


async def test_a_201_charger_answers_request_start_get_variables_and_reset(tmp_path: Path) -> None:
    with operated_listener(tmp_path) as op:
        async with connected(op.listener.url, "OP-201", Charger201, "2.0.1") as cp:
            await cp.call(BOOT201)
            start = await op.call(
                "OP-201",
                "RequestStartTransaction",
                {"idToken": {"idToken": "T1", "type": "ISO14443"}, "remoteStartId": 7},
            )
            assert start.json()["result"] == {"status": "Accepted", "transactionId": "tx-remote-1"}
            variables = await op.call(
                "OP-201",
                "GetVariables",
                {
                    "getVariableData": [
                        {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
                    ]
                },
            )
            assert variables.json()["result"]["getVariableResult"][0]["attributeValue"] == "42"
            assert (await op.call("OP-201", "Reset", {"type": "Immediate"})).json()["result"][
                "status"
            ] == "Accepted"
            # A 1.6 action on a 2.0.1 connection does not exist there.
            assert (await op.call("OP-201", "RemoteStartTransaction", {"idTag": "X"})).status_code == 404
            assert cp.asked == ["RequestStartTransaction", "GetVariables", "Reset"]


async def test_an_invalid_payload_never_reaches_the_charger_and_errors_are_mapped(tmp_path: Path) -> None:
    with operated_listener(tmp_path, "--operator-call-timeout", "1") as op:
        async with connected(op.listener.url, "OP-16", Charger16) as cp:
            await cp.call(BOOT16)
            bad = await op.call("OP-16", "Reset", {"type": "Sideways"})
            assert bad.status_code == 422 and "Reset" in bad.json()["error"] and "type" in bad.json()["error"]
            missing = await op.call("OP-16", "RemoteStartTransaction", {"connectorId": 1})
            assert missing.status_code == 422 and "idTag" in missing.json()["error"]
            assert (await op.call("OP-16", "Teleport", {})).status_code == 404
            assert (await op.call("OP-16", "BootNotification", {})).status_code == 404  # charger-initiated
            # Not implemented by this charger: the library answers a CallError → 502 with its three parts.
            error = await op.call("OP-16", "UnlockConnector", {"connectorId": 1})
            assert error.status_code == 502 and error.json()["error_code"] == "NotImplemented"
            assert set(error.json()) == {"error_code", "error_description", "error_details"}
            assert cp.asked == []
        assert (await op.call("GONE", "Reset", {"type": "Soft"})).status_code == 404
        big = await op.call("OP-16", "DataTransfer", {"vendorId": "x", "data": "y" * 70_000})
        assert big.status_code == 413
    out = rows(op.listener.data_dir, "frames", "direction = 'out' AND message_type = 2")
    assert [r["action"] for r in out] == ["UnlockConnector"]
    outcomes = [c["outcome"] for c in rows(op.listener.data_dir, "operator_calls")]
    assert outcomes == ["invalid_payload", "invalid_payload", "unknown_action", "unknown_action",
                        "call_error", "not_connected"]  # fmt: skip


async def test_a_charger_that_does_not_answer_times_out_and_one_that_leaves_fails_at_once(
    tmp_path: Path,
) -> None:
    with operated_listener(tmp_path, "--operator-call-timeout", "1") as op:
        async with raw_charger(op.listener.url, "SILENT") as silent:
            await silent.call("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
            late = await op.call("SILENT", "Reset", {"type": "Hard"})
            assert late.status_code == 504 and "1 s" in late.json()["error"]
            # The charger reads the CALL, then disconnects before it answers.
            pending = asyncio.create_task(op.call("SILENT", "ClearCache", {}))
            await silent.ws.recv()  # the timed-out Reset
            await silent.ws.recv()  # the ClearCache
            await silent.ws.close()
            gone = await pending
            assert gone.status_code == 504 and "closed" in gone.json()["error"]
    outcomes = [c["outcome"] for c in rows(op.listener.data_dir, "operator_calls")]
    assert outcomes == ["timeout", "charger_gone"]


async def test_a_kill_9_during_a_call_loses_no_stored_frame(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with operated_listener(tmp_path, data_dir=data) as op:
        async with raw_charger(op.listener.url, "KILLED") as charger:
            await charger.call("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
            pending = asyncio.create_task(op.call("KILLED", "Reset", {"type": "Soft"}))
            received = await asyncio.wait_for(charger.ws.recv(), 10)  # sent only once it was durable
            assert '"Reset"' in received
            op.listener.kill()
            answer = await asyncio.gather(pending, return_exceptions=True)
            assert isinstance(answer[0], httpx.HTTPError)
    # A restarted listener recovers the WAL: the operator's CALL is in the raw zone.
    with operated_listener(tmp_path / "again", data_dir=data):
        await eventually(lambda: rows(data, "frames", "direction = 'out' AND action = 'Reset'"), 20)
    assert rows(data, "frames", "action = 'BootNotification' AND direction = 'in'")


async def test_after_a_restart_chargers_are_listed_as_not_connected_until_they_reconnect(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with operated_listener(tmp_path / "first", data_dir=data) as op:
        async with connected(op.listener.url, "OP-R", Charger16) as cp:
            await cp.call(BOOT16)
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await eventually_async(lambda: _status_is(op, "OP-R", "Charging"))
        op.listener.stop()
    with operated_listener(tmp_path / "second", data_dir=data) as op:
        charger = (await op.get("/v1/chargers/OP-R")).json()
        assert charger["connected"] is False and charger["model"] == "OP16"
        assert charger["connectors"][0]["status"] == "Charging"  # as last reported
        assert charger["connectors"][0]["ocpi_status"] == "UNKNOWN"  # but not connected now
        async with connected(op.listener.url, "OP-R", Charger16) as cp:
            await cp.call(BOOT16)

            async def back() -> bool:
                return (await op.get("/v1/chargers/OP-R")).json()["connected"]

            await eventually_async(back)
