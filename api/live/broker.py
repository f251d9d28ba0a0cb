"""The listeners' live status events from Redis (`--operator-broker`), as an overlay on the snapshots.

A listener with `--operator-broker` publishes every status change and every connection change on the
channel `ocpp-opendata:live` the moment it happens (ingest/live_state.py). The API subscribes to the
same channel: each event goes into the overlay and wakes the refresh at once, instead of waiting for the
listener's next snapshot (at most once a second) and the API's next poll (once a second for a store).
Snapshots stay the durable state: an overlay entry is dropped as soon as a snapshot holds that
connector's state as new or newer, and an API that starts (or loses Redis) catches up from them.

With only Redis shared (no common data root or store), the overlay is the whole state: a charger is
online from its connection event until its disconnection event (heartbeats are not published), and its
offline limit starts at the disconnection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from ocpp_opendata.live import ChargerState, ConnectorState
from ocpp_opendata.logs import fields

log = logging.getLogger(__name__)

LIVE_CHANNEL = "ocpp-opendata:live"  # the listener's channel (ingest/live_state.py)
RETRY_S = 2.0


@dataclass
class OverlayCharger:
    connected: bool | None = None
    connected_at: str | None = None  # updated_at of the newest connection event
    connectors: dict[tuple[int, int], ConnectorState] = field(default_factory=dict)


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Overlay:
    """Events received and not yet superseded by a snapshot. Filled on the event loop, applied by the
    refresh on its worker thread; one lock between them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chargers: dict[str, OverlayCharger] = {}
        self.dirty = False
        self.received = 0

    def add(self, event: dict[str, Any]) -> bool:
        cp_id, updated = event.get("charge_point_id"), event.get("updated_at")
        if not isinstance(cp_id, str) or not isinstance(updated, str):
            return False
        with self._lock:
            entry = self._chargers.setdefault(cp_id, OverlayCharger())
            evse, conn = event.get("evse_id"), event.get("connector_id")
            if isinstance(evse, int) and isinstance(conn, int):
                old = entry.connectors.get((evse, conn))
                if old is None or (old.updated_at or "") <= updated:
                    entry.connectors[(evse, conn)] = ConnectorState(
                        evse, conn, event.get("status"), event.get("error_code"), updated
                    )
            connected = event.get("connected")
            if isinstance(connected, bool) and (entry.connected_at or "") <= updated:
                entry.connected, entry.connected_at = connected, updated
            self.dirty = True
            self.received += 1
        return True

    def apply(self, chargers: dict[str, ChargerState]) -> dict[str, ChargerState]:
        """`chargers` (merged from the snapshots) with the newer overlay states on top, as new objects
        (the snapshot objects stay as they are); entries the snapshots caught up with are dropped."""
        with self._lock:
            self.dirty = False
            if not self._chargers:
                return chargers
            out = dict(chargers)
            for cp_id, entry in list(self._chargers.items()):
                base = chargers.get(cp_id)
                have = {(c.evse_id, c.connector_id): c for c in base.connectors} if base is not None else {}
                newer = {
                    key: c
                    for key, c in entry.connectors.items()
                    if key not in have or (have[key].updated_at or "") < (c.updated_at or "")
                }
                seen = base.last_seen if base is not None else None
                conn_newer = entry.connected is not None and (seen or "") < (entry.connected_at or "")
                entry.connectors = newer
                if not newer and not conn_newer:
                    del self._chargers[cp_id]
                    continue
                merged = {**have, **newer}
                charger = base or ChargerState(cp_id)
                connected = entry.connected if conn_newer else charger.connected
                stamps = [s for s in (seen, entry.connected_at, *(c.updated_at for c in newer.values())) if s]
                # A connected charger is alive even though Redis carries no heartbeats; a disconnected
                # one's offline limit runs from its last event.
                last_seen = iso_now() if connected else max(stamps, default=None)
                out[cp_id] = replace(
                    charger,
                    connected=bool(connected),
                    last_seen=last_seen,
                    connectors=sorted(merged.values(), key=lambda c: (c.evse_id, c.connector_id)),
                )
            return out


class BrokerSubscriber:
    """Subscribes to the live channel and feeds the overlay; reconnects after any error."""

    def __init__(self, url: str, overlay: Overlay, wake: Callable[[], None]) -> None:
        self.url = url
        self.overlay = overlay
        self.wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="live-broker")

    async def _run(self) -> None:
        import redis.asyncio as aioredis  # only an API with --operator-broker needs the client

        warned = 0.0
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=3)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(LIVE_CHANNEL)
                    log.info("live events subscribed", extra=fields(broker=self.url))
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        try:
                            event = orjson.loads(message["data"])
                        except orjson.JSONDecodeError:
                            continue
                        if isinstance(event, dict) and self.overlay.add(event):
                            self.wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: the snapshots still carry the state, a little later
                if time.monotonic() - warned > 10:
                    warned = time.monotonic()
                    log.warning("live events unavailable", extra=fields(broker=self.url, error=str(exc)))
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(RETRY_S)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
