"""The operator API across listener processes (Redis), in proxy mode, and over TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.ingest.operate.operator import BOOT16, Charger16, connected, operated_listener
from tests.ingest.operate.test_operator_api import eventually_async
from tests.support.chargers import rows
from tests.support.csms import RunningCsms
from tests.support.listener import free_port

REDIS = "redis://127.0.0.1:6379/0"


async def test_two_listener_processes_with_redis_are_one_system_to_the_operator(tmp_path: Path) -> None:
    data, tokens, port = tmp_path / "data", tmp_path / "secrets" / "operators.tokens", free_port()
    extra = ("--reuse-port", "--operator-broker", REDIS)
    with ExitStack() as stack:
        first = stack.enter_context(
            operated_listener(
                tmp_path / "a", *extra, data_dir=data, port=port, tokens=tokens, log_name="a.log"
            )
        )
        second = stack.enter_context(
            operated_listener(
                tmp_path / "b", *extra, data_dir=data, port=port, tokens=tokens, log_name="b.log"
            )
        )
        chargers = []
        async with (
            connected(first.listener.url, "MP-1", Charger16) as one,
            connected(first.listener.url, "MP-2", Charger16) as two,
        ):
            for cp in (one, two):
                await cp.call(BOOT16)
                chargers.append(cp)

            async def both_listed(api) -> bool:  # type: ignore[no-untyped-def]
                found = (await api.get("/v1/chargers?connected=true")).json()["chargers"]
                return {c["charge_point_id"] for c in found} == {"MP-1", "MP-2"}

            # Either process lists both chargers, whichever holds their connections.
            for api in (first, second):
                await eventually_async(lambda api=api: both_listed(api))
            # Either process delivers a call to either charger: locally or through Redis.
            for api in (first, second):
                for cp_id in ("MP-1", "MP-2"):
                    answer = await api.call(cp_id, "Reset", {"type": "Soft"})
                    assert answer.status_code == 200, answer.text
                    assert answer.json() == {"result": {"status": "Accepted"}}
            assert one.asked == ["Reset", "Reset"] and two.asked == ["Reset", "Reset"]
            missing = await second.call("NOBODY", "Reset", {"type": "Soft"})
            assert missing.status_code == 404
    calls = rows(data, "operator_calls", "outcome = 'result'")
    assert len(calls) == 4 and {c["operator"] for c in calls} == {"alice"}
    # Each call is recorded by the process that held the charger, next to the CALL it sent.
    out = {r["message_id"]: r for r in rows(data, "frames", "direction = 'out'")}
    holders = {c["charge_point_id"]: c["listener_id"] for c in calls}
    assert all(out[c["message_id"]]["connection_id"].startswith(holders[c["charge_point_id"]]) for c in calls)


async def test_in_proxy_mode_the_upstream_csms_keeps_control(tmp_path: Path) -> None:
    csms = RunningCsms(free_port(), tmp_path / "csms.jsonl").start()
    try:
        with operated_listener(tmp_path, "--upstream", csms.url) as op:
            async with connected(op.listener.url, "PX-1", Charger16) as cp:
                await cp.call(BOOT16)
                refused = await op.call("PX-1", "Reset", {"type": "Soft"})
                assert refused.status_code == 409 and "CSMS" in refused.json()["error"]
                listed = await eventually_async(lambda: _listed(op, "PX-1"))
                assert listed["connected"] is True
                assert cp.asked == []
    finally:
        csms.stop()


async def _listed(op, cp_id: str) -> dict | None:  # type: ignore[no-untyped-def]
    answer = await op.get(f"/v1/chargers/{cp_id}")
    return answer.json() if answer.status_code == 200 else None


async def test_the_operator_api_serves_tls_when_given_a_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "op.pem", tmp_path / "op.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with operated_listener(tmp_path, "--operator-tls-cert", str(cert), "--operator-tls-key", str(key)) as op:
        https = op.api.replace("http://", "https://")
        context = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=context) as client:
            answer = await client.get(https + "/v1/chargers", headers=op.headers(op.read))
        assert answer.status_code == 200 and answer.json() == {"chargers": []}
        plain = await asyncio.to_thread(_plain_http_fails, op.api)
        assert plain


def _plain_http_fails(url: str) -> bool:
    try:
        httpx.get(url + "/v1/chargers", timeout=3)
    except httpx.HTTPError:
        return True
    return False
