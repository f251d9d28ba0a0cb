"""The OCPP-J listener: WebSocket server, per-connection loop, /health and /metrics.

Each connection is served in order: read a frame, decide the answer, make the frame and answer
durable (group-committed fsync), then send the answer. A charger waits for each answer before it
sends its next CALL (OCPP-J), so this costs no concurrency, and an answer never promises more
than the disk holds.
"""

from __future__ import annotations

import asyncio
import gc
import http
import itertools
import logging
import signal
import ssl
import time
from typing import Any

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ingest.actions import SUBPROTOCOL_VERSION, warm_validators
from ingest.answers import Responder
from ingest.auth import IdTagPolicy, read_credentials, read_id_list
from ingest.handshake import BasicAuth, HandshakeRefused, charge_point_id_from_path, choose_subprotocol
from ingest.live_state import LiveState, Publisher
from ingest.metrics import Metrics, render_uploads
from ingest.operate.control import Control
from ingest.operate.service import OperatorService
from ingest.processor import ConnectionContext, FrameProcessor, now_us
from ingest.proxy.hub import ProxyHub
from ingest.proxy.relay import Relay
from ingest.store import StoreUnavailable, build_store
from ingest.txids import transaction_ids_for
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, open_store
from ocpp_opendata.settings import Settings

log = logging.getLogger("ingest.server")

SOCKET_MAX_BYTES = 2**20  # frames up to 1 MiB reach us; over max_frame_bytes they are quarantined
CLOSE_REPLACED = 4000  # private-use close code: a newer connection with the same id took over
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RateLimiter:
    """Token bucket per connection: when empty, reading pauses (TCP back-pressure), nothing is rejected."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    async def take(self) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self.tokens = 1.0
            self.stamp = time.monotonic()
        self.tokens -= 1


class Listener:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = build_store(settings, self.metrics)  # local raw zone, or outbox + uploader (s3)
        self.txids = transaction_ids_for(settings)  # SQLite under DATA_DIR, or PostgreSQL (--state-url)
        responder = Responder(
            settings.heartbeat_interval, IdTagPolicy(settings.authorize, settings.allowlist), self.txids
        )
        self.processor = FrameProcessor(
            responder, self.metrics, max_frame_bytes=settings.max_frame_bytes, strict=settings.strict
        )
        self.known_ids = read_id_list(settings.charge_points)
        self.basic_auth = BasicAuth(read_credentials(settings.credentials)) if settings.credentials else None
        self.preference = settings.subprotocol_list
        self.active: dict[str, ServerConnection] = {}
        self._counter = itertools.count(1)
        self.server: Server | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Proxy mode (docs/proxy.md): chargers are relayed to the operator's CSMS.
        proxied = settings.upstream is not None or settings.upstream_config is not None
        self.proxy = ProxyHub(settings, self.store, self.metrics, self.processor) if proxied else None
        self.live = _live_state(settings, self.store.instance_id)
        if self.proxy is not None:
            self.proxy.live = self.live
        # Remote control (docs/operate.md): off until an operator token file is given.
        self.control = Control(self.store, self.store.instance_id, proxy_mode=self.proxy is not None)
        self.operator: OperatorService | None = None
        if settings.operator_tokens is not None:
            self.operator = OperatorService(settings, self.live, self.control, _shared_store(settings))

    # --- handshake ---------------------------------------------------------------------------

    def _refuse(self, connection: ServerConnection, exc: HandshakeRefused) -> Response:
        self.metrics.refused[exc.reason] += 1
        self._log_connection(
            "refused", exc.requested_id, None, None, connection, reason=exc.reason,
            offered=connection.request.headers.get("Sec-WebSocket-Protocol") if connection.request else None,
        )  # fmt: skip
        log.info("handshake refused", extra=fields(reason=exc.reason, remote=_remote(connection)))
        response = connection.respond(http.HTTPStatus(exc.status), exc.reason + "\n")
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if "upgrade" not in request.headers.get("Connection", "").lower():
            if path == "/health":
                return self._health(connection)
            if path == "/metrics":
                text = self.metrics.render(self.store.unrolled_bytes)
                if self.store.uploader is not None:
                    text += render_uploads(self.store.uploader.stats(), self.store.local_bytes)
                body = text.encode()
                return Response(200, "OK", Headers({"Content-Type": PROMETHEUS_TYPE}), body)
        try:
            cp_id = charge_point_id_from_path(request.path)
            if self.known_ids is not None and cp_id not in self.known_ids:
                raise HandshakeRefused(404, "unknown charge point id", cp_id)
            if self.basic_auth is not None:
                auth_header = request.headers.get("Authorization")
                await asyncio.to_thread(self.basic_auth.check, cp_id, auth_header)
            if self.proxy is not None:
                connection.upstream = await self.proxy.open_for(cp_id, request, self.preference)  # type: ignore[attr-defined]
        except HandshakeRefused as exc:
            return self._refuse(connection, exc)
        connection.cp_id = cp_id  # type: ignore[attr-defined]
        return None

    def _health(self, connection: ServerConnection) -> Response:
        word, acknowledging = self.store.health()
        body = {
            "status": word,
            "connections": self.metrics.connections,
            "wal_bytes": self.store.unrolled_bytes,
            "instance": self.store.instance_id,
            "uploads": self.store.upload_status(),
        }
        status = http.HTTPStatus.OK if acknowledging else http.HTTPStatus.SERVICE_UNAVAILABLE
        return Response(status.value, status.phrase, Headers({"Content-Type": "application/json"}),
                        orjson.dumps(body))  # fmt: skip

    def select_subprotocol(self, connection: ServerConnection, offered: list[str]) -> str | None:
        upstream = getattr(connection, "upstream", None)
        # Proxy mode: the charger gets the subprotocol the CSMS chose from the charger's offer.
        chosen = (
            upstream.subprotocol if upstream is not None else choose_subprotocol(offered, self.preference)
        )
        if chosen is None:
            # OCPP-J: complete the handshake without a subprotocol, then close at once (see handler).
            if offered:
                connection.refusal = "no common subprotocol"  # type: ignore[attr-defined]
            elif self.settings.no_subprotocol == "refuse":
                connection.refusal = "no subprotocol offered"  # type: ignore[attr-defined]
        return chosen

    # --- connection loop ---------------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        cp_id: str = ws.cp_id  # type: ignore[attr-defined]
        offered = ws.request.headers.get("Sec-WebSocket-Protocol") if ws.request else None
        refusal = getattr(ws, "refusal", None)
        if refusal is not None:
            self.metrics.refused[refusal] += 1
            self._log_connection("refused", cp_id, None, None, ws, reason=refusal, offered=offered)
            await ws.close(1002, refusal)
            if getattr(ws, "upstream", None) is not None:
                await ws.upstream.close()  # type: ignore[attr-defined]
            return
        version = SUBPROTOCOL_VERSION[ws.subprotocol or self.settings.no_subprotocol]
        ctx = ConnectionContext(cp_id, f"{self.store.instance_id}-{next(self._counter)}", version)
        previous = self.active.get(cp_id)
        self.active[cp_id] = ws
        if previous is not None:
            task = asyncio.create_task(previous.close(CLOSE_REPLACED, "replaced by a newer connection"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.metrics.connections += 1
        self.metrics.connections_total += 1
        self._log_connection("connected", cp_id, ctx.connection_id, version, ws, offered=offered)
        self.live.connected(cp_id, ctx.connection_id, version)
        limiter = RateLimiter(self.settings.rate_limit, self.settings.rate_burst)
        calls = self.control.attach(ws, ctx)
        try:
            if self.proxy is not None:
                await Relay(self.proxy, ws, ctx, getattr(ws, "upstream", None)).run(limiter)
            async for message in ws:
                await limiter.take()
                outcome = await self.processor.process(ctx, message)
                frame = outcome.frame
                # The answer to an operator call is stored with the action it answers, then handed over.
                answered = calls.action_answered_by(frame)
                if answered is not None:
                    outcome.record["act"] = answered
                try:
                    await self.store.commit(outcome.record)
                except StoreUnavailable as exc:
                    # Unanswered, the charger keeps the message and retries: nothing is lost.
                    self.metrics.not_acknowledged += 1
                    log.warning("not acknowledged", extra=fields(connection=ctx.connection_id, why=str(exc)))
                    continue
                if frame is not None:
                    if answered is not None:
                        calls.resolve(frame)
                    self.live.frame(cp_id, frame.action, frame.payload, version)
                if outcome.reply is not None:
                    await ws.send(outcome.reply)
        except ConnectionClosed:
            pass
        finally:
            self.control.detach(ws, ctx)
            if self.active.get(cp_id) is ws:
                del self.active[cp_id]
            self.live.disconnected(cp_id, ctx.connection_id)
            self.metrics.connections -= 1
            code = ws.close_code
            self._log_connection(
                "disconnected", cp_id, ctx.connection_id, version, ws,
                reason=ws.close_reason or None, close_code=code,
            )  # fmt: skip

    def _log_connection(
        self, event: str, cp_id: str | None, connection_id: str | None, version: str | None,
        ws: ServerConnection, *, reason: str | None = None, offered: str | None = None,
        close_code: int | None = None,
    ) -> None:  # fmt: skip
        auth = "none"
        if self.basic_auth is not None:
            auth = "basic"
        if self.settings.tls_cert is not None:
            auth = "tls-" + auth if auth != "none" else "tls"
        self.store.log(
            {
                "k": "c",
                "row": {
                    "received_at": now_us(),
                    "event": event,
                    "charge_point_id": cp_id,
                    "connection_id": connection_id,
                    "ocpp_version": version,
                    "subprotocols_offered": offered,
                    "remote_address": _remote(ws),
                    "auth": auth,
                    "reason": reason,
                    "close_code": close_code,
                    "listener_id": self.store.instance_id,
                },
            }
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.settings.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # OCPP security profile 2 requires TLS 1.2 or higher.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        return context

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        await self.store.start()
        # After start: recover_orphans has removed dead processes' WAL folders, which tells their
        # snapshots from those of live listeners.
        adopted = self.live.adopt_orphans(self.settings.effective_wal_dir)
        await self.live.start()
        self.live.forget_adopted(adopted)
        versions = {SUBPROTOCOL_VERSION[p] for p in self.preference if p in SUBPROTOCOL_VERSION}
        warm_validators(sorted(versions))
        # Everything built so far (modules, schemas, validators) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it (it took ~16 ms, a p99 spike).
        gc.freeze()
        await self.store.roll_worker_ready()
        async with serve(
            self.handler,
            self.settings.listen_host,
            self.settings.listen_port,
            process_request=self.process_request,
            select_subprotocol=self.select_subprotocol,
            subprotocols=self.preference,  # type: ignore[arg-type]
            max_size=SOCKET_MAX_BYTES,
            compression=None,  # per-connection zlib state would cost ~100 KiB × 10,000 idle chargers
            ssl=self._ssl_context(),
            server_header="ocpp-opendata",
            reuse_port=self.settings.reuse_port or None,
        ) as server:
            self.server = server
            log.info(
                "listening",
                extra=fields(
                    host=self.settings.listen_host, port=self.settings.listen_port,
                    instance=self.store.instance_id, data_dir=str(self.settings.data_dir),
                ),
            )  # fmt: skip
            if self.operator is not None:
                await self.operator.start()
            if ready is not None:
                ready.set()
            await stop.wait()
            if self.operator is not None:
                await self.operator.close()
            log.info("shutting down: closing connections and flushing to Parquet")
            server.close(close_connections=True)
            await server.wait_closed()
        await self.live.close()
        await self.store.close()
        self.txids.close()
        if self.proxy is not None:
            self.proxy.close()
        log.info("stopped", extra=fields(rows_written=dict(self.metrics.rows_written)))


def _live_state(settings: Settings, instance: str) -> LiveState:
    """The live state, written below DATA_DIR and, when the store lives elsewhere, to the store too."""
    store = open_store(settings.store, settings.data_dir)
    elsewhere = store.local_root is None or store.local_root != settings.data_dir.resolve()
    publisher = Publisher(settings.operator_broker) if settings.operator_broker else None
    return LiveState(
        instance,
        settings.data_dir,
        heartbeat_interval=settings.heartbeat_interval,
        store=store if elsewhere else None,
        publisher=publisher,
    )


def _shared_store(settings: Settings) -> Store | None:
    """The object store other machines' listeners write their live snapshots to, if there is one."""
    store = open_store(settings.store, settings.data_dir)
    return store if store.is_remote else None


def _remote(ws: ServerConnection) -> str | None:
    try:
        address: Any = ws.remote_address
    except Exception:
        return None
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return None if address is None else str(address)


def run_listener(settings: Settings) -> int:
    """Entry point of `ocpp-opendata listen`; returns the process exit code."""
    try:
        import uvloop  # uvloop roughly halves per-frame overhead in websockets (measured in benchmarks/)

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Listener(settings).run(stop)

    try:
        runner(main())
    except OSError as exc:
        log.error("cannot listen", extra=fields(error=str(exc)))
        return 2
    return 0
