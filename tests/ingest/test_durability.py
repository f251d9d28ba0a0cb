"""Acknowledged means durable: kill -9, restarts, several processes on one data root, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import websockets

from tests.support.chargers import raw_charger, rows
from tests.support.listener import make_listener

TS = "2026-11-20T08:00:00Z"


def meter_frame(cp: str, n: int) -> str:
    sampled = [{"value": str(1000 + n), "measurand": "Energy.Active.Import.Register"},
               {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"}]  # fmt: skip
    payload = {
        "connectorId": 1,
        "transactionId": 1,
        "meterValue": [{"timestamp": TS, "sampledValue": sampled}],
    }
    return orjson.dumps([2, f"{cp}-{n}", "MeterValues", payload]).decode()


async def send_until_closed(url: str, cp: str, count: int, acked: set[tuple[str, str]]) -> None:
    with contextlib.suppress(websockets.ConnectionClosed, OSError):
        async with websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            for n in range(count):
                await ws.send(meter_frame(cp, n))
                answer = orjson.loads(await ws.recv())
                assert answer[0] == 3
                acked.add((cp, answer[1]))


async def test_kill_9_loses_no_acknowledged_frame_and_duplicates_none(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = make_listener(data, "--roll-seconds", "0.5", "--rate-limit", "0").start()
    acked: set[tuple[str, str]] = set()
    senders = [
        asyncio.create_task(send_until_closed(first.url, f"K9-{i:02d}", 250, acked)) for i in range(20)
    ]
    deadline = time.monotonic() + 60
    while len(acked) < 2000 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    first.kill()
    await asyncio.gather(*senders)
    assert 2000 <= len(acked) < 5000, "the kill must land in the middle of the load"

    second = make_listener(data, log_name="second.log").start()
    assert second.stop() == 0

    inbound = rows(data, "frames", "direction = 'in'")
    keys = Counter((f["charge_point_id"], f["connection_id"], f["message_id"]) for f in inbound)
    assert max(keys.values()) == 1, "a frame was written twice"
    present = {(cp, mid) for cp, _, mid in keys}
    assert acked <= present, f"{len(acked - present)} acknowledged frames were lost"
    meter_ids = Counter((m["charge_point_id"], m["message_id"]) for m in rows(data, "meter_values"))
    assert all(meter_ids[key] == 2 for key in acked), "derived rows missing or duplicated"
    assert not any((data / "wal").glob("*/*.wal")), "recovered WAL segments are removed"


async def test_rolled_files_appear_while_the_listener_runs(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--roll-seconds", "0.5").start()
    try:
        async with raw_charger(running.url, "ROLL-1") as charger:
            await charger.call("Heartbeat", {})
        deadline = time.monotonic() + 10
        while not rows(running.data_dir, "frames") and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(rows(running.data_dir, "frames")) == 2
    finally:
        running.stop()


def start_payload(connector: int, tag: str, meter: int) -> dict[str, object]:
    return {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": TS}


async def test_two_listener_processes_on_one_data_root_never_clash(tmp_path: Path) -> None:
    data = tmp_path / "data"
    a = make_listener(data, log_name="a.log").start()
    b = make_listener(data, log_name="b.log").start()

    async def starts(url: str, cp: str) -> list[int]:
        ids = []
        async with raw_charger(url, cp) as charger:
            for n in range(30):
                answer = await charger.call("StartTransaction", start_payload(1, f"TAG{n}", n))
                ids.append(answer[2]["transactionId"])
        return ids

    try:
        results = await asyncio.gather(*(starts(srv.url, f"{name}-{i}") for i in range(3)
                                         for srv, name in ((a, "A"), (b, "B"))))  # fmt: skip
    finally:
        a.stop()
        b.stop()
    all_ids = [tx for ids in results for tx in ids]
    assert len(all_ids) == 180 and len(set(all_ids)) == 180
    assert all(0 < tx < 2**31 for tx in all_ids)
    names = {p.name for p in (data / "raw" / "frames").glob("date=*/*.parquet")}
    instances = {name.rsplit("-", 1)[0] for name in names}
    assert len(instances) == 2, "each process writes files under its own instance id"
    assert len(rows(data, "transaction_events")) == 180


async def test_a_retried_start_gets_the_same_transaction_id_even_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = make_listener(data).start()
    try:
        async with raw_charger(first.url, "RETRY-1") as charger:
            original = await charger.call("StartTransaction", start_payload(1, "ABC", 500))
            other = await charger.call("StartTransaction", start_payload(2, "ABC", 500))
    finally:
        first.stop()
    second = make_listener(data, log_name="second.log").start()
    try:
        async with raw_charger(second.url, "RETRY-1") as charger:
            retried = await charger.call(
                "StartTransaction", start_payload(1, "ABC", 500), message_id="new-id"
            )
    finally:
        second.stop()
    assert retried[2]["transactionId"] == original[2]["transactionId"]
    assert other[2]["transactionId"] != original[2]["transactionId"]
    events = rows(data, "transaction_events", order="received_at")
    assert [e["quality"] for e in events] == [[], [], ["retried_start"]]


async def test_a_stop_with_an_unknown_transaction_id_is_accepted_and_flagged(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data").start()
    try:
        async with raw_charger(running.url, "STOP-1") as charger:
            answer = await charger.call("StopTransaction", {"transactionId": 987654, "meterStop": 10,
                                                            "timestamp": TS, "idTag": "ABC"})  # fmt: skip
    finally:
        running.stop()
    assert answer[0] == 3 and answer[2]["idTagInfo"]["status"] == "Accepted"
    [event] = rows(running.data_dir, "transaction_events")
    assert event["quality"] == ["unknown_transaction_id"] and event["transaction_id"] == "987654"


async def test_past_the_wal_disk_cap_nothing_is_acknowledged(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--wal-max-bytes", "2000", "--roll-seconds", "3600").start()
    answered = 0
    try:
        async with raw_charger(running.url, "FULL-1") as charger:
            for n in range(40):
                await charger.ws.send(meter_frame("FULL-1", n))
                try:
                    await asyncio.wait_for(charger.ws.recv(), 1.0)
                    answered += 1
                except TimeoutError:
                    break
    finally:
        running.stop()
    assert 0 < answered < 40
    inbound = rows(running.data_dir, "frames", "direction = 'in'")
    assert len(inbound) == answered, "only what was acknowledged is stored; the rest stays with the charger"


async def test_a_write_error_stops_acknowledging_and_health_says_so(tmp_path: Path) -> None:
    import resource
    import urllib.error
    import urllib.request

    limit = 60_000  # bytes per file: the WAL segment hits it like a full disk
    running = make_listener(tmp_path / "data", "--roll-seconds", "3600")
    running.preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    running.start()
    answered = 0
    try:
        async with raw_charger(running.url, "EFBIG-1") as charger:
            for n in range(1000):
                await charger.ws.send(meter_frame("EFBIG-1", n))
                try:
                    await asyncio.wait_for(charger.ws.recv(), 1.0)
                    answered += 1
                except TimeoutError:
                    break
        try:
            urllib.request.urlopen(running.http + "/health", timeout=5)
            health_status = 200
        except urllib.error.HTTPError as exc:
            health_status = exc.code
    finally:
        running.stop()
    assert 0 < answered < 1000
    assert health_status == 503
    inbound = rows(running.data_dir, "frames", "direction = 'in'")
    assert len(inbound) == answered


async def test_two_listener_processes_share_one_port_with_reuse_port_and_store_every_frame(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    a = make_listener(data, "--reuse-port", log_name="a.log").start()
    b = make_listener(data, "--reuse-port", port=a.port, log_name="b.log").start()
    try:
        # The kernel spreads connections (and health checks) over both processes on the one port;
        # the second one's start-up check may have been answered by the first, so wait for both.
        seen: Counter[str] = Counter()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            with urllib.request.urlopen(a.http + "/health", timeout=2) as resp:
                seen[orjson.loads(resp.read())["instance"]] += 1
            await asyncio.sleep(0.02)
        assert len(seen) == 2, f"both processes answer on port {a.port}: {seen}"
        acked = []

        async def charge(cp: str) -> None:
            async with raw_charger(a.url, cp) as charger:
                for n in range(10):
                    answer = await charger.send_text(meter_frame(cp, n))
                    assert answer[0] == 3
                    acked.append(answer[1])

        await asyncio.gather(*(charge(f"RP-{i}") for i in range(12)))
    finally:
        assert a.stop() == 0 and b.stop() == 0
    stored = [r["message_id"] for r in rows(data, "frames", "direction = 'in' AND action = 'MeterValues'")]
    assert sorted(stored) == sorted(acked) and len(acked) == 120
    writers = {p.name.rsplit("-", 1)[0] for p in (data / "raw" / "frames").glob("date=*/*.parquet")}
    assert len(writers) == 2, "connections reached both processes"


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_the_roll_worker_is_running_before_the_listener_accepts_a_connection(tmp_path: Path) -> None:
    # Spawned at the first roll instead, under load, it stalled every answer for up to 120 ms.
    running = make_listener(tmp_path / "data").start()
    try:
        assert running.proc is not None
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in _children(running.proc.pid)]
        assert any(b"spawn_main" in c for c in commands), commands
    finally:
        assert running.stop() == 0


async def test_the_roll_worker_ends_with_a_listener_killed_with_kill_9(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--roll-seconds", "0.2").start()
    assert running.proc is not None
    stop = asyncio.Event()

    async def keep_sending() -> None:
        with contextlib.suppress(websockets.ConnectionClosed, OSError):
            async with raw_charger(running.url, "ORPHAN-1") as charger:
                for n in itertools.count():
                    if stop.is_set():
                        return
                    await charger.send_text(meter_frame("ORPHAN-1", n))

    sender = asyncio.create_task(keep_sending())
    deadline = time.monotonic() + 20
    while not (workers := _children(running.proc.pid)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert workers, "the listener started a roll worker"
    await asyncio.sleep(1.5)  # rolls every 0.2 s under load: the kill lands in or between rolls
    running.kill()
    stop.set()
    await sender
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not any(_alive(w) for w in workers), "no roll worker outlives its listener"
