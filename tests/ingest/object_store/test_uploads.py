"""A listener with an s3 store: WAL local, rolled files uploaded, nothing lost while the store is away."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from pathlib import Path

import orjson
import websockets

from tests.ingest.object_store.conftest import (
    PREFIX,
    bucket_rows,
    bucket_store,
    health,
    metrics,
    outbox_files,
    s3_listener,
    uploaded_files,
    uploads,
    wait_for,
)
from tests.ingest.test_durability import meter_frame, send_until_closed
from tests.support.seaweed import SeaweedServer


def assert_exactly_once_in_bucket(
    seaweed: SeaweedServer, bucket: str, copy_to: Path, acked: set[tuple[str, str]]
) -> None:
    inbound = bucket_rows(seaweed, bucket, copy_to, "frames", "direction = 'in'")
    keys = Counter((f["charge_point_id"], f["connection_id"], f["message_id"]) for f in inbound)
    assert keys and max(keys.values()) == 1, "a frame is in the bucket twice"
    present = {(cp, mid) for cp, _, mid in keys}
    assert acked <= present, f"{len(acked - present)} acknowledged frames are missing from the bucket"
    meters = Counter((m["charge_point_id"], m["message_id"]) for m in bucket_rows(
        seaweed, bucket, copy_to, "meter_values"))  # fmt: skip
    assert all(meters[key] == 2 for key in acked), "derived rows missing or duplicated in the bucket"


async def send_paced(url: str, cp: str, acked: set[tuple[str, str]], stop: asyncio.Event) -> None:
    """One charger sending a MeterValues every 20 ms until told to stop (or the socket closes)."""
    with contextlib.suppress(websockets.ConnectionClosed, OSError):
        async with websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            n = 0
            while not stop.is_set():
                await ws.send(meter_frame(cp, n))
                answer = orjson.loads(await ws.recv())
                assert answer[0] == 3
                acked.add((cp, answer[1]))
                n += 1
                await asyncio.sleep(0.02)


async def test_every_acknowledged_frame_lands_in_the_bucket_and_the_outbox_empties(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    data = tmp_path / "data"
    running = s3_listener(data, seaweed, bucket).start()
    acked: set[tuple[str, str]] = set()
    try:
        await asyncio.gather(*(send_until_closed(running.url, f"UP-{i}", 60, acked) for i in range(5)))
        # Uploaded while running, not only by the shutdown drain.
        await wait_for(lambda: uploads(running)["backlog_files"] == 0 and uploaded_files(running) > 0, 20,
                       "uploads while running")  # fmt: skip
        status, body = health(running)
        assert status == 200 and body["status"] == "ok"
    finally:
        assert running.stop() == 0
    assert len(acked) == 300
    assert_exactly_once_in_bucket(seaweed, bucket, tmp_path / "copy", acked)
    assert outbox_files(data) == [], "uploaded files are deleted locally"
    assert not (data / "raw").exists(), "with an s3 store nothing is written to the local raw zone"
    keys = [o.key for o in bucket_store(seaweed, bucket, tmp_path).list("raw")]
    assert keys and all(re.fullmatch(r"raw/\w+/date=\d{4}-\d\d-\d\d/[\w-]+-\d{6}\.parquet", k) for k in keys)
    raw = seaweed.filesystem().get_file_info(f"{bucket}/{PREFIX}/raw/frames")
    assert raw.type.name == "Directory", "keys live below the store's prefix"


async def test_a_store_outage_does_not_stop_acknowledgements_and_the_backlog_drains_after(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    data = tmp_path / "data"
    running = s3_listener(data, seaweed, bucket).start()
    acked: set[tuple[str, str]] = set()
    stop = asyncio.Event()
    senders = [asyncio.create_task(send_paced(running.url, f"OUT-{i}", acked, stop)) for i in range(4)]
    try:
        await wait_for(lambda: len(acked) >= 100, 20, "acks before the outage")
        seaweed.stop()
        await wait_for(lambda: health(running)[1]["status"] == "degraded", 20, "health to say degraded")
        during = len(acked)
        await wait_for(lambda: len(acked) >= during + 200, 20, "acks during the outage")
        status, body = health(running)
        assert status == 200, "within the local cap the listener stays in service"
        assert body["uploads"]["backlog_files"] > 0 and body["uploads"]["last_error"]
        assert re.search(r"^ocpp_opendata_upload_backlog_files [1-9]", metrics(running), re.MULTILINE)
        seaweed.start()
        after = len(acked)
        await wait_for(lambda: len(acked) >= after + 50, 20, "acks after the store is back")
        stop.set()
        await asyncio.gather(*senders)
        await wait_for(lambda: uploads(running)["backlog_files"] == 0, 30, "the backlog to drain")
        assert health(running)[1]["status"] == "ok"
    finally:
        stop.set()
        if seaweed.proc is None:
            seaweed.start()
        running.stop()
    assert_exactly_once_in_bucket(seaweed, bucket, tmp_path / "copy", acked)
    assert outbox_files(data) == []


async def test_after_kill_9_with_the_store_down_everything_acknowledged_is_uploaded_exactly_once(
    tmp_path: Path, seaweed: SeaweedServer, bucket: str
) -> None:
    data = tmp_path / "data"
    first = s3_listener(data, seaweed, bucket, "--rate-limit", "0").start()
    acked: set[tuple[str, str]] = set()
    stop = asyncio.Event()
    senders = [asyncio.create_task(send_paced(first.url, f"K9S-{i}", acked, stop)) for i in range(6)]
    second = None
    try:
        await wait_for(lambda: len(acked) >= 150, 20, "acks before the outage")
        await wait_for(lambda: uploaded_files(first) > 0, 20, "first uploads")
        seaweed.stop()
        during = len(acked)
        await wait_for(lambda: len(acked) >= during + 300, 20, "acks with the store down")
        first.kill()
        stop.set()
        await asyncio.gather(*senders)
        orphans = [folder for folder in (data / "wal").iterdir() if folder.is_dir()]
        assert any(folder.glob("*.wal") for folder in orphans), "the kill left a WAL behind"

        second = s3_listener(data, seaweed, bucket, log_name="second.log").start()
        assert not any(folder.exists() for folder in orphans), "the orphaned WAL is rolled at start"
        assert outbox_files(data), "recovered files wait in the outbox while the store is down"
        assert health(second)[0] == 200
        seaweed.start()
        await wait_for(lambda: not outbox_files(data), 30, "the recovered backlog to upload")
    finally:
        stop.set()
        if seaweed.proc is None:
            seaweed.start()
        if second is not None:
            second.stop()
    assert_exactly_once_in_bucket(seaweed, bucket, tmp_path / "copy", acked)


async def test_past_the_local_cap_with_the_store_down_nothing_is_acknowledged_until_uploads_drain(
    tmp_path: Path,
) -> None:
    # A store that is not up yet: from the listener's side the same as one that went down.
    late = SeaweedServer(tmp_path / "late-store")
    data = tmp_path / "data"
    running = s3_listener(data, late, "capped", "--local-max-bytes", "30000", "--rate-limit", "0").start()
    answered: list[str] = []
    try:
        async with websockets.connect(f"{running.url}/CAP-1", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            n = 0
            while True:
                await ws.send(meter_frame("CAP-1", n))
                try:
                    answered.append(orjson.loads(await asyncio.wait_for(ws.recv(), 1.0))[1])
                    n += 1
                except TimeoutError:
                    # Unanswered: a roll may compact WAL into smaller Parquet and make room again, so
                    # the charger's retry can still get in; it stops when health reports the cap.
                    if health(running)[0] == 503:
                        break
                assert n < 3000, "the cap never stopped acknowledgements"
            status, body = health(running)
            assert status == 503 and body["status"] == "over-local-disk-cap"
            assert body["uploads"]["local_bytes"] > 0
            await wait_for(lambda: uploads(running)["last_error"] is not None, 20, "a failed upload")

            late.start()
            late.create_bucket("capped")
            # The charger sends its unanswered CALL again until it is acknowledged.
            while True:
                await ws.send(meter_frame("CAP-1", n))
                with contextlib.suppress(TimeoutError):
                    answered.append(orjson.loads(await asyncio.wait_for(ws.recv(), 2.0))[1])
                    break
            assert answered[-1] == f"CAP-1-{n}"
            await wait_for(lambda: health(running)[0] == 200, 20, "health to recover")
        assert running.stop() == 0
        assert len(answered) == n + 1 > 10
        assert_exactly_once_in_bucket(late, "capped", tmp_path / "copy", {("CAP-1", m) for m in answered})
        assert outbox_files(data) == []
    finally:
        running.stop()
        late.stop()
