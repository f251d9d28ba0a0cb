"""The operator API inside the listener process: one uvicorn server on the listener's own event loop.

Sharing the loop lets a call reach the charger's connection object directly; the listener's
acknowledgement path is unchanged (a call costs the loop what one extra frame costs). uvicorn's own
signal handling is switched off: SIGTERM belongs to the listener, which stops this server itself.

Chargers held by another listener process are listed from that process's snapshot (DATA_DIR/live, or
the store's live/ prefix when processes on several machines share an object store), and calls reach
them through the broker (`--operator-broker`, ingest/operate/broker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Generator
from typing import Any

import uvicorn

from ingest.live_state import LiveState
from ingest.operate.api import operator_app
from ingest.operate.broker import CallBroker
from ingest.operate.control import CallOutcome, Control
from ingest.operate.tokens import TokenFile
from ocpp_opendata.live import (
    LIVE_PREFIX,
    ChargerState,
    Snapshot,
    merge_snapshots,
    read_snapshot_dir,
    snapshot_from_bytes,
)
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, StoreError
from ocpp_opendata.settings import Settings

log = logging.getLogger("ingest.operate")

OTHERS_TTL = 1.0  # s other processes' snapshots are reused (they are themselves written ≤ 1 s apart)


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class OperatorService:
    def __init__(self, settings: Settings, live: LiveState, control: Control, store: Store | None) -> None:
        assert settings.operator_tokens is not None
        self.settings = settings
        self.live = live
        self.control = control
        self.store = store  # the shared object store, when the live snapshots also go there
        self.broker = CallBroker(settings.operator_broker, control) if settings.operator_broker else None
        self._others: tuple[float, list[Snapshot]] = (0.0, [])
        app = operator_app(TokenFile(settings.operator_tokens), self.chargers, self.call)
        config = uvicorn.Config(
            app,
            host=settings.operator_host,
            port=settings.operator_port,
            ssl_certfile=str(settings.operator_tls_cert) if settings.operator_tls_cert else None,
            ssl_keyfile=str(settings.operator_tls_key) if settings.operator_tls_key else None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_keep_alive=5,
            limit_concurrency=1000,
            h11_max_incomplete_event_size=16 * 1024,
        )
        self.server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.broker is not None:
            await self.broker.start()
        self._task = asyncio.create_task(self.server.serve(), name="operator-api")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # the port could not be bound: raise it here
                raise OSError("the operator API stopped at start")
            await asyncio.sleep(0.01)
        log.info(
            "operator api listening",
            extra=fields(host=self.settings.operator_host, port=self.settings.operator_port,
                         tls=self.settings.operator_tls_cert is not None),
        )  # fmt: skip

    async def close(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10)
        if self.broker is not None:
            await self.broker.close()

    # --- what the API asks ---------------------------------------------------------------------------

    def _other_snapshots(self) -> list[Snapshot]:
        stamp, cached = self._others
        if time.monotonic() - stamp < OTHERS_TTL:
            return cached
        # This process's own state is fresher in memory than in its snapshot file.
        found = [s for s in read_snapshot_dir(self.live.directory) if s.instance != self.live.instance]
        if self.store is not None:
            seen = {s.instance for s in found}
            try:
                for info in self.store.list(LIVE_PREFIX + "/"):
                    instance = info.key.rsplit("/", 1)[-1].removesuffix(".json")
                    if instance == self.live.instance or instance in seen:
                        continue
                    with contextlib.suppress(StoreError, ValueError, TypeError, KeyError):
                        found.append(snapshot_from_bytes(self.store.read_bytes(info.key)))
            except StoreError as exc:
                log.warning("live snapshots of the store not read", extra=fields(error=str(exc)))
        self._others = (time.monotonic(), found)
        return found

    def chargers(self) -> dict[str, ChargerState]:
        return merge_snapshots([*self._other_snapshots(), self.live.snapshot()])

    async def call(self, operator: str, cp_id: str, action: str, payload: Any) -> tuple[int, dict[str, Any]]:
        timeout = float(self.settings.operator_call_timeout)
        if self.broker is not None and not self.control.holds(cp_id) and not self.control.proxy_mode:
            outcome: CallOutcome = await self.broker.call(operator, cp_id, action, payload, timeout)
        else:
            outcome = await self.control.call(operator, cp_id, action, payload, timeout)
        return outcome.status, outcome.body
