"""The live state as the API holds it: snapshots polled from DATA_DIR/live (or the store's live/ prefix),
the registry, the current public view, a ring of recent status changes and the SSE subscribers.

Polling is a directory listing (or one store LIST) every `live_poll` seconds; files are read and the
view rebuilt only when a snapshot or the registry changed, or when a public charger crosses the
offline limit. The rebuild runs on a worker thread; the change fan-out runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from api.live.broker import BrokerSubscriber, Overlay
from api.live.view import LiveView, build_view, next_offline_moment
from ocpp_opendata.live import (
    LIVE_PREFIX,
    ChargerState,
    Snapshot,
    merge_snapshots,
    snapshot_from_bytes,
)
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store
from ocpp_opendata.registry import RegistryError, RegistryStation, load_registry

log = logging.getLogger(__name__)

RING_EVENTS = 20_000  # changes kept for Last-Event-ID resumption (minutes at 100 changes/s)
SUBSCRIBER_BACKLOG = 256  # batches a slow subscriber may lag before it is dropped (it resumes by id)
REMOTE_POLL_FLOOR = 1.0  # s: a store LIST is a request, not a stat


@dataclass(frozen=True)
class Change:
    seq: int
    frame: bytes  # the encoded SSE event


def status_rows(view: LiveView) -> list[dict[str, Any]]:
    """Every public EVSE's status row, from the locations' memos (rebuilt only for changed locations)."""
    rows: list[dict[str, Any]] = []
    for loc in view.locations:
        rows.extend(loc.memoized("status-rows", lambda loc=loc: [status_row(loc, e) for e in loc.evses]))
    return rows


def status_row(loc: Any, evse: Any) -> dict[str, Any]:
    """One EVSE's public live status: what /v1/live/status and /v1/live/changes carry."""
    st = loc.station
    return {
        "station_id": st.station_id,
        "name": st.name,
        "latitude": st.latitude,
        "longitude": st.longitude,
        "evse_uid": evse.uid,
        "evse_id": evse.evse_id,
        "connector": evse.number,
        "status": evse.status,
        "datex_status": evse.datex,
        "since": evse.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class LiveSource:
    def __init__(
        self,
        data_dir: Path,
        registry_path: Path,
        poll: float,
        offline_after: float | None,
        default_heartbeat: int,
        store: Store | None = None,
        broker: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.registry_path = registry_path
        self.offline_after = offline_after
        self.default_heartbeat = default_heartbeat
        self.store = store if store is not None and store.is_remote else None
        self.poll = max(poll, REMOTE_POLL_FLOOR) if self.store else poll
        # Event ids are "<boot>-<seq>": an id from an earlier process (or another worker) is recognised
        # as foreign and answered with a fresh snapshot instead of a wrong replay.
        self.boot = secrets.token_hex(4)
        self.seq = 0
        self.ring: deque[Change] = deque(maxlen=RING_EVENTS)
        self.subscribers: set[asyncio.Queue[bytes | None]] = set()
        self._snap_sig: tuple[Any, ...] | None = None
        self._reg_sig: tuple[int, int] | None = None
        self._snapshots: list[Snapshot] = []
        self._snap_files: dict[str, tuple[Any, Snapshot]] = {}
        self._offline_memo: dict[str, tuple[ChargerState, datetime | None]] = {}
        # Redis (--operator-broker): status events applied on top of the snapshots, waking the refresh.
        self.overlay = Overlay()
        self._wake: asyncio.Event | None = None
        self._broker = BrokerSubscriber(broker, self.overlay, self._woken) if broker else None
        self._registry: dict[str, RegistryStation] = {}
        self._static_since = datetime.fromtimestamp(0, UTC)
        self._wake_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self.closing = False
        self.view = LiveView(built_at=datetime.now(UTC), static_since=self._static_since, locations=())
        self.refresh()

    # -- reading -------------------------------------------------------------------------------------

    def _snapshot_signature(self) -> tuple[Any, ...]:
        if self.store is not None:
            return tuple((o.key, o.size, o.mtime_ns) for o in self.store.list(LIVE_PREFIX + "/"))
        directory = self.data_dir / LIVE_PREFIX
        try:
            entries = [e for e in os.scandir(directory) if e.name.endswith(".json") and e.is_file()]
        except FileNotFoundError:
            return ()
        sig = []
        for entry in sorted(entries, key=lambda e: e.name):
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat()
                sig.append((entry.name, st.st_size, st.st_mtime_ns))
        return tuple(sig)

    def _read_snapshots(self, sig: tuple[Any, ...]) -> list[Snapshot]:
        out, kept = [], {}
        for item in sig:
            # A file whose key, size and mtime are unchanged is not read again: with several listener
            # processes (or a large one that changes rarely) only the changed snapshot is parsed.
            cached = self._snap_files.get(item[0])
            if cached is not None and cached[0] == item:
                out.append(cached[1])
                kept[item[0]] = cached
                continue
            try:
                if self.store is not None:
                    data = self.store.read_bytes(item[0])
                else:
                    data = (self.data_dir / LIVE_PREFIX / item[0]).read_bytes()
                snapshot = snapshot_from_bytes(data)
                out.append(snapshot)
                kept[item[0]] = (item, snapshot)
            except (OSError, ValueError, TypeError, KeyError) as exc:
                # A writer that is new, or of another format: skipped, and said once per change.
                log.warning(
                    "live snapshot skipped", extra=fields(snapshot=str(item[0]), error=str(exc)[:200])
                )
        self._snap_files = kept
        return out

    def _read_registry(self) -> bool:
        try:
            st = self.registry_path.stat()
            sig = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            sig = (0, 0)
        if sig == self._reg_sig:
            return False
        self._reg_sig = sig
        try:
            self._registry = load_registry(self.registry_path)
        except (RegistryError, OSError) as exc:
            # Keep serving the last good registry rather than publishing nothing (or everything).
            log.error(
                "station registry unreadable; live feeds keep the previous one", extra=fields(error=str(exc))
            )
            return False
        self._static_since = datetime.fromtimestamp(sig[0] / 1e9, UTC)
        return True

    # -- rebuilding ----------------------------------------------------------------------------------

    def refresh(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Reread what changed and rebuild the view if needed; the public status changes it made."""
        now = now or datetime.now(UTC)
        changed = self._read_registry()
        sig = self._snapshot_signature()
        if sig != self._snap_sig:
            self._snap_sig = sig
            self._snapshots = self._read_snapshots(sig)
            changed = True
        if self.overlay.dirty:
            changed = True
        if not changed and (self._wake_at is None or now < self._wake_at):
            return []
        chargers: dict[str, ChargerState] = self.overlay.apply(merge_snapshots(self._snapshots))
        view = build_view(
            self._registry,
            chargers,
            now,
            self._static_since,
            self.offline_after,
            self.default_heartbeat,
            previous=self.view,
        )
        self._wake_at = view.wake_at = next_offline_moment(
            self._registry, chargers, now, self.offline_after, self.default_heartbeat, self._offline_memo
        )
        if view.same_as(self.view):
            self.view.inputs, self.view.sources, self.view.wake_at = view.inputs, view.sources, view.wake_at
            return []
        before = self.view
        view.version = before.version + 1
        self.view = view
        # Only locations that are new objects can hold a change.
        changed = [loc for loc in view.locations if before.by_id.get(loc.station.station_id) is not loc]
        old = {
            evse.uid: evse.status
            for loc in changed
            for evse in getattr(before.by_id.get(loc.station.station_id), "evses", ())
        }
        return [
            status_row(loc, evse) for loc in changed for evse in loc.evses if old.get(evse.uid) != evse.status
        ]

    # -- change stream -------------------------------------------------------------------------------

    def event_id(self, seq: int | None = None) -> str:
        return f"{self.boot}-{self.seq if seq is None else seq}"

    def publish(self, rows: list[dict[str, Any]]) -> None:
        """Number the changes, keep them for resumption and hand one batch to every subscriber."""
        if not rows:
            return
        frames = []
        for row in rows:
            self.seq += 1
            frame = b"id: %s\nevent: status\ndata: %s\n\n" % (self.event_id().encode(), orjson.dumps(row))
            self.ring.append(Change(self.seq, frame))
            frames.append(frame)
        batch = b"".join(frames)
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(batch)
            except asyncio.QueueFull:
                # Too slow: dropped; the client reconnects with Last-Event-ID and catches up.
                self.subscribers.discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    def snapshot_frame(self) -> bytes:
        rows = status_rows(self.view)
        return b"id: %s\nevent: snapshot\ndata: %s\n\n" % (self.event_id().encode(), orjson.dumps(rows))

    def replay_since(self, last_event_id: str | None) -> bytes | None:
        """The changes after `last_event_id`, or None when they cannot be replayed (then: a snapshot)."""
        if not last_event_id:
            return None
        boot, _, seq_text = last_event_id.strip().partition("-")
        if boot != self.boot or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        if seq > self.seq:
            return None
        oldest = self.ring[0].seq if self.ring else self.seq + 1
        if seq < oldest - 1:
            return None
        return b"".join(c.frame for c in self.ring if c.seq > seq)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.subscribers.discard(queue)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _woken(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            # A broker event ends the wait at once; otherwise the next poll of the snapshots.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()
            try:
                rows = await asyncio.to_thread(self.refresh)
            except Exception:
                log.exception("live refresh failed")
                continue
            self.publish(rows)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self._broker is not None:
            self._broker.start()
        self._watch_signals()

    def _watch_signals(self) -> None:
        """End the SSE streams when the server is asked to stop.

        uvicorn waits for every open response before it shuts the application down, and an event
        stream never ends by itself; so the termination signal also sets `closing`, which each stream
        checks every second, before uvicorn's own handler runs.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.closing = True
                if callable(previous):
                    previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (an embedded server): streams end at stop()
                return

    async def stop(self) -> None:
        self.closing = True
        if self._broker is not None:
            await self._broker.stop()
        for queue in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
