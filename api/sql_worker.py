"""The process that runs one untrusted SELECT at a time for the SQL endpoint (started by `api.sql_pool`).

What DuckDB's own `memory_limit` and `interrupt()` do not bind (issue 20, items 1 and 2) the OS does
here: after start-up the process limits its address space (RLIMIT_AS) so that it can never grow past
`memory_limit` plus a small headroom, whatever builds lists or strings outside DuckDB's buffer manager;
and the pool kills it with SIGKILL when an answer is late, so that planning a huge join or a function
that never checks for interrupts cannot hold a core. A watchdog thread interrupts at the time limit
first, which ends most slow queries with a clean answer and keeps the process.

Messages over the pipe: the pool sends `(catalog_path, query)`; the worker answers
`("ok", truncated, elapsed)` followed by the Arrow IPC stream of the answer as raw bytes, or
`("error", status, message)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import threading
import time
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

import duckdb
import pyarrow as pa

from api.errors import ApiError, scrub_paths
from api.sql_guard import SqlLimits, check_statement

BATCH_ROWS = 1024
OPEN_CATALOGS = 2
# Address space beyond the configured limit: what start-up leaves unused, the answer's IPC copy, and the
# mappings of catalogues opened after a release swap (with 48 MiB, a plain count failed with an
# allocation error under swaps). Address space is not resident memory: most of it is never touched.
HEADROOM_BYTES = 160 * 1024 * 1024
# DuckDB's own limit, below the OS one, so that most big queries end with DuckDB's clear message.
DUCKDB_SHARE = 0.7
PR_SET_PDEATHSIG = 1


def parse_bytes(text: str) -> int:
    """'256MB', '1GiB', '512KB', '1000000' → bytes (DuckDB's memory_limit units, 1000- and 1024-based)."""
    raw = text.strip().upper().replace(" ", "")
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 10**3, "MB": 10**6,
             "GB": 10**9, "TB": 10**12, "K": 10**3, "M": 10**6, "G": 10**9, "B": 1}  # fmt: skip
    for unit, factor in units.items():
        if raw.endswith(unit):
            return int(float(raw[: -len(unit)]) * factor)
    return int(float(raw))


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _vm_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Watchdog(threading.Thread):
    """Interrupts the running query at its deadline (one thread for the process's life)."""

    def __init__(self) -> None:
        super().__init__(name="sql-watchdog", daemon=True)
        self._cv = threading.Condition()
        self._target: duckdb.DuckDBPyConnection | None = None
        self._deadline = 0.0

    def arm(self, con: duckdb.DuckDBPyConnection, seconds: float) -> None:
        with self._cv:
            self._target, self._deadline = con, time.monotonic() + seconds
            self._cv.notify()

    def disarm(self) -> None:
        with self._cv:
            self._target = None

    def run(self) -> None:
        with self._cv:
            while True:
                if self._target is None:
                    self._cv.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cv.wait(left)
                    continue
                self._target.interrupt()
                self._target = None


class Catalog:
    """One release's catalogue on a locked-down DuckDB instance of its own."""

    def __init__(self, path: str, limits: SqlLimits, duckdb_limit: int) -> None:
        con = duckdb.connect(
            ":memory:",
            config={
                "threads": str(limits.threads),
                "memory_limit": f"{max(duckdb_limit // 2**20, 16)}MiB",
                # No spilling to disk: a query that does not fit fails instead of filling the disk.
                "temp_directory": "",
            },
        )
        try:
            con.execute(f"ATTACH {_sql_string(path)} AS catalog (READ_ONLY)")
            con.execute("USE catalog")
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute(f"SET allowed_paths = [{_sql_string(path)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            self.tables = frozenset(
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'catalog'"
                ).fetchall()
            )
        except Exception:
            con.close()
            raise
        self.con = con


class Worker:
    def __init__(self, limits: SqlLimits) -> None:
        self.limits = limits
        self.watchdog = Watchdog()
        self.watchdog.start()
        budget = max(parse_bytes(limits.memory_limit) - _vm_bytes("VmRSS"), 32 * 2**20)
        self.duckdb_limit = int(budget * DUCKDB_SHARE)
        self.catalogs: OrderedDict[str, Catalog] = OrderedDict()
        # A first instance, closed again, maps what every instance needs (allocator arenas, the
        # thread pool), so that the limit below counts the queries, not start-up.
        duckdb.connect(":memory:", config={"threads": str(limits.threads)}).execute("SELECT 1").close()
        self.memory_cap = _vm_bytes("VmSize") + budget + HEADROOM_BYTES
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_cap, self.memory_cap))

    def catalog(self, path: str) -> Catalog:
        found = self.catalogs.get(path)
        if found is not None:
            self.catalogs.move_to_end(path)
            return found
        while len(self.catalogs) >= OPEN_CATALOGS:
            self.catalogs.popitem(last=False)[1].con.close()
        opened = Catalog(path, self.limits, self.duckdb_limit)
        self.catalogs[path] = opened
        return opened

    def answer(self, path: str, query: str) -> tuple[tuple[Any, ...], bytes | None]:
        try:
            catalog = self.catalog(path)
            cur = catalog.con.cursor()
            try:
                cur.execute("USE catalog")
                check_statement(cur, query, catalog.tables)
                return self._execute(cur, query)
            finally:
                cur.close()
        except ApiError as exc:
            return ("error", exc.status, exc.message), None
        except MemoryError:
            return self.out_of_memory(), None
        except duckdb.Error as exc:
            return ("error", 400, "query failed: " + scrub_paths(str(exc), query)[:500]), None

    def out_of_memory(self) -> tuple[Any, ...]:
        # An allocation that failed at the address-space limit can leave DuckDB's instance unusable
        # (measured: the next `SELECT 1` failed too), so the pool replaces this worker after answering.
        return ("error", 400, self.memory_message(), "replace")

    def memory_message(self) -> str:
        return f"query needs more memory than the SQL endpoint's limit ({self.limits.memory_limit})"

    def _execute(self, cur: duckdb.DuckDBPyConnection, query: str) -> tuple[tuple[Any, ...], bytes | None]:
        limits = self.limits
        started = time.monotonic()
        self.watchdog.arm(cur, limits.time_limit)
        try:
            reader = cur.sql(query).to_arrow_reader(BATCH_ROWS)
            batches: list[pa.RecordBatch] = []
            rows = size = 0
            truncated = False
            for batch in reader:
                if rows + batch.num_rows > limits.row_cap:
                    batch, truncated = batch.slice(0, limits.row_cap - rows), True
                size += batch.get_total_buffer_size()
                if size > limits.answer_bytes:
                    return ("error", 413, self.too_large_message()), None
                batches.append(batch)
                rows += batch.num_rows
                if truncated:
                    break
            schema = reader.schema
        except duckdb.InterruptException:
            return (
                "error",
                400,
                f"query exceeded the time limit of {limits.time_limit:g} s and was stopped",
            ), None
        except duckdb.OutOfMemoryException:
            return self.out_of_memory(), None
        except duckdb.PermissionException:
            return (
                "error",
                403,
                "file, network and extension access is disabled: query the published tables only",
            ), None
        except (pa.ArrowMemoryError, MemoryError):
            return self.out_of_memory(), None
        except OSError as exc:  # pyarrow reports a failed allocation of the reader as OSError
            if "memory" in str(exc).lower() or "allocat" in str(exc).lower():
                return self.out_of_memory(), None
            raise
        finally:
            self.watchdog.disarm()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        return ("ok", truncated, time.monotonic() - started), sink.getvalue().to_pybytes()

    def too_large_message(self) -> str:
        mb = self.limits.answer_bytes / 2**20
        return (
            f"the answer is larger than the SQL endpoint's limit of {mb:g} MiB: select fewer or narrower "
            "columns, aggregate, or download the dataset's Parquet file"
        )


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the API process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(conn: Connection, limits: SqlLimits) -> None:
    # Ctrl-C and SIGTERM are the API's to handle: it kills its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        worker = Worker(limits)
    except Exception as exc:  # reported to the pool, which logs it
        conn.send(("failed", repr(exc)[:500]))
        return
    try:
        conn.send(("ready", os.getpid(), worker.memory_cap))
    except OSError:
        return  # the pool stopped (the server is shutting down) while this worker started
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        header, body = worker.answer(*message)
        conn.send(header)
        if body is not None:
            conn.send_bytes(body)
