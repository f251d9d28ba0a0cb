"""Proxy mode over TLS: wss:// to the CSMS verified against a CA (chain and host name), wss:// to chargers.

A throw-away CA signs the certificates of the test CSMS and of the proxy; the system's CAs do not know it.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from tests.support.chargers import iso, raw_charger, rows
from tests.support.csms import RunningCsms
from tests.support.listener import RunningListener, free_port, make_listener

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA's certificate: what a client trusts
    cert: Path  # names localhost and 127.0.0.1
    key: Path
    cert_localhost_only: Path  # names localhost only, not the address 127.0.0.1
    key_localhost_only: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def server_cert(ca: Path, ca_key: Path, cert: Path, key: Path, san: str) -> None:
    openssl("req", "-x509", "-CA", str(ca), "-CAkey", str(ca_key), "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
            "-addext", f"subjectAltName={san}", "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "extendedKeyUsage=serverAuth")  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = d / "ca.pem", d / "ca.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca),
            "-days", "1", "-subj", "/CN=ocpp-opendata throw-away test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    pki = Pki(ca, d / "cert.pem", d / "key.pem", d / "cert-localhost.pem", d / "key-localhost.pem")
    server_cert(ca, ca_key, pki.cert, pki.key, "DNS:localhost,IP:127.0.0.1")
    server_cert(ca, ca_key, pki.cert_localhost_only, pki.key_localhost_only, "DNS:localhost")
    return pki


def trusting(ca: Path) -> ssl.SSLContext:
    """A charger's (or probe's) client context that trusts the throw-away CA, verification on."""
    return ssl.create_default_context(cafile=str(ca))


@pytest.fixture
def tls_csms(tmp_path: Path, pki: Pki) -> Iterator[RunningCsms]:
    running = RunningCsms(
        free_port(), tmp_path / "csms.jsonl", tls_cert=pki.cert, tls_key=pki.key, host="localhost"
    ).start()
    try:
        yield running
    finally:
        running.stop()


SESSION: list[tuple[str, dict[str, Any]]] = [
    ("BootNotification", {"chargePointVendor": "V1", "chargePointModel": "M1"}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
    (
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": iso(T0),
                    "sampledValue": [
                        {"value": "1120", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                    ],
                }
            ],
        },
    ),
]


async def run_session(url: str, cp_id: str, **kw: Any) -> list[list[Any]]:
    """Boot, Status and MeterValues from a 1.6 charger; the answers it got, in order."""
    async with raw_charger(url, cp_id, **kw) as charger:
        return [await charger.call(action, payload) for action, payload in SESSION]


def assert_relayed(csms: RunningCsms, proxy: RunningListener, cp_id: str, answers: list[list[Any]]) -> None:
    """The CSMS got the session and the charger got exactly the CSMS's answers; the proxy recorded both."""
    received = csms.frames(cp_id)
    assert [(f[0], f[2]) for f in received] == [(2, action) for action, _ in SESSION]
    assert [f[3] for f in received] == [payload for _, payload in SESSION]
    sent = csms.frames(cp_id, "out")
    assert answers == sent, "the charger got the CSMS's answers, not local ones"
    assert answers[0][2]["status"] == "Accepted"
    frames = rows(proxy.data_dir, "frames", f"charge_point_id = '{cp_id}'", order="seq")
    assert [(f["direction"], f["action"]) for f in frames] == [
        (d, action) for action, _ in SESSION for d in ("in", "out")
    ]
    [meter] = rows(proxy.data_dir, "meter_values", f"charge_point_id = '{cp_id}'")
    assert meter["value"] == 1120.0


async def refused_status(url: str, **kw: Any) -> int:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], **kw):  # type: ignore[list-item]
            pass
    return refused.value.response.status_code


def verify_failed(text: str) -> bool:
    """OpenSSL's reason, as the stdlib ("certificate verify failed") or picows' TLS layer (aiofastnet:
    "CERTIFICATE_VERIFY_FAILED") words it."""
    return "certificate verify failed" in text.lower().replace("_", " ")


def refusal_reasons(proxy: RunningListener) -> list[str]:
    return [r["reason"] for r in rows(proxy.data_dir, "connections", "event = 'refused'")]


async def test_a_16_session_is_relayed_to_a_wss_csms_whose_certificate_the_given_ca_file_verifies(
    tmp_path: Path, pki: Pki, tls_csms: RunningCsms
) -> None:
    assert tls_csms.url.startswith("wss://localhost:")
    proxy = make_listener(
        tmp_path / "data", "--upstream", tls_csms.url, "--upstream-ca-file", str(pki.ca)
    ).start()
    try:
        answers = await run_session(proxy.url, "TLS-UP-1")
        # And the other way: a CALL from the CSMS (its https control endpoint) reaches the charger.
        async with raw_charger(proxy.url, "TLS-UP-2") as charger:
            await charger.call(*SESSION[0])
            remote = asyncio.create_task(asyncio.to_thread(tls_csms.remote_start, "TLS-UP-2", "REMOTE77"))
            call = orjson.loads(await asyncio.wait_for(charger.ws.recv(), 10))
            assert call[2:] == ["RemoteStartTransaction", {"idTag": "REMOTE77", "connectorId": 1}]
            await charger.ws.send(orjson.dumps([3, call[1], {"status": "Accepted"}]).decode())
            assert await asyncio.wait_for(remote, 10) == {"status": "Accepted"}
    finally:
        assert proxy.stop() == 0
    assert_relayed(tls_csms, proxy, "TLS-UP-1", answers)
    assert [f[0] for f in tls_csms.frames("TLS-UP-2")] == [2, 3], "Boot, then the charger's answer"


async def test_without_the_ca_file_the_unknown_chain_is_refused_with_503_and_the_log_says_why(
    tmp_path: Path, tls_csms: RunningCsms
) -> None:
    proxy = make_listener(tmp_path / "data", "--upstream", tls_csms.url).start()  # refuse is the default
    try:
        assert await refused_status(f"{proxy.url}/TLS-NOCA") == 503
    finally:
        assert proxy.stop() == 0
    assert verify_failed(proxy.log()), proxy.log()
    [reason] = refusal_reasons(proxy)
    assert verify_failed(reason) and "unable to get local issuer certificate" in reason, reason
    assert tls_csms.frames("TLS-NOCA") == [], "no OCPP frame went over an unverified connection"


async def test_a_certificate_that_does_not_name_the_upstream_host_is_refused_though_its_chain_verifies(
    tmp_path: Path, pki: Pki
) -> None:
    csms = RunningCsms(
        free_port(), tmp_path / "csms.jsonl",
        tls_cert=pki.cert_localhost_only, tls_key=pki.key_localhost_only,
    ).start()  # fmt: skip
    assert csms.url.startswith("wss://127.0.0.1:"), "the certificate names localhost only"
    by_address = make_listener(
        tmp_path / "by-address", "--upstream", csms.url, "--upstream-ca-file", str(pki.ca),
        log_name="by-address.log",
    ).start()  # fmt: skip
    by_name_url = csms.url.replace("wss://127.0.0.1:", "wss://localhost:")
    by_name = make_listener(
        tmp_path / "by-name", "--upstream", by_name_url, "--upstream-ca-file", str(pki.ca),
        log_name="by-name.log",
    ).start()  # fmt: skip
    try:
        assert await refused_status(f"{by_address.url}/TLS-IP") == 503
        # Same CSMS, same certificate and CA, under the name the certificate holds: relayed.
        answers = await run_session(by_name.url, "TLS-NAME")
    finally:
        assert by_address.stop() == 0
        assert by_name.stop() == 0
        csms.stop()
    assert verify_failed(by_address.log()), by_address.log()
    [reason] = refusal_reasons(by_address)
    assert verify_failed(reason) and "mismatch" in reason, reason
    assert csms.frames("TLS-IP") == []
    assert_relayed(csms, by_name, "TLS-NAME", answers)


@pytest.mark.parametrize("csms_tls", [False, True], ids=["ws-csms", "wss-csms"])
async def test_the_proxy_serves_wss_to_a_charger_that_trusts_its_ca_and_relays_the_session(
    tmp_path: Path, pki: Pki, csms_tls: bool
) -> None:
    csms = RunningCsms(free_port(), tmp_path / "csms.jsonl")
    if csms_tls:
        csms.tls_cert, csms.tls_key, csms.host = pki.cert, pki.key, "localhost"
    csms.start()
    proxy = make_listener(
        tmp_path / "data", "--upstream", csms.url, "--upstream-ca-file", str(pki.ca),
        "--tls-cert", str(pki.cert), "--tls-key", str(pki.key),
    )  # fmt: skip
    proxy.health_scheme = "https"
    charger_ctx = trusting(pki.ca)
    try:
        proxy.start(ssl_context=charger_ctx)
        wss_url = proxy.url.replace("ws://", "wss://")
        answers = await run_session(wss_url, "TLS-DOWN", ssl=charger_ctx)
        # A charger that does not trust the CA (system CAs only) cannot connect at all.
        with pytest.raises(ssl.SSLCertVerificationError):
            await run_session(wss_url, "TLS-DOWN-UNTRUSTING", ssl=ssl.create_default_context())
    finally:
        assert proxy.stop() == 0
        csms.stop()
    assert csms.url.startswith("wss://" if csms_tls else "ws://")
    assert_relayed(csms, proxy, "TLS-DOWN", answers)
    connections = rows(proxy.data_dir, "connections", "charge_point_id = 'TLS-DOWN'")
    assert [(c["event"], c["auth"]) for c in connections] == [("connected", "tls"), ("disconnected", "tls")]
    assert csms.frames("TLS-DOWN-UNTRUSTING") == []
