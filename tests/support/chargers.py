"""Charger clients for tests: the `ocpp` library's ChargePoint, and raw WebSocket frames."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import websockets
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v201 import ChargePoint as ChargePoint201


def iso(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def ocpp_charger(
    url: str, cp_id: str, version: str = "1.6", cls: type | None = None
) -> AsyncIterator[Any]:
    """A library ChargePoint (1.6 or 2.0.1, or a subclass `cls` of one) connected to `url/cp_id`, its
    receive loop running."""
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    cls = cls or (ChargePoint16 if version == "1.6" else ChargePoint201)
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=[subprotocol]) as ws:
        cp = cls(cp_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


class RawCharger:
    """Sends hand-written frames and reads the answers, to test what a library client won't send."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send_text(self, text: str | bytes, timeout: float = 10) -> list[Any]:
        await self.ws.send(text)
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def call(self, action: str, payload: Any, message_id: str | None = None) -> list[Any]:
        mid = message_id or f"m{next(self._ids)}"
        return await self.send_text(orjson.dumps([2, mid, action, payload]).decode())


@contextlib.asynccontextmanager
async def raw_charger(
    url: str, cp_id: str, subprotocol: str = "ocpp1.6", **kw: Any
) -> AsyncIterator[RawCharger]:
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=[subprotocol], **kw) as ws:
        yield RawCharger(ws)


def raw_table(data_dir: Path, table: str) -> duckdb.DuckDBPyRelation:
    """All rows of one raw table, read the way the pipeline reads it."""
    con = duckdb.connect()
    pattern = str(data_dir / "raw" / table / "date=*" / "*.parquet")
    return con.sql(f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = false)")


def rows(data_dir: Path, table: str, where: str = "true", order: str = "received_at") -> list[dict[str, Any]]:
    if not any((data_dir / "raw" / table).glob("date=*/*.parquet")):
        return []
    rel = raw_table(data_dir, table).filter(where).order(order)
    cols = rel.columns
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]
