"""Uploads rolled Parquet files from the local outbox to the object store, off the ack path.

With an `s3://` store the listener rolls WAL segments into `DATA_DIR/outbox/raw/...` exactly as it
would into the raw zone, and this uploader copies each file to the same key in the store
(`raw/<table>/date=.../<instance>-<segment>.parquet`). The local copy is deleted only once a HEAD of
the object reports the full size, so a file is never only in flight. While the store is down the
uploader retries with exponential back-off and jitter (so that many listeners coming back do not hit
the store in step, https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), and the
backlog grows on local disk until the listener's local cap stops acknowledgements.

The outbox is the uploader's only state: it scans the folder instead of keeping a queue, so files left
by a killed process (or recovered from its WAL) are uploaded at the next start like any other. Names
depend only on the WAL segment, so uploading a file twice overwrites an object with the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, StoreError

log = logging.getLogger("ingest.uploader")

BACKOFF_BASE_SECONDS = 0.5
LAG_SAMPLES = 10_000  # recent upload lags kept for the p50/p99 in /metrics


@dataclass(frozen=True)
class Backlog:
    files: int
    bytes: int
    oldest_seconds: float


@dataclass(frozen=True)
class UploadStats:
    """What /metrics and /health show about uploads."""

    backlog: Backlog
    uploaded_files: int
    uploaded_bytes: int
    failures: int
    consecutive_failures: int
    last_error: str | None
    lag_count: int
    lag_sum: float
    lag_max: float
    lag_p50: float
    lag_p99: float


def backoff_seconds(failures: int, cap: float, base: float = BACKOFF_BASE_SECONDS) -> float:
    """Exponential back-off with 'equal jitter': half the step fixed, half random."""
    step = min(cap, base * 2 ** min(failures - 1, 30))
    return step / 2 + random.uniform(0, step / 2)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Uploader:
    def __init__(self, store: Store, outbox: Path, *, backoff_max: float, drain_seconds: float) -> None:
        self.store = store
        self.outbox = outbox
        self.backoff_max = backoff_max
        self.drain_seconds = drain_seconds
        self._backlog = Backlog(0, 0, 0.0)
        self._mtimes: deque[float] = deque()  # of the files awaiting upload, oldest first
        self.uploaded_files = 0
        self.uploaded_bytes = 0
        self.failures = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self._lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        self._lag_count = 0
        self._lag_sum = 0.0
        self._lag_max = 0.0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Its own threads: a close that gives up on a hung upload must not block the loop's default pool.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uploader")

    @property
    def backlog_bytes(self) -> int:
        return self._backlog.bytes

    def backlog(self) -> Backlog:
        try:
            oldest = max(0.0, time.time() - self._mtimes[0])
        except IndexError:
            oldest = 0.0
        return Backlog(self._backlog.files, self._backlog.bytes, oldest)

    def stats(self) -> UploadStats:
        lags = list(self._lags)
        return UploadStats(
            backlog=self.backlog(),
            uploaded_files=self.uploaded_files,
            uploaded_bytes=self.uploaded_bytes,
            failures=self.failures,
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
            lag_count=self._lag_count,
            lag_sum=self._lag_sum,
            lag_max=self._lag_max,
            lag_p50=_quantile(lags, 0.5),
            lag_p99=_quantile(lags, 0.99),
        )

    def start(self) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name="uploader")

    def wake(self) -> None:
        """A roll put new files into the outbox."""
        self._wakeup.set()

    async def close(self) -> None:
        """Upload what is left for up to `drain_seconds`; the rest waits in the outbox for the next start."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.drain_seconds)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                backlog = self.backlog()
                log.warning(
                    "uploads left for the next start",
                    extra=fields(files=backlog.files, bytes=backlog.bytes, outbox=str(self.outbox)),
                )
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            files = await loop.run_in_executor(self._executor, self._scan)
            if not files:
                if self._closing:
                    return
                await self._wakeup.wait()
                continue
            for path, size, mtime in files:
                try:
                    await loop.run_in_executor(self._executor, self._upload, path, size, mtime)
                except StoreError as exc:
                    await self._failed(str(exc))
                    break
                except Exception as exc:  # an unexpected failure must not end uploads for good
                    log.exception("upload failed unexpectedly; retrying", extra=fields(file=str(path)))
                    await self._failed(f"{type(exc).__name__}: {exc}")
                    break
                else:
                    if self.consecutive_failures:
                        after = self.consecutive_failures
                        log.info("object store reachable again", extra=fields(failed_attempts=after))
                    self.consecutive_failures = 0
                    self.last_error = None

    async def _failed(self, error: str) -> None:
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = error
        delay = backoff_seconds(self.consecutive_failures, self.backoff_max)
        backlog = self.backlog()
        log.warning(
            "upload failed; retrying",
            extra=fields(
                error=error, retry_in=round(delay, 2), attempt=self.consecutive_failures,
                backlog_files=backlog.files, backlog_bytes=backlog.bytes,
            ),
        )  # fmt: skip
        # New rolls must not cut the back-off short (they would hammer a store that is down), but their
        # files must count towards the backlog at once, or the local cap would be checked against a
        # stale figure for the whole back-off.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)
            if self._wakeup.is_set():
                self._wakeup.clear()
                await loop.run_in_executor(self._executor, self._scan)

    def _scan(self) -> list[tuple[Path, int, float]]:
        """Outbox files, oldest first; temporary files of a roll in progress are not listed."""
        found = []
        for path in self.outbox.rglob("*.parquet"):
            if path.name.startswith("."):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:  # uploaded by another process sharing this DATA_DIR
                continue
            found.append((path, st.st_size, st.st_mtime))
        found.sort(key=lambda item: (item[2], str(item[0])))
        self._backlog = Backlog(len(found), sum(size for _, size, _ in found), 0.0)
        self._mtimes = deque(mtime for _, _, mtime in found)
        return found

    def _upload(self, path: Path, size: int, mtime: float) -> None:
        key = path.relative_to(self.outbox).as_posix()
        try:
            self.store.put_file(path, key)
        except StoreError:
            if not path.exists():  # another listener sharing this DATA_DIR uploaded and deleted it
                self._forget(size)
                return
            raise
        info = self.store.info(key)
        if info is None or info.size != size:
            seen = "missing" if info is None else f"{info.size} bytes"
            raise StoreError(f"upload of {key} not confirmed: expected {size} bytes, store has {seen}")
        path.unlink(missing_ok=True)
        lag = max(0.0, time.time() - mtime)
        self._forget(size)
        self.uploaded_files += 1
        self.uploaded_bytes += size
        self._lags.append(lag)
        self._lag_count += 1
        self._lag_sum += lag
        self._lag_max = max(self._lag_max, lag)
        log.debug("uploaded", extra=fields(key=key, bytes=size, lag=round(lag, 3)))

    def _forget(self, size: int) -> None:
        with contextlib.suppress(IndexError):
            self._mtimes.popleft()
        self._backlog = Backlog(max(0, self._backlog.files - 1), max(0, self._backlog.bytes - size), 0.0)
