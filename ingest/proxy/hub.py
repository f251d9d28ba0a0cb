"""What every relayed connection shares: upstream settings, the WAL, local answers and the queue.

Connections to the CSMS use picows' websockets-compatible client (`picows.websockets`), not the
`websockets` package the charger side runs on: its frame parser and masking are compiled (websockets
draws each client mask from os.urandom, ~15 µs a frame here), which cut the proxy's CPU per
exchange by about a sixth and its added p99 latency markedly (docs/benchmarks.md, "Proxy mode").
The charger side stays on `websockets`: its server takes an async `process_request`, which the
handshake needs to open the upstream connection before it answers the charger.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit
from urllib.request import proxy_bypass

from picows.websockets import ClientConnection, connect
from picows.websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.http11 import Request

from ingest.answers import Responder
from ingest.auth import IdTagPolicy
from ingest.handshake import HandshakeRefused
from ingest.metrics import Metrics
from ingest.processor import FrameProcessor
from ingest.proxy.config import ProxyConfigError, Upstreams, load_upstreams
from ingest.proxy.queue import ForwardQueue
from ingest.store import DurableStore
from ocpp_opendata.settings import Settings

SOCKET_MAX_BYTES = 2**20


def env_proxy(url: str) -> bool | None:
    """Whether the connection to `url` may use an HTTP(S) proxy from the environment.

    As the `websockets` client does: HTTPS_PROXY / HTTP_PROXY (wss/ws) apply unless NO_PROXY names the
    host. picows alone would ignore NO_PROXY and send even an internal CSMS through the proxy.
    """
    return None if proxy_bypass(urlsplit(url).hostname or "") else True


class UpstreamUnavailable(Exception):
    """The CSMS could not be reached; `status` is its HTTP answer when it refused the handshake."""

    def __init__(self, why: str, status: int | None = None) -> None:
        super().__init__(why)
        self.status = status


class ProxyHub:
    def __init__(
        self, settings: Settings, store: DurableStore, metrics: Metrics, processor: FrameProcessor
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.processor = processor
        self.upstreams: Upstreams = load_upstreams(settings)
        self.store_and_forward = settings.upstream_offline == "store-and-forward"
        # The queue also holds local 1.6 transaction ids, so local answers never collide with the CSMS's.
        self.queue = ForwardQueue(settings.state_dir)
        responder = Responder(
            settings.heartbeat_interval,
            IdTagPolicy(settings.authorize, settings.allowlist),
            self.queue,  # type: ignore[arg-type]
        )
        self.local = FrameProcessor(
            responder, metrics, max_frame_bytes=settings.max_frame_bytes, strict=False
        )
        self._background: set[asyncio.Task[Any]] = set()
        self.live: Any = None  # the listener's LiveState: relayed charger frames update it too

    def keep(self, task: asyncio.Task[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def connect(self, cp_id: str, subprotocols: list[str], request: Request | None) -> ClientConnection:
        """Open the charger's upstream connection: same identity, subprotocols and credentials."""
        upstream = self.upstreams.for_charger(cp_id)
        if upstream is None:
            raise UpstreamUnavailable("no upstream configured for this charge point", 404)
        headers = request.headers if request is not None else None
        try:
            authorization = upstream.authorization(headers.get("Authorization") if headers else None)
        except (ProxyConfigError, OSError) as exc:
            raise UpstreamUnavailable(f"upstream credentials: {exc}") from exc
        extra = {"Authorization": authorization} if authorization else {}
        timeout = self.settings.upstream_connect_timeout
        url = upstream.url_for(cp_id)
        try:
            # The handshake timeout alone would not bound the TCP connect to an unreachable host.
            return await asyncio.wait_for(
                connect(
                    url,
                    subprotocols=subprotocols,  # type: ignore[arg-type]
                    additional_headers=extra,
                    user_agent_header=headers.get("User-Agent") if headers else None,
                    ssl=upstream.ssl_context(),
                    open_timeout=timeout,
                    max_size=SOCKET_MAX_BYTES,
                    compression=None,
                    proxy=env_proxy(url),
                ),
                timeout,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise UpstreamUnavailable(f"CSMS answered the handshake with HTTP {status}", status) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise UpstreamUnavailable(f"CSMS unreachable: {exc or type(exc).__name__}") from exc

    async def open_for(self, cp_id: str, request: Request, supported: list[str]) -> ClientConnection | None:
        """At the charger's handshake: its upstream connection, None to go offline, or a refusal."""
        offered = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        subprotocols = [p for p in offered if p in supported] or supported
        try:
            return await self.connect(cp_id, subprotocols, request)
        except UpstreamUnavailable as exc:
            if exc.status in (401, 403, 404):
                # The CSMS refused this charger: so do we, with the same status.
                raise HandshakeRefused(
                    exc.status, f"upstream CSMS refused the charger: {exc}", cp_id
                ) from exc
            if not self.store_and_forward:
                raise HandshakeRefused(503, f"upstream CSMS unavailable: {exc}", cp_id) from exc
            return None

    def close(self) -> None:
        self.queue.close()
