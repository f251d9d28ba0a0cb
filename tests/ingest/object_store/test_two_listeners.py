"""Two listeners with disks of their own, one bucket, one PostgreSQL id state, chargers split between them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.ingest.object_store.conftest import bucket_rows, bucket_store, outbox_files, s3_listener
from tests.ingest.object_store.test_uploads import assert_exactly_once_in_bucket
from tests.ingest.test_durability import TS, send_until_closed
from tests.support.chargers import raw_charger
from tests.support.listener import RunningListener
from tests.support.seaweed import SeaweedServer

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def state_url() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    name = f"ocpp_txids_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(f"{POSTGRES}/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def start(connector: int, tag: str, meter: int) -> dict[str, Any]:
    return {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": TS}


def meter(tx: int, wh: int) -> dict[str, Any]:
    sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}]
    return {"connectorId": 1, "transactionId": tx, "meterValue": [{"timestamp": TS, "sampledValue": sampled}]}


async def session_across_listeners(
    first: RunningListener, second: RunningListener, cp: str
) -> dict[str, Any]:
    """Start on one listener, lose the socket, carry on (retry the start, meter, stop) on the other."""
    async with raw_charger(first.url, cp) as charger:
        started = await charger.call("StartTransaction", start(1, f"TAG-{cp}", 100))
        tx = started[2]["transactionId"]
        await charger.call("MeterValues", meter(tx, 150))
    async with raw_charger(second.url, cp) as charger:
        # The start's answer may have been lost with the socket: the charger sends the start again.
        retried = await charger.call("StartTransaction", start(1, f"TAG-{cp}", 100), message_id="again")
        await charger.call("MeterValues", meter(tx, 200))
        stop = {"transactionId": tx, "meterStop": 250, "timestamp": TS, "idTag": f"TAG-{cp}"}
        stopped = await charger.call("StopTransaction", stop)
        other = await charger.call("StartTransaction", start(2, f"TAG-{cp}", 250))
    return {
        "tx": tx,
        "retried": retried[2]["transactionId"],
        "stopped": stopped[2]["idTagInfo"]["status"],
        "other": other[2]["transactionId"],
    }


async def test_two_listeners_on_one_bucket_lose_nothing_duplicate_nothing_and_share_transaction_ids(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str, state_url: str
) -> None:
    state = ("--state-url", state_url, "--rate-limit", "0")
    a = s3_listener(tmp_path / "machine-a" / "data", seaweed, bucket, *state, log_name="a.log").start()
    b = s3_listener(tmp_path / "machine-b" / "data", seaweed, bucket, *state, log_name="b.log").start()
    acked: set[tuple[str, str]] = set()
    try:
        flood = [send_until_closed(srv.url, f"LOAD-{name}{i}", 150, acked)
                 for i in range(4) for srv, name in ((a, "A"), (b, "B"))]  # fmt: skip
        sessions = [session_across_listeners(*((a, b) if i % 2 else (b, a)), f"MOVE-{i}") for i in range(6)]
        results = await asyncio.gather(*sessions, *flood)
    finally:
        a.stop()
        b.stop()
    moved = results[:6]
    assert all(r["retried"] == r["tx"] for r in moved), "a retried start on the other listener keeps its id"
    assert all(r["stopped"] == "Accepted" for r in moved)
    ids = [r["tx"] for r in moved] + [r["other"] for r in moved]
    assert len(set(ids)) == 12 and all(0 < tx < 2**31 for tx in ids), "ids are unique across listeners"

    assert len(acked) == 8 * 150
    copy = tmp_path / "copy"
    assert_exactly_once_in_bucket(seaweed, bucket, copy, acked)
    events = bucket_rows(seaweed, bucket, copy, "transaction_events", "charge_point_id LIKE 'MOVE-%'")
    assert len(events) == 6 * 4
    unknown = [e for e in events if "unknown_transaction_id" in e["quality"]]
    assert unknown == [], "the other listener knows the transaction the first one started"
    assert sum("retried_start" in e["quality"] for e in events) == 6

    names = [o.key.rsplit("/", 1)[1] for o in bucket_store(seaweed, bucket, copy).list("raw")]
    instances = {name.rsplit("-", 1)[0] for name in names}
    hosts = {instance.split("-")[1] for instance in instances}
    assert len(instances) == 2 and len(hosts) == 2, "each machine writes under its own host and instance id"
    assert outbox_files(a.data_dir) == [] and outbox_files(b.data_dir) == []
