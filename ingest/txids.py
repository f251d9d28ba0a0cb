"""OCPP 1.6 transaction ids: positive int32, unique across restarts and listener processes.

SQLite (in the data root's state folder, on local disk) gives every process sharing the data root
one sequence and one memory of which start it already answered, so a retried StartTransaction
(same charger, connector, idTag, meterStart and timestamp, maybe on a new socket or another
process) gets the same id back. Starts are rare (one per session), so a synchronous commit per
start, run off the event loop, costs nothing that matters.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

INT32_MAX = 2**31 - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transaction_ids (
    transaction_id INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_point_id TEXT NOT NULL,
    start_key TEXT NOT NULL UNIQUE
);
"""


class TransactionIds:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "transaction_ids.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _assign(self, key: tuple[Any, ...]) -> tuple[int, bool]:
        start_key = repr(key)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT transaction_id FROM transaction_ids WHERE start_key = ?", (start_key,)
                ).fetchone()
                if row:
                    self._db.execute("COMMIT")
                    return row[0], True
                cur = self._db.execute(
                    "INSERT INTO transaction_ids (charge_point_id, start_key) VALUES (?, ?)",
                    (key[0], start_key),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        transaction_id = cur.lastrowid
        if transaction_id is None or transaction_id > INT32_MAX:
            raise OverflowError("OCPP 1.6 transaction ids are exhausted (int32)")
        return transaction_id, False

    def _exists(self, charge_point_id: str, transaction_id: int) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM transaction_ids WHERE transaction_id = ? AND charge_point_id = ?",
                (transaction_id, charge_point_id),
            ).fetchone()
        return row is not None

    async def assign(self, key: tuple[Any, ...]) -> tuple[int, bool]:
        """The transaction id for a start, and whether this start was seen before (a retry)."""
        return await asyncio.to_thread(self._assign, key)

    async def exists(self, charge_point_id: str, transaction_id: int) -> bool:
        return await asyncio.to_thread(self._exists, charge_point_id, transaction_id)

    def close(self) -> None:
        self._db.close()
