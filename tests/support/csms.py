"""An independent upstream CSMS for proxy tests: a central system built on the `ocpp` library.

Run in its own process (`python -m tests.support.csms --port P --log FILE`). It assigns its own 1.6
transaction ids (from --first-tx, continuing across restarts), answers idTag BLOCKED with Invalid
and every other idTag with Accepted, optionally requires Basic auth (--password), and writes every
frame it receives or sends to a JSONL log. `GET /control/remote-start/<cp>?id_tag=T` makes it send
RemoteStartTransaction (1.6) or RequestStartTransaction (2.0.1) to that charger and returns the
charger's answer as JSON.

`--slow-action A --slow-seconds S [--slow-times N]` makes it wait S seconds before it handles a CALL
of action A (only the first N such CALLs if given, counted across connections), to test the proxy's
answer timeout. Like the `ocpp` library it reads a connection's frames one at a time, so that
connection reads nothing else meanwhile. The CALL is journaled when it arrives, before the wait.

`--tls-cert PEM --tls-key PEM` makes it serve wss:// (and https:// for /health and /control) with that
certificate chain, to test the proxy's TLS towards the CSMS.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http
import json
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Journal:
    """Every frame in and out, one JSON object per line, flushed at once (the test reads it live)."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("a", buffering=1)

    def write(self, cp: str, direction: str, text: str) -> None:
        self.handle.write(json.dumps({"cp": cp, "dir": direction, "text": text, "at": time.time()}) + "\n")


class TxCounter:
    def __init__(self, path: Path, first: int) -> None:
        self.path = path
        self.next = int(path.read_text()) if path.exists() else first

    def take(self) -> int:
        value = self.next
        self.next += 1
        self.path.write_text(str(self.next))
        return value


def _status(id_tag: str | None) -> str:
    return "Invalid" if id_tag == "BLOCKED" else "Accepted"


@dataclass
class SlowAnswers:
    """The CALLs of one action are handled only after a delay (--slow-action)."""

    action: str
    seconds: float
    times: int | None = None  # how many more CALLs to delay; None: all of them

    def delay_for(self, raw_msg: str) -> float:
        try:
            msg = json.loads(raw_msg)
        except ValueError:
            return 0.0
        is_call = isinstance(msg, list) and len(msg) > 2 and msg[0] == 2 and msg[2] == self.action
        if not is_call or self.times == 0:
            return 0.0
        if self.times is not None:
            self.times -= 1
        return self.seconds


class Journaled:
    journal: Journal
    slow: SlowAnswers | None = None

    async def route_message(self, raw_msg: str) -> None:
        self.journal.write(self.id, "in", raw_msg)  # type: ignore[attr-defined]
        delay = self.slow.delay_for(raw_msg) if self.slow is not None else 0.0
        if delay:
            await asyncio.sleep(delay)
        await super().route_message(raw_msg)  # type: ignore[misc]

    async def _send(self, message: str) -> None:
        self.journal.write(self.id, "out", message)  # type: ignore[attr-defined]
        await super()._send(message)  # type: ignore[misc]


class Central16(Journaled, ChargePoint16):
    tx: TxCounter

    @on("BootNotification")
    async def boot(self, **_: Any) -> Any:
        return result16.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on("Heartbeat")
    async def heartbeat(self, **_: Any) -> Any:
        return result16.Heartbeat(current_time=_now())

    @on("StatusNotification")
    async def status(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @on("Authorize")
    async def authorize(self, id_tag: str, **_: Any) -> Any:
        return result16.Authorize(id_tag_info={"status": _status(id_tag)})

    @on("StartTransaction")
    async def start_transaction(self, id_tag: str, **_: Any) -> Any:
        return result16.StartTransaction(
            transaction_id=self.tx.take(), id_tag_info={"status": _status(id_tag)}
        )

    @on("StopTransaction")
    async def stop_transaction(self, id_tag: str | None = None, **_: Any) -> Any:
        if id_tag is None:
            return result16.StopTransaction()
        return result16.StopTransaction(id_tag_info={"status": _status(id_tag)})

    @on("MeterValues")
    async def meter_values(self, **_: Any) -> Any:
        return result16.MeterValues()

    async def remote_start(self, id_tag: str) -> dict[str, Any]:
        answer = await self.call(call16.RemoteStartTransaction(id_tag=id_tag, connector_id=1))
        return {"status": answer.status}


class Central201(Journaled, ChargePoint201):
    @on("BootNotification")
    async def boot(self, **_: Any) -> Any:
        return result201.BootNotification(current_time=_now(), interval=300, status="Accepted")

    @on("Heartbeat")
    async def heartbeat(self, **_: Any) -> Any:
        return result201.Heartbeat(current_time=_now())

    @on("StatusNotification")
    async def status(self, **_: Any) -> Any:
        return result201.StatusNotification()

    @on("Authorize")
    async def authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        return result201.Authorize(id_token_info={"status": _status(id_token.get("id_token"))})

    @on("TransactionEvent")
    async def transaction_event(self, id_token: dict[str, Any] | None = None, **_: Any) -> Any:
        if id_token is None:
            return result201.TransactionEvent()
        return result201.TransactionEvent(id_token_info={"status": _status(id_token.get("id_token"))})

    @on("MeterValues")
    async def meter_values(self, **_: Any) -> Any:
        return result201.MeterValues()

    async def remote_start(self, id_tag: str) -> dict[str, Any]:
        answer = await self.call(
            call201.RequestStartTransaction(
                id_token={"idToken": id_tag, "type": "ISO14443"}, remote_start_id=42
            )
        )
        return {"status": answer.status}


class Csms:
    def __init__(
        self, journal: Journal, tx: TxCounter, password: str | None, slow: SlowAnswers | None = None
    ) -> None:
        self.journal = journal
        self.tx = tx
        self.password = password
        self.slow = slow
        self.connected: dict[str, Central16 | Central201] = {}

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == "/health":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if parts.path.startswith("/control/remote-start/"):
            cp_id = unquote(parts.path.rsplit("/", 1)[1])
            id_tag = parse_qs(parts.query).get("id_tag", ["REMOTE01"])[0]
            cp = self.connected.get(cp_id)
            if cp is None:
                return connection.respond(http.HTTPStatus.NOT_FOUND, "not connected\n")
            body = json.dumps(await cp.remote_start(id_tag)).encode()
            return Response(200, "OK", Headers({"Content-Type": "application/json"}), body)
        if self.password is not None:
            cp_id = unquote(parts.path.rsplit("/", 1)[1])
            expected = "Basic " + base64.b64encode(f"{cp_id}:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cp_id = unquote(urlsplit(ws.request.path).path.rsplit("/", 1)[1])
        cp: Central16 | Central201
        if ws.subprotocol == "ocpp2.0.1":
            cp = Central201(cp_id, ws)
        else:
            cp = Central16(cp_id, ws)
            cp.tx = self.tx
        cp.journal = self.journal
        cp.slow = self.slow
        self.connected[cp_id] = cp
        with contextlib.suppress(Exception):
            await cp.start()
        if self.connected.get(cp_id) is cp:
            del self.connected[cp_id]


async def main(args: argparse.Namespace) -> None:
    log = Path(args.log)
    slow = None
    if args.slow_action is not None:
        slow = SlowAnswers(args.slow_action, args.slow_seconds, args.slow_times)
    csms = Csms(Journal(log), TxCounter(log.with_suffix(".tx"), args.first_tx), args.password, slow)
    tls = None
    if args.tls_cert is not None:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        csms.handler,
        "127.0.0.1",
        args.port,
        subprotocols=["ocpp2.0.1", "ocpp1.6"],  # type: ignore[list-item]
        process_request=csms.process_request,
        ssl=tls,
    ):
        await stop.wait()


# --- test side --------------------------------------------------------------------------------------


@dataclass
class RunningCsms:
    port: int
    log: Path
    password: str | None = None
    first_tx: int = 7000
    slow_action: str | None = None  # see --slow-action in the module docstring
    slow_seconds: float = 5.0
    slow_times: int | None = None
    tls_cert: Path | None = None  # with tls_key: serve wss:// (see --tls-cert in the module docstring)
    tls_key: Path | None = None
    host: str = "127.0.0.1"  # the name `url` gives; the CSMS always listens on 127.0.0.1
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "ws" if self.tls_cert is None else "wss"
        return f"{scheme}://{self.host}:{self.port}/ocpp"

    @property
    def _http(self) -> str:
        """Base URL of /health and /control, always on 127.0.0.1."""
        return f"{'http' if self.tls_cert is None else 'https'}://127.0.0.1:{self.port}"

    def _probe_context(self) -> ssl.SSLContext | None:
        """For the test's own requests: trust exactly the CSMS's certificate, whatever names it holds.

        The tests check chains and host names through the proxy; this only has to reach the process.
        """
        if self.tls_cert is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls_cert))
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the trust anchor
        context.check_hostname = False
        return context

    def start(self, timeout: float = 20.0) -> RunningCsms:
        args = [sys.executable, "-m", "tests.support.csms", "--port", str(self.port), "--log", str(self.log),
                "--first-tx", str(self.first_tx)]  # fmt: skip
        if self.password is not None:
            args += ["--password", self.password]
        if self.slow_action is not None:
            args += ["--slow-action", self.slow_action, "--slow-seconds", str(self.slow_seconds)]
            if self.slow_times is not None:
                args += ["--slow-times", str(self.slow_times)]
        if self.tls_cert is not None:
            if self.tls_key is None:
                raise ValueError("tls_cert needs tls_key")
            args += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        self.proc = subprocess.Popen(args, stderr=self.log.with_suffix(".stderr").open("ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"CSMS exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self._http}/health", timeout=1, context=self._probe_context()):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("CSMS did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def frames(self, cp: str | None = None, direction: str = "in") -> list[list[Any]]:
        """Frames the CSMS received (or sent), parsed, in order."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            entry = json.loads(line)
            if entry["dir"] == direction and (cp is None or entry["cp"] == cp):
                out.append(json.loads(entry["text"]))
        return out

    def remote_start(self, cp: str, id_tag: str = "REMOTE01") -> dict[str, Any]:
        url = f"{self._http}/control/remote-start/{cp}?id_tag={id_tag}"
        with urllib.request.urlopen(url, timeout=30, context=self._probe_context()) as resp:
            return json.loads(resp.read())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--first-tx", type=int, default=7000)
    parser.add_argument("--password")
    parser.add_argument("--slow-action", help="delay the CALLs of this action (testing answer timeouts)")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--slow-times", type=int, help="delay only the first N such CALLs (default: all)")
    parser.add_argument("--tls-cert", help="certificate chain (PEM): serve wss:// instead of ws://")
    parser.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    asyncio.run(main(parser.parse_args()))
