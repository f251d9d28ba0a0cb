"""Running the app under uvicorn with the limits a public server needs (issue 20, items 2 and 8).

- A request's headers must arrive within `api_header_timeout` of the connection opening (or of the
  previous answer on a kept-alive connection): uvicorn itself only times out idle keep-alive connections,
  so a client sending half a request held its connection for good.
- At most `api_max_connections` connections and requests at once (uvicorn's `limit_concurrency`: 503).
- On SIGTERM/SIGINT the SQL worker processes are killed at once, so a running query cannot delay the
  exit, and requests still running after `api_shutdown_grace` seconds are cut off.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ocpp_opendata.settings import Settings


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head does not arrive in time."""

    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request on this connection gets the same time for its head; an idle connection is
        # closed earlier by uvicorn's keep-alive timeout.
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def serve(app: Any, settings: Settings, stop_queries: Any) -> None:
    """Run `app` until a signal; `stop_queries()` is called from the signal handler first."""
    protocol = type("Protocol", (HeaderTimeoutProtocol,), {"header_timeout": settings.api_header_timeout})
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        http=protocol,
        timeout_keep_alive=max(1, round(settings.api_keep_alive)),
        limit_concurrency=settings.api_max_connections,
        timeout_graceful_shutdown=max(1, round(settings.api_shutdown_grace)),
    )
    server = uvicorn.Server(config)
    handle_exit = server.handle_exit

    def on_signal(sig: int, frame: FrameType | None) -> None:
        stop_queries()
        handle_exit(sig, frame)

    server.handle_exit = on_signal  # type: ignore[method-assign]
    server.run()
