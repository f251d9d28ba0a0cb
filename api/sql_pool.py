"""The SQL endpoint's worker processes: a small pool, each worker killed and replaced when it is late.

Every /v1/sql query runs in one of `max_in_flight` processes of `api.sql_worker` (started from a fork
server that has DuckDB and pyarrow imported, so a replacement is ready in tens of milliseconds, and no
process is spawned per query). The API process only waits on a pipe: a query that outlives its time limit
(DuckDB's interrupt does not reach planning or some list functions) is ended by SIGKILL of its worker
`KILL_GRACE` seconds after the limit, and a worker that dies for want of memory is replaced the same way;
the client gets a 400 either way, and the rest of the API never shares a core or an address space with the
query. `close()` kills every worker at once: the server's shutdown never waits for a query.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pyarrow as pa

from api import sql_worker
from api.errors import ApiError
from api.sql_guard import SqlLimits
from ocpp_opendata.logs import fields

log = logging.getLogger(__name__)

# A query arriving while every worker is busy waits this long for one before it is refused (429):
# short queries then queue for a moment instead of failing, heavy ones still cannot pile up.
SLOT_WAIT_SECONDS = 0.1
# The worker interrupts its own query at the time limit; it is killed if no answer came this much later.
KILL_GRACE = 0.5
START_TIMEOUT = 30.0
RESPAWN_PAUSE = 1.0

_context_lock = threading.Lock()


def _context() -> Any:
    """The fork server: a clean process (not a fork of the threaded API) with the worker's imports done."""
    with _context_lock:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["api.sql_worker"])
        return ctx


@dataclass
class _Proc:
    process: Any
    conn: Connection
    pid: int
    memory_cap: int


@dataclass
class SqlResult:
    table: pa.Table
    truncated: bool
    elapsed: float


@dataclass
class SqlPool:
    """Worker processes shared by every open release (each worker keeps a few catalogues open)."""

    limits: SqlLimits
    _idle: queue.Queue[_Proc] = field(default_factory=queue.Queue)
    _all: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _procs: dict[int, _Proc] = field(default_factory=dict)
    _started: bool = False
    _closed: bool = False
    kills: int = 0

    def start(self) -> None:
        with self._lock:
            if self._started or self._closed:
                return
            self._started = True
        for _ in range(self.limits.max_in_flight):
            threading.Thread(target=self._spawn, name="sql-worker-start", daemon=True).start()

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._procs)

    def run(self, catalog: Path, query: str) -> SqlResult:
        if self._closed:
            raise ApiError(503, "the server is shutting down", {"Retry-After": "5"})
        self.start()
        try:
            proc = self._idle.get(timeout=SLOT_WAIT_SECONDS if self._warm() else START_TIMEOUT)
        except queue.Empty:
            raise ApiError(
                429,
                f"too many SQL queries in flight (at most {self.limits.max_in_flight}); retry shortly",
                {"Retry-After": "1"},
            ) from None
        healthy = False
        try:
            outcome, healthy = self._ask(proc, str(catalog), query)
        finally:
            if healthy:
                self._idle.put(proc)
            else:
                self._replace(proc)
        if isinstance(outcome, ApiError):
            raise outcome
        return outcome

    def _warm(self) -> bool:
        with self._lock:
            return bool(self._procs)

    def _ask(self, proc: _Proc, catalog: str, query: str) -> tuple[SqlResult | ApiError, bool]:
        """The answer or the worker's refusal, and whether the worker may serve again; raises when the
        worker is gone or late."""
        limits = self.limits
        try:
            proc.conn.send((catalog, query))
            if not proc.conn.poll(limits.time_limit + KILL_GRACE):
                self.kills += 1
                raise ApiError(
                    400, f"query exceeded the time limit of {limits.time_limit:g} s and was stopped"
                )
            header = proc.conn.recv()
            if header[0] == "error":
                return ApiError(int(header[1]), str(header[2])), header[-1] != "replace"
            body = proc.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            if self._closed:
                raise ApiError(503, "the server is shutting down", {"Retry-After": "5"}) from exc
            # The OS ended the worker: in practice its address-space limit (an allocation DuckDB could
            # not turn into an error).
            raise ApiError(
                400, f"query needs more memory than the SQL endpoint's limit ({limits.memory_limit})"
            ) from exc
        table = pa.ipc.open_stream(body).read_all()
        return SqlResult(table, bool(header[1]), float(header[2])), True

    def _replace(self, proc: _Proc) -> None:
        self._kill(proc)
        if not self._closed:
            threading.Thread(target=self._spawn, name="sql-worker-start", daemon=True).start()

    def _kill(self, proc: _Proc) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.conn.close()
        proc.process.join(5)

    def _spawn(self) -> None:
        while not self._closed:
            try:
                proc = self._start_one()
            except Exception as exc:  # logged and retried: the endpoint answers 429 meanwhile
                log.error("sql worker failed to start", extra=fields(error=repr(exc)[:300]))
                time.sleep(RESPAWN_PAUSE)
                continue
            with self._lock:
                if self._closed:
                    os.kill(proc.pid, signal.SIGKILL)
                    return
                self._procs[proc.pid] = proc
            self._idle.put(proc)
            return

    def _start_one(self) -> _Proc:
        ctx = _context()
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=sql_worker.main, args=(child, self.limits), name="sql-worker", daemon=True
        )
        process.start()
        child.close()
        if not parent.poll(START_TIMEOUT):
            process.kill()
            raise RuntimeError("sql worker did not start")
        hello = parent.recv()
        if hello[0] != "ready":
            process.join(5)
            raise RuntimeError(f"sql worker failed: {hello[1:]}")
        return _Proc(process, parent, int(hello[1]), int(hello[2]))

    def close(self) -> None:
        """Kill every worker now (safe from a signal handler: no waiting)."""
        with self._lock:
            self._closed = True
            procs = list(self._procs.values())
            self._procs.clear()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


class SqlEngine:
    """One release's view of the pool: its catalogue file and the published tables' names."""

    def __init__(self, catalog: Path, limits: SqlLimits, pool: SqlPool | None = None) -> None:
        self.catalog = catalog
        self.limits = limits
        self._own = pool is None
        self.pool = pool if pool is not None else SqlPool(limits)

    def run(self, query: str) -> SqlResult:
        return self.pool.run(self.catalog, query)

    def close(self) -> None:
        if self._own:
            self.pool.close()
