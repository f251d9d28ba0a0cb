"""Who gets in: ids in the URL, allowlists, Basic auth, TLS, subprotocol negotiation."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from ingest.auth import set_password
from tests.support.chargers import raw_charger, rows
from tests.support.listener import RunningListener, make_listener

PASSWORD = "0123456789abcdefXYZ"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def status_of_refusal(url: str, **kw: object) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, **kw):  # type: ignore[arg-type]
            pass
    return info.value.response.status_code


async def test_a_percent_encoded_id_is_decoded(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "CP%20%C3%A9%231") as charger:
        await charger.call("Heartbeat", {})
    listener.stop()
    assert {f["charge_point_id"] for f in rows(listener.data_dir, "frames")} == {"CP é#1"}


async def test_the_id_may_also_sit_directly_under_the_root(listener: RunningListener) -> None:
    base = listener.url.removesuffix("/ocpp")
    async with raw_charger(base, "ROOT-1") as charger:
        assert (await charger.call("Heartbeat", {}))[0] == 3


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/ocpp/" + "x" * 49, "longer than 48"),
        ("/ocpp/a%2Fb", "contains '/'"),
        ("/ocpp/a%0Ab", "control characters"),
        ("/ocpp/", "no charge point id"),
    ],
)
async def test_an_invalid_id_is_refused_and_the_refusal_recorded(
    listener: RunningListener, path: str, reason: str
) -> None:
    base = listener.url.removesuffix("/ocpp")
    status = await status_of_refusal(base + path, subprotocols=["ocpp1.6"])
    assert status in (400, 404)
    listener.stop()
    [refusal] = rows(listener.data_dir, "connections")
    assert refusal["event"] == "refused" and reason in refusal["reason"]


async def test_an_unknown_charger_is_refused_before_the_upgrade(tmp_path: Path) -> None:
    known = tmp_path / "known.txt"
    known.write_text("CP-KNOWN\n")
    running = make_listener(tmp_path / "data", "--charge-points", str(known)).start()
    try:
        assert await status_of_refusal(f"{running.url}/CP-STRANGER", subprotocols=["ocpp1.6"]) == 404
        async with raw_charger(running.url, "CP-KNOWN") as charger:
            assert (await charger.call("Heartbeat", {}))[0] == 3
    finally:
        running.stop()


async def test_basic_auth_lets_in_the_right_password_only(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    set_password(creds, "CP-AUTH", PASSWORD)
    assert PASSWORD not in creds.read_text()
    running = make_listener(tmp_path / "data", "--credentials", str(creds)).start()
    try:
        url = f"{running.url}/CP-AUTH"
        assert await status_of_refusal(url, subprotocols=["ocpp1.6"]) == 401
        assert (
            await status_of_refusal(
                url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-AUTH", "wrong-password-123")
            )
            == 401
        )
        assert (
            await status_of_refusal(
                url, subprotocols=["ocpp1.6"], additional_headers=basic("CP-OTHER", PASSWORD)
            )
            == 401
        )
        async with raw_charger(
            running.url, "CP-AUTH", additional_headers=basic("CP-AUTH", PASSWORD)
        ) as charger:
            assert (await charger.call("Heartbeat", {}))[0] == 3
    finally:
        running.stop()
    reasons = [c["reason"] for c in rows(running.data_dir, "connections", "event = 'refused'")]
    assert sorted(reasons) == ["Basic username is not the charge point id", "missing Basic credentials",
                               "wrong password"]  # fmt: skip


async def test_tls_serves_wss_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    running = make_listener(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key))
    running.health_scheme = "https"
    client_ctx = ssl.create_default_context(cafile=str(cert))
    running.start(ssl_context=client_ctx)
    try:
        url = running.url.replace("ws://", "wss://")
        async with raw_charger(url, "CP-TLS", ssl=client_ctx) as charger:
            assert (await charger.call("Heartbeat", {}))[0] == 3
    finally:
        running.stop()
    [connected, _] = rows(running.data_dir, "connections")
    assert connected["auth"] == "tls"


@pytest.mark.parametrize(
    "offered, chosen",
    [
        (["ocpp1.6"], "ocpp1.6"),
        (["ocpp2.0.1"], "ocpp2.0.1"),
        (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),  # server preference wins
        (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
    ],
)
async def test_the_subprotocol_follows_the_servers_preference(
    listener: RunningListener, offered: list[str], chosen: str
) -> None:
    async with websockets.connect(f"{listener.url}/SP-1", subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == chosen


async def test_no_common_subprotocol_is_closed_right_after_the_handshake(listener: RunningListener) -> None:
    async with websockets.connect(f"{listener.url}/SP-2", subprotocols=["ocpp1.5"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol is None
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    listener.stop()
    [refusal] = rows(listener.data_dir, "connections")
    assert (refusal["event"], refusal["reason"]) == ("refused", "no common subprotocol")


async def test_no_subprotocol_offered_is_taken_as_16_by_default(listener: RunningListener) -> None:
    async with websockets.connect(f"{listener.url}/SP-3") as ws:
        await ws.send('[2, "1", "Heartbeat", {}]')
        assert (await ws.recv()).startswith('[3,"1"')
    listener.stop()
    assert {f["ocpp_version"] for f in rows(listener.data_dir, "frames")} == {"1.6"}


async def test_no_subprotocol_can_be_refused_by_configuration(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--no-subprotocol", "refuse").start()
    try:
        async with websockets.connect(f"{running.url}/SP-4") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
    finally:
        running.stop()


async def test_a_second_connection_with_the_same_id_replaces_the_first(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "DUP-1") as first, raw_charger(listener.url, "DUP-1") as second:
        assert (await second.call("Heartbeat", {}))[0] == 3
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(first.ws.recv(), 5)
        assert first.ws.close_code == 4000
