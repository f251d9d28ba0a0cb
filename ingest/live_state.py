"""The listener's live charger state: what each charger last said, kept in memory, written as a snapshot.

Built from what the listener already sees: connection open/close, BootNotification (vendor, model,
firmware), StatusNotification (1.6 and 2.0.1), TransactionEvent's chargingState, and every frame for
`last_seen`. The format is the contract in `ocpp_opendata/live.py`; the API's live feeds and the
operator API read it.

Off the hot path: a frame only updates a few dicts and, at the first change after a write, arms one
timer. The timer serializes the snapshot with orjson (well under a millisecond for a thousand
chargers, on the loop, so it sees one consistent state) and a thread writes the file: atomically, at
most once a second (`MIN_WRITE_INTERVAL`) and at most ~1 s after a change, never fsync'd (a snapshot
lost in a power cut is rebuilt by the chargers' next messages; the raw zone is the durable record).
With an object store the bytes go to the store too, from one background thread, throttled the same.

Restart: instance ids change with every start, so a listener adopts the snapshots that dead listener
processes of the same WAL root left in DATA_DIR/live (a dead process has no WAL folder any more once
`recover_orphans` has run), marks their chargers not connected, writes its own and deletes theirs.

Status changes also go to Redis (`--operator-broker`) as JSON on channel `ocpp-opendata:live`, from a
background task with a bounded queue: a slow or absent Redis never holds up an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ocpp_opendata.live import (
    LIVE_PREFIX,
    ChargerState,
    ConnectorState,
    Snapshot,
    snapshot_from_bytes,
    snapshot_key,
)
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, StoreError

log = logging.getLogger("ingest.live")

MIN_WRITE_INTERVAL = 1.0  # s between two snapshot writes (and two store puts)
DEBOUNCE = 0.05  # s a first change waits, so that a burst (boot + statuses) makes one write
LIVE_CHANNEL = "ocpp-opendata:live"
PUBLISH_QUEUE = 10_000  # status events waiting for Redis; beyond it the oldest are dropped

# Actions whose payload changes the state beyond last_seen.
_WATCHED = frozenset({"BootNotification", "StatusNotification", "TransactionEvent"})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class LiveState:
    def __init__(
        self,
        instance: str,
        data_dir: Path,
        *,
        heartbeat_interval: int | None = None,
        store: Store | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.instance = instance
        self.directory = data_dir / LIVE_PREFIX
        self.path = data_dir / snapshot_key(instance)
        self.heartbeat_interval = heartbeat_interval
        self.chargers: dict[str, ChargerState] = {}
        self._connectors: dict[str, dict[tuple[int, int], ConnectorState]] = {}
        self._transactions: dict[tuple[str, str], tuple[int, int]] = {}  # 2.0.1 txid → (evse, connector)
        self._connection: dict[str, str] = {}  # charge point id → its current connection id
        self._seen: dict[str, float] = {}  # last_seen as epoch seconds, formatted when written
        self._timer: asyncio.TimerHandle | None = None
        self._last_write = 0.0
        self._writes: set[asyncio.Task[None]] = set()
        self._write_lock = threading.Lock()
        self._generation = 0  # of the last serialized snapshot; an older one never replaces a newer
        self._written = 0
        self._uploader = _SnapshotUploader(store, snapshot_key(instance)) if store is not None else None
        self.publisher = publisher
        self.writes = 0

    # --- restart -----------------------------------------------------------------------------------

    def adopt_orphans(self, wal_root: Path) -> list[str]:
        """Take over the chargers of dead listener processes' snapshots (see the module docstring)."""
        adopted: list[str] = []
        for path in sorted(self.directory.glob("*.json")) if self.directory.exists() else []:
            instance = path.stem
            if instance == self.instance or (wal_root / instance).exists():
                continue  # our own, or a live listener's (it holds its WAL folder)
            try:
                snapshot = snapshot_from_bytes(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                continue
            for charger in snapshot.chargers:
                old = self.chargers.get(charger.charge_point_id)
                if old is not None and (old.last_seen or "") >= (charger.last_seen or ""):
                    continue
                charger.connected = False
                charger.connected_since = None
                self.chargers[charger.charge_point_id] = charger
                self._connectors[charger.charge_point_id] = {
                    (c.evse_id, c.connector_id): c for c in charger.connectors
                }
            adopted.append(instance)
        return adopted

    def forget_adopted(self, instances: list[str]) -> None:
        """Delete adopted snapshots once ours (holding their chargers) is written."""
        for instance in instances:
            (self.directory / f"{instance}.json").unlink(missing_ok=True)
            if self._uploader is not None:
                self._uploader.delete(snapshot_key(instance))

    # --- events from the listener (on the event loop; cheap and never raising) ---------------------

    def _charger(self, cp_id: str) -> ChargerState:
        charger = self.chargers.get(cp_id)
        if charger is None:
            charger = self.chargers[cp_id] = ChargerState(cp_id)
            self._connectors[cp_id] = {}
        return charger

    def connected(self, cp_id: str, connection_id: str, version: str) -> None:
        now = time.time()
        charger = self._charger(cp_id)
        charger.connected = True
        charger.connected_since = iso(now)
        charger.ocpp_version = version
        self._connection[cp_id] = connection_id
        self._seen[cp_id] = now
        self._publish_connection(charger, now)
        self._changed()

    def disconnected(self, cp_id: str, connection_id: str) -> None:
        if self._connection.get(cp_id) != connection_id:
            return  # a replaced connection closing: the newer one holds the charger
        del self._connection[cp_id]
        charger = self._charger(cp_id)
        charger.connected = False
        self._publish_connection(charger, time.time())
        self._changed()

    def frame(self, cp_id: str, action: str | None, payload: Any, version: str) -> None:
        """Any frame the charger sent that the listener stored (a CALL's action, or None)."""
        self._seen[cp_id] = time.time()
        if action in _WATCHED and isinstance(payload, dict):
            try:
                self._observe(cp_id, action, payload, version)
            except Exception:  # a lenient listener stores odd payloads; the state must not break on them
                log.exception("live state update failed", extra=fields(charge_point=cp_id, action=action))
        self._changed()

    def _observe(self, cp_id: str, action: str, payload: dict[str, Any], version: str) -> None:
        if action == "BootNotification":
            charger = self._charger(cp_id)
            station = payload.get("chargingStation")
            if isinstance(station, dict):  # 2.0.1
                charger.vendor = _text(station.get("vendorName"))
                charger.model = _text(station.get("model"))
                charger.firmware_version = _text(station.get("firmwareVersion"))
            else:
                charger.vendor = _text(payload.get("chargePointVendor"))
                charger.model = _text(payload.get("chargePointModel"))
                charger.firmware_version = _text(payload.get("firmwareVersion"))
            charger.heartbeat_interval = self.heartbeat_interval
        elif action == "StatusNotification":
            connector = _int(payload.get("connectorId"))
            if connector is None:
                return
            if "connectorStatus" in payload:  # 2.0.1
                evse = _int(payload.get("evseId"))
                if evse is None:
                    return
                self._set_status(cp_id, evse, connector, _text(payload.get("connectorStatus")), None)
            else:
                # 1.6 has no EVSE level: each connector is its own EVSE (connectorId 0 is the whole
                # charge point, kept as evse 0 / connector 0 exactly as reported).
                self._set_status(
                    cp_id, connector, connector, _text(payload.get("status")), _text(payload.get("errorCode"))
                )
        elif action == "TransactionEvent":
            self._transaction_event(cp_id, payload)

    def _transaction_event(self, cp_id: str, payload: dict[str, Any]) -> None:
        info = payload.get("transactionInfo")
        info = info if isinstance(info, dict) else {}
        txid = _text(info.get("transactionId"))
        evse = payload.get("evse")
        where: tuple[int, int] | None = None
        if isinstance(evse, dict) and _int(evse.get("id")) is not None:
            evse_id = _int(evse.get("id"))
            assert evse_id is not None
            connector = _int(evse.get("connectorId"))
            if connector is None:  # optional: the EVSE's only known connector, else 1
                known = [c for (e, c) in self._connectors.get(cp_id, {}) if e == evse_id]
                connector = known[0] if len(known) == 1 else 1
            where = (evse_id, connector)
        elif txid is not None:
            where = self._transactions.get((cp_id, txid))  # 2.0.1 sends evse only on the first event
        if where is None:
            return
        if txid is not None:
            if payload.get("eventType") == "Ended":
                self._transactions.pop((cp_id, txid), None)
            else:
                self._transactions[(cp_id, txid)] = where
        state = _text(info.get("chargingState"))
        if state is not None:
            self._set_status(cp_id, where[0], where[1], state, None)

    def _set_status(
        self, cp_id: str, evse: int, connector: int, status: str | None, error_code: str | None
    ) -> None:
        charger = self._charger(cp_id)
        connectors = self._connectors[cp_id]
        state = connectors.get((evse, connector))
        if state is None:
            state = connectors[(evse, connector)] = ConnectorState(evse, connector)
            charger.connectors.append(state)
            charger.connectors.sort(key=lambda c: (c.evse_id, c.connector_id))
        state.status = status
        state.error_code = error_code
        state.updated_at = iso(time.time())
        if self.publisher is not None:
            self.publisher.publish(
                {
                    "charge_point_id": cp_id,
                    "evse_id": evse,
                    "connector_id": connector,
                    "status": status,
                    "error_code": error_code,
                    "updated_at": state.updated_at,
                    "connected": charger.connected,
                }
            )

    def _publish_connection(self, charger: ChargerState, now: float) -> None:
        # A connection change is a change of every connector's reachability: one event for the charger.
        if self.publisher is not None:
            self.publisher.publish(
                {
                    "charge_point_id": charger.charge_point_id,
                    "evse_id": None,
                    "connector_id": None,
                    "status": None,
                    "error_code": None,
                    "updated_at": iso(now),
                    "connected": charger.connected,
                }
            )

    # --- writing -----------------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(DEBOUNCE, self._last_write + MIN_WRITE_INTERVAL - time.monotonic())
        self._timer = loop.call_later(delay, self._flush)

    def snapshot(self) -> Snapshot:
        for cp_id, seen in self._seen.items():
            charger = self.chargers.get(cp_id)
            if charger is not None:
                charger.last_seen = iso(seen)
        self._seen.clear()
        return Snapshot(self.instance, iso(time.time()), list(self.chargers.values()))

    def snapshot_bytes(self) -> bytes:
        # orjson serializes the dataclasses as `asdict` would (same keys, sorted): the contract's format.
        return orjson.dumps(self.snapshot(), option=orjson.OPT_SORT_KEYS)

    def _flush(self) -> None:
        self._timer = None
        self._last_write = time.monotonic()
        data = self.snapshot_bytes()
        self._generation += 1
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._write, data, self._generation))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _write(self, data: bytes, generation: int) -> None:
        with self._write_lock:
            if generation < self._written:
                return
            self._written = generation
            try:
                write_bytes_atomically(self.path, data)
                self.writes += 1
            except OSError as exc:
                log.warning("live snapshot not written", extra=fields(path=str(self.path), error=str(exc)))
            if self._uploader is not None:
                self._uploader.offer(data)

    async def start(self) -> None:
        if self._uploader is not None:
            self._uploader.start()
        if self.publisher is not None:
            await self.publisher.start()
        self._flush()
        await asyncio.gather(*self._writes)

    async def close(self) -> None:
        """Write the final snapshot (every charger disconnected by now) and stop the helpers."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        await asyncio.gather(*self._writes)
        if self._uploader is not None:
            await asyncio.to_thread(self._uploader.stop)
        if self.publisher is not None:
            await self.publisher.close()


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Readers see the old or the new file, never half of one; not fsync'd (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _SnapshotUploader:
    """Puts the newest snapshot to the object store from one thread, at most once a second.

    Only the latest bytes are kept: a store that is slow or down costs retries, never memory, and
    the next successful put carries the whole current state.
    """

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key
        self._latest: bytes | None = None
        self._deletes: list[str] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="live-snapshot-upload", daemon=True)
        self.puts = 0

    def start(self) -> None:
        self._thread.start()

    def offer(self, data: bytes) -> None:
        with self._cond:
            self._latest = data
            self._cond.notify()

    def delete(self, key: str) -> None:
        with self._cond:
            self._deletes.append(key)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        last = 0.0
        while True:
            with self._cond:
                while self._latest is None and not self._deletes and not self._stopping:
                    self._cond.wait()
                if self._latest is None and not self._deletes:
                    return
            time.sleep(max(0.0, last + MIN_WRITE_INTERVAL - time.monotonic()))
            with self._cond:
                data, self._latest = self._latest, None
                deletes, self._deletes = self._deletes, []
            last = time.monotonic()
            try:
                if data is not None:
                    self.store.write_bytes(self.key, data)
                    self.puts += 1
                for key in deletes:
                    self.store.delete(key)
            except StoreError as exc:
                log.warning("live snapshot not uploaded", extra=fields(key=self.key, error=str(exc)))
                with self._cond:
                    if self._latest is None:
                        self._latest = data  # retried with the next round unless newer bytes came
                    self._deletes = deletes + self._deletes
                    if self._stopping:
                        return
                time.sleep(MIN_WRITE_INTERVAL)


class Publisher:
    """Status events to Redis pub/sub, from a background task fed by a bounded queue."""

    def __init__(self, url: str, channel: str = LIVE_CHANNEL) -> None:
        self.url = url
        self.channel = channel
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(PUBLISH_QUEUE)
        self._task: asyncio.Task[None] | None = None
        self._redis: Any = None
        self.dropped = 0
        self.published = 0

    async def start(self) -> None:
        import redis.asyncio as aioredis  # only a listener with --operator-broker needs the client

        self._redis = aioredis.from_url(self.url, socket_connect_timeout=3, socket_timeout=5)
        self._task = asyncio.create_task(self._run(), name="live-publisher")

    def publish(self, event: dict[str, Any]) -> None:
        data = orjson.dumps(event)
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(data)

    async def _run(self) -> None:
        warned = 0.0
        while True:
            data = await self._queue.get()
            try:
                await self._redis.publish(self.channel, data)
                self.published += 1
            except Exception as exc:  # Redis down or unreachable: the snapshot still holds the state
                self.dropped += 1
                if time.monotonic() - warned > 10:
                    warned = time.monotonic()
                    log.warning("live event not published", extra=fields(broker=self.url, error=str(exc)))

    async def close(self) -> None:
        if self._task is not None:
            # Give queued events a moment to go out (the last disconnections of a shutdown).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    while not self._queue.empty():
                        await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
