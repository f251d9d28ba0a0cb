"""Store-and-forward state: CALLs answered locally while the CSMS was away, and 1.6 id mappings.

SQLite in the state folder, `synchronous=FULL`: an entry is durable before the charger gets its
local answer, so a `kill -9` loses nothing the charger was told was accepted. Per charger, entries
are forwarded in the order they were received.

1.6 transaction ids answered locally come from their own range (LOCAL_BASE and up) so they never
collide with the CSMS's ids; once the CSMS has answered the forwarded StartTransaction, the mapping
local → CSMS id rewrites the charger's later frames for the CSMS (and back for RemoteStop).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCAL_BASE = 2_000_000_000  # local 1.6 transaction ids: 2e9 … 2^31-1, far above what CSMSs assign

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queued (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_point_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    version TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    action TEXT NOT NULL,
    text TEXT NOT NULL,
    validation_error TEXT,
    local_id INTEGER
);
CREATE INDEX IF NOT EXISTS queued_by_charger ON queued (charge_point_id, id);
CREATE TABLE IF NOT EXISTS local_ids (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_point_id TEXT NOT NULL,
    start_key TEXT NOT NULL UNIQUE,
    csms_id INTEGER
);
INSERT OR IGNORE INTO sqlite_sequence (name, seq) SELECT 'local_ids', {base}
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'local_ids');
"""


@dataclass(frozen=True)
class Queued:
    id: int
    charge_point_id: str
    connection_id: str
    version: str
    seq: int
    received_at: int
    action: str
    text: str
    validation_error: str | None
    local_id: int | None = None  # the 1.6 transaction id a queued StartTransaction was answered with


class ForwardQueue:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            state_dir / "proxy_queue.sqlite", timeout=30, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # sqlite_sequence exists only once a table with AUTOINCREMENT does: create tables first.
        script = _SCHEMA.format(base=LOCAL_BASE - 1)
        self._db.executescript(script)
        self._mapping: dict[tuple[str, int], int] = {}
        self._reverse: dict[tuple[str, int], int] = {}
        for cp, local, csms in self._db.execute(
            "SELECT charge_point_id, local_id, csms_id FROM local_ids WHERE csms_id IS NOT NULL"
        ):
            self._remember(cp, local, csms)

    def _remember(self, cp: str, local: int, csms: int) -> None:
        self._mapping[(cp, local)] = csms
        self._reverse[(cp, csms)] = local

    # --- queue -----------------------------------------------------------------------------------

    def _put(self, item: Queued) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO queued (charge_point_id, connection_id, version, seq, received_at, action, text,"
                " validation_error, local_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.charge_point_id, item.connection_id, item.version, item.seq, item.received_at,
                 item.action, item.text, item.validation_error, item.local_id),
            )  # fmt: skip

    async def put(self, item: Queued) -> None:
        await asyncio.to_thread(self._put, item)

    def _head(self, cp: str) -> Queued | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM queued WHERE charge_point_id = ? ORDER BY id LIMIT 1", (cp,)
            ).fetchone()
        return None if row is None else Queued(*row)

    async def head(self, cp: str) -> Queued | None:
        return await asyncio.to_thread(self._head, cp)

    def _done(self, item_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM queued WHERE id = ?", (item_id,))

    async def done(self, item_id: int) -> None:
        await asyncio.to_thread(self._done, item_id)

    def _pending(self, cp: str) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT count(*) FROM queued WHERE charge_point_id = ?", (cp,)
            ).fetchone()[0]

    async def pending(self, cp: str) -> int:
        return await asyncio.to_thread(self._pending, cp)

    # --- local 1.6 transaction ids (the TransactionIds interface the Responder uses) ---------------

    def _assign(self, key: tuple[Any, ...]) -> tuple[int, bool]:
        start_key = repr(key)
        with self._lock:
            row = self._db.execute(
                "SELECT local_id FROM local_ids WHERE start_key = ?", (start_key,)
            ).fetchone()
            if row:
                return row[0], True
            cur = self._db.execute(
                "INSERT INTO local_ids (charge_point_id, start_key) VALUES (?, ?)", (key[0], start_key)
            )
        assert cur.lastrowid is not None
        return cur.lastrowid, False

    async def assign(self, key: tuple[Any, ...]) -> tuple[int, bool]:
        return await asyncio.to_thread(self._assign, key)

    async def exists(self, charge_point_id: str, transaction_id: int) -> bool:
        return (
            self.is_local(charge_point_id, transaction_id)
            or self.local_id(charge_point_id, transaction_id) is not None
        )

    def is_local(self, charge_point_id: str, transaction_id: int) -> bool:
        return transaction_id >= LOCAL_BASE

    def _map(self, cp: str, local: int, csms: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE local_ids SET csms_id = ? WHERE local_id = ? AND charge_point_id = ?",
                (csms, local, cp),
            )
        self._remember(cp, local, csms)

    async def map(self, cp: str, local: int, csms: int) -> None:
        await asyncio.to_thread(self._map, cp, local, csms)

    # Several listener processes behind one port (--reuse-port) share this database, and a charger may
    # reconnect to another one than the process that learnt its mapping: a miss asks the database.
    # Misses are rare (only ids this proxy answered locally, or a CSMS RemoteStop), so the hot path
    # stays a dict lookup.

    def csms_id(self, cp: str, local: int) -> int | None:
        found = self._mapping.get((cp, local))
        if found is None:
            found = self._lookup("SELECT local_id, csms_id FROM local_ids WHERE charge_point_id = ?"
                                 " AND local_id = ? AND csms_id IS NOT NULL", cp, local, 1)  # fmt: skip
        return found

    def local_id(self, cp: str, csms: int) -> int | None:
        found = self._reverse.get((cp, csms))
        if found is None:
            found = self._lookup("SELECT local_id, csms_id FROM local_ids WHERE charge_point_id = ?"
                                 " AND csms_id = ?", cp, csms, 0)  # fmt: skip
        return found

    def _lookup(self, sql: str, cp: str, value: int, column: int) -> int | None:
        with self._lock:
            row = self._db.execute(sql, (cp, value)).fetchone()
        if row is None:
            return None
        self._remember(cp, row[0], row[1])
        return row[column]

    def close(self) -> None:
        self._db.close()
