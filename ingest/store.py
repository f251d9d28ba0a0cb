"""Durable storage for the listener: group-committed WAL on the ack path, Parquet rolls off it.

`commit(record)` returns once the record is fsync'd. Records that arrive while an fsync is in
flight form the next batch, so one fsync serves many chargers (group commit) and durability costs
little throughput. Every `roll_seconds` (or `roll_bytes` of WAL) the current segment is closed
between two batches and rolled into Parquet by a worker process, exactly as crash recovery rolls
an orphaned segment; the segment file is deleted only after its Parquet files are durable. The
worker keeps the CPU-heavy roll off the event loop's GIL (it used to add ~100 ms to p99 acks).

With an `s3://` store (docs/object-store.md) segments roll into a local outbox instead of the raw
zone, and an `Uploader` moves the files to the store; the WAL stays local and fsync'd, so an ack never
waits for the network. The disk cap then covers WAL plus outbox: while the store is down the
backlog grows, and past `max_local_bytes` nothing more is acknowledged until uploads drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.metrics import Metrics
from ingest.sink import roll_segment, write_records
from ingest.txids import check_state_url
from ingest.uploader import Uploader
from ingest.wal import ClosedSegment, WriteAheadLog, encode, host_id, orphaned_folders, read_segment
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import StoreError, open_store
from ocpp_opendata.settings import Settings

log = logging.getLogger("ingest.store")
ROLL_WORKER_NICENESS = 10
ORPHAN_CHECK_SECONDS = 1.0
LOG_FLUSH_SECONDS = 0.02  # longest a logged record waits for a batch to ride with


def _roll_worker_setup() -> None:
    """Prepare the roll worker process: a lower priority, and an end when the listener is gone.

    Lower priority: rolling can wait a little, acknowledgements cannot; on a busy machine the kernel
    then gives the event loop's process the CPU first. The watchdog: a worker of a listener killed with
    `kill -9` would otherwise wait on its task queue for ever (the next start recovers the WAL itself).
    """
    with contextlib.suppress(OSError):
        os.nice(ROLL_WORKER_NICENESS)
    parent = os.getppid()

    def exit_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, name="orphan-watchdog", daemon=True).start()
    gc.freeze()  # what the imports built lives as long as the worker: no collection need walk it


def _roll_segment_in_worker(segment: str, raw_root: str, name: str) -> dict[str, int]:
    """roll_segment without the cyclic collector: a roll builds ~100,000 acyclic dicts and lists
    (freed by reference counting when it returns), and the full collections their number triggered
    walked them all, 70-170 ms of CPU each (~15 % of the worker's CPU, taken from the listener's
    cores). Whatever cycles a roll leaves are collected once it is done."""
    gc.disable()
    try:
        return roll_segment(segment, raw_root, name)
    finally:
        gc.enable()


def _roll_worker_pid() -> int:
    """Nothing to do: submitted at start so the worker is spawned and set up before any load."""
    return os.getpid()


OUTBOX = "outbox"  # below DATA_DIR: rolled files awaiting upload to an s3 store, keyed as in the store


class StoreUnavailable(Exception):
    """The record could not be made durable (full disk, WAL cap): do not acknowledge it."""


def new_instance_id(host: str | None = None) -> str:
    """Sorts by start time; the random part keeps processes started in the same second apart, the host
    part (one per WAL root, see `host_id`) keeps listeners on different machines apart for good."""
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    return f"{stamp}-{host}-{secrets.token_hex(4)}" if host else f"{stamp}-{secrets.token_hex(4)}"


def recover_orphans(wal_root: Path, raw_root: Path) -> Counter[str]:
    """Roll every segment left by dead listener processes into Parquet (idempotent)."""
    total: Counter[str] = Counter()
    for folder, segments in orphaned_folders(wal_root):
        for segment in segments:
            records = read_segment(segment)
            if records:
                total += write_records(records, raw_root, f"{folder.name}-{int(segment.stem):06d}")
            segment.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        log.info("recovered write-ahead log", extra=fields(folder=folder.name, segments=len(segments)))
    return total


class DurableStore:
    def __init__(
        self,
        wal_root: Path,
        raw_root: Path,
        metrics: Metrics,
        *,
        roll_seconds: float,
        roll_bytes: int,
        max_wal_bytes: int,
        uploader: Uploader | None = None,
        max_local_bytes: int | None = None,
    ) -> None:
        self.wal_root = wal_root
        self.raw_root = raw_root  # the raw zone, or with an uploader the outbox's raw folder
        self.metrics = metrics
        self.roll_seconds = roll_seconds
        self.roll_bytes = roll_bytes
        self.max_wal_bytes = max_wal_bytes
        self.uploader = uploader
        self.max_local_bytes = max_local_bytes
        self.instance_id = new_instance_id(host_id(wal_root))
        self.healthy = True
        self._refused_bytes = 0  # size of the last batch refused by a disk cap (0: none since)
        self._wal: WriteAheadLog | None = None
        self._pending: list[tuple[bytes, asyncio.Future[None] | None]] = []
        self._log_flush: asyncio.TimerHandle | None = None
        self._segment_started = time.monotonic()
        self._unrolled_bytes = 0  # WAL bytes on disk not yet rolled into Parquet
        self._wakeup = asyncio.Event()
        self._roll_queue: asyncio.Queue[ClosedSegment | None] = asyncio.Queue()
        self._pool: ProcessPoolExecutor | None = None
        self._worker_started: asyncio.Future[int] | None = None
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        recovered = await asyncio.to_thread(recover_orphans, self.wal_root, self.raw_root)
        for table, count in recovered.items():
            self.metrics.rows_written[table] += count
        self._wal = await asyncio.to_thread(WriteAheadLog, self.wal_root, self.instance_id)
        if self.uploader is not None:
            self.uploader.start()  # uploads what a previous process left in the outbox, too
        # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
        self._pool = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_roll_worker_setup
        )
        # Spawned lazily, the worker would start at the first roll, under load: the spawn blocks the
        # event loop ~10 ms and its imports take ~0.3 s of CPU from the loop; answers were up to
        # 120 ms late then (benchmarks/proxy.py). Started now, it gets ready while the listener does.
        self._worker_started = asyncio.wrap_future(self._pool.submit(_roll_worker_pid))
        self._tasks = [
            asyncio.create_task(self._writer(), name="wal-writer"),
            asyncio.create_task(self._roller(), name="parquet-roller"),
            asyncio.create_task(self._roll_timer(), name="roll-timer"),
        ]

    async def roll_worker_ready(self) -> None:
        """Wait until the roll worker process is up (awaited before the listener accepts connections)."""
        if self._worker_started is not None:
            await self._worker_started

    async def commit(self, record: dict[str, Any]) -> None:
        """Return once `record` is durable; raise StoreUnavailable if it cannot be."""
        if self._closing:
            raise StoreUnavailable("listener is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((encode(record), future))
        self.metrics.rows_buffered += 1
        self._wakeup.set()
        await future

    def log(self, record: dict[str, Any]) -> None:
        """Store `record` with the next batch without waiting (connection events, relayed answers).

        It does not start a batch of its own: it rides with the next commit, or is written by itself
        LOG_FLUSH_SECONDS later. In proxy mode every exchange logs the CSMS's answer; a batch each
        would double the fsyncs (measured at 1,000 exchanges/s: 1.15 fsyncs per exchange, now 0.5).
        """
        if not self._closing:
            self._pending.append((encode(record), None))
            if self._log_flush is None:
                self._log_flush = asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self._wakeup.set)

    @property
    def unrolled_bytes(self) -> int:
        return self._unrolled_bytes

    @property
    def local_bytes(self) -> int:
        """WAL not yet rolled plus rolled files not yet uploaded: what the local cap bounds."""
        return self._unrolled_bytes + (self.uploader.backlog_bytes if self.uploader is not None else 0)

    @property
    def over_cap(self) -> bool:
        """The last batch was refused by a disk cap and would still be refused now."""
        if not self._refused_bytes:
            return False
        if self._unrolled_bytes + self._refused_bytes > self.max_wal_bytes:
            return True
        cap = self.max_local_bytes
        return self.uploader is not None and cap is not None and self.local_bytes + self._refused_bytes > cap

    def health(self) -> tuple[str, bool]:
        """Status word for /health and whether the listener acknowledges (HTTP 200) or not (503)."""
        if not self.healthy:
            return "storage-failing", False
        if self.over_cap:
            return "over-local-disk-cap", False
        if self.uploader is not None and self.uploader.consecutive_failures:
            return "degraded", True  # acks go on; the backlog grows towards the cap
        return "ok", True

    def upload_status(self) -> dict[str, Any] | None:
        """Upload backlog for /health; None without an object store."""
        if self.uploader is None:
            return None
        stats = self.uploader.stats()
        return {
            "store": self.uploader.store.url,
            "backlog_files": stats.backlog.files,
            "backlog_bytes": stats.backlog.bytes,
            "oldest_seconds": round(stats.backlog.oldest_seconds, 3),
            "local_bytes": self.local_bytes,
            "local_max_bytes": self.max_local_bytes,
            "consecutive_failures": stats.consecutive_failures,
            "last_error": stats.last_error,
        }

    async def _writer(self) -> None:
        assert self._wal is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._pending:
                await self._write_batch()
            if self._roll_due():
                self._rotate()
            if self._closing and not self._pending:
                if self._wal.size:
                    self._rotate()
                await self._roll_queue.put(None)
                return

    async def _write_batch(self) -> None:
        assert self._wal is not None
        batch, self._pending = self._pending, []
        if self._log_flush is not None:
            self._log_flush.cancel()
            self._log_flush = None
        data = b"".join(item[0] for item in batch)
        if self._unrolled_bytes + len(data) > self.max_wal_bytes:
            self._refused_bytes = len(data)
            self._fail(batch, StoreUnavailable("write-ahead log is over its disk cap"))
            return
        cap = self.max_local_bytes
        if self.uploader is not None and cap is not None and self.local_bytes + len(data) > cap:
            self._refused_bytes = len(data)
            self._fail(batch, StoreUnavailable("local disk cap reached: uploads to the store are behind"))
            return
        self._refused_bytes = 0
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self._wal.write_batch, data)
        except Exception as exc:  # any failure: the batch is not durable, so it is not acknowledged
            self.healthy = False
            log.error("write-ahead log write failed; not acknowledging", extra=fields(error=str(exc)))
            self._fail(batch, StoreUnavailable(str(exc)))
            return
        self.healthy = True
        self.metrics.observe_fsync(time.perf_counter() - started)
        if self._wal.size == len(data):
            self._segment_started = time.monotonic()
        self._unrolled_bytes += len(data)
        for _, future in batch:
            if future is not None:
                self.metrics.rows_buffered -= 1
                if not future.done():
                    future.set_result(None)

    def _fail(self, batch: list[tuple[bytes, asyncio.Future[None] | None]], exc: Exception) -> None:
        for _, future in batch:
            if future is not None:
                self.metrics.rows_buffered -= 1
                if not future.done():
                    future.set_exception(exc)

    def _roll_due(self) -> bool:
        if self._wal is None or not self._wal.size:
            return False
        aged = time.monotonic() - self._segment_started >= self.roll_seconds
        return aged or self._wal.size >= self.roll_bytes

    def _rotate(self) -> None:
        assert self._wal is not None
        self._roll_queue.put_nowait(self._wal.rotate())

    async def _roll_timer(self) -> None:
        while not self._closing:
            await asyncio.sleep(min(0.5, self.roll_seconds / 2))
            if self._roll_due():
                self._wakeup.set()

    async def _roller(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            closed = await self._roll_queue.get()
            if closed is None:
                return
            name = f"{self.instance_id}-{closed.seq:06d}"
            while True:
                try:
                    written = await loop.run_in_executor(
                        self._pool, _roll_segment_in_worker, str(closed.path), str(self.raw_root), name
                    )
                    break
                except OSError as exc:
                    # The segment stays on disk, so nothing is lost; retry until the disk recovers.
                    log.error("rolling into Parquet failed; retrying", extra=fields(error=str(exc)))
                    await asyncio.sleep(1.0)
                except Exception:
                    # Not a disk problem, so retrying won't help: set the segment aside (never
                    # deleted) for an operator, and keep rolling the others.
                    log.exception("rolling into Parquet failed; segment kept", extra=fields(segment=name))
                    closed.path.rename(closed.path.with_suffix(".failed"))
                    written = {}
                    break
            self._unrolled_bytes -= closed.bytes
            for table, count in written.items():
                self.metrics.rows_written[table] += count
            self.metrics.rolls += 1
            if self.uploader is not None:
                self.uploader.wake()

    async def close(self) -> None:
        """Flush everything into Parquet and release the WAL folder (SIGTERM path)."""
        self._closing = True
        self._wakeup.set()
        writer, roller, timer = self._tasks
        await writer
        await roller
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        if self._wal is not None:
            await asyncio.to_thread(self._wal.close)
        if self._pool is not None:
            self._pool.shutdown()
        if self.uploader is not None:
            await self.uploader.close()


def check_storage(settings: Settings) -> None:
    """Refuse an unusable store or state URL before listening (ValueError with a message)."""
    try:
        open_store(settings.store, settings.data_dir)
    except StoreError as exc:
        raise ValueError(str(exc)) from exc
    check_state_url(settings.state_url)


def build_store(settings: Settings, metrics: Metrics) -> DurableStore:
    """The listener's DurableStore: rolls into DATA_DIR/raw, or for an s3 store into the outbox."""
    store = open_store(settings.store, settings.data_dir)
    uploader = None
    raw_root = settings.raw_dir
    if store.local_root is not None:
        if settings.store:
            raw_root = store.local_root / "raw"
    else:
        outbox = settings.data_dir / OUTBOX
        raw_root = outbox / "raw"
        uploader = Uploader(
            store,
            outbox,
            backoff_max=settings.upload_backoff_max,
            drain_seconds=settings.upload_drain_seconds,
        )
    return DurableStore(
        settings.effective_wal_dir,
        raw_root,
        metrics,
        roll_seconds=settings.roll_seconds,
        roll_bytes=settings.roll_bytes,
        max_wal_bytes=settings.wal_max_bytes,
        uploader=uploader,
        max_local_bytes=settings.local_max_bytes,
    )
