"""OCPP-J 1.6 load generator shared by the benchmarks: run it as its own process so the server is measured.

    python benchmarks/_load.py '<json spec>'

The spec's "mode" picks the load:
- ``flood``: N chargers send MeterValues as fast as acks return, for a fixed duration.
- ``paced``: N chargers send MeterValues at a fixed total rate, for a fixed duration.
- ``idle``: M chargers connect, send one BootNotification each, print a ``ready`` line, then hold the
  connections until a line arrives on stdin (or ``hold_seconds`` pass).
- ``storm``: M chargers connect (at most ``concurrency`` in flight) and send BootNotification plus two
  StatusNotifications each; the figure is the time until the last ack.

Every charger waits for the ack of one CALL before it sends the next (OCPP-J allows one open CALL).
Frames are serialised before the clock starts; only the message id is spliced in per frame. The process
prints one JSON line with its results (latencies go to ``latency_file`` as uint32 microseconds) and its
own CPU seconds, so a reader can see whether the generator, not the server, was the limit.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

TIMESTAMP = "2026-11-25T12:00:00Z"
SAMPLED_VALUES: list[dict[str, str]] = [
    {"value": "1234567", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    *({"value": "230.1", "measurand": "Voltage", "phase": f"L{p}-N", "unit": "V"} for p in (1, 2, 3)),
    *({"value": "16.02", "measurand": "Current.Import", "phase": f"L{p}", "unit": "A"} for p in (1, 2, 3)),
    {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
]
METER_VALUES = orjson.dumps(
    {
        "connectorId": 1,
        "transactionId": 1,
        "meterValue": [{"timestamp": TIMESTAMP, "sampledValue": SAMPLED_VALUES}],
    }
)
BOOT = orjson.dumps({"chargePointVendor": "Bench", "chargePointModel": "B1"})
STATUS = orjson.dumps(
    {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": TIMESTAMP}
)
ROWS_PER_METER_VALUES = len(SAMPLED_VALUES)
STORM_CALLS = ((b"BootNotification", BOOT), (b"StatusNotification", STATUS), (b"StatusNotification", STATUS))


def call_frame(message_id: int, action: bytes, payload: bytes) -> bytes:
    return b'[2,"%d","%s",%s]' % (message_id, action, payload)


class AckError(RuntimeError):
    pass


@dataclass
class Charger:
    """One connection; `call` sends a pre-serialised payload and waits for its CallResult."""

    ws: ClientConnection
    next_id: int = 0

    async def call(self, action: bytes, payload: bytes) -> None:
        self.next_id += 1
        await self.ws.send(call_frame(self.next_id, action, payload), text=True)
        reply = orjson.loads(await self.ws.recv(decode=False))
        if reply[0] != 3 or reply[1] != str(self.next_id):
            raise AckError(f"expected CallResult for {self.next_id}, got {reply!r:.200}")


@dataclass
class Tally:
    latencies_us: array.array[int] = field(default_factory=lambda: array.array("I"))
    acked: int = 0
    errors: list[str] = field(default_factory=list)

    def timed(self, started_ns: int) -> None:
        self.latencies_us.append(min((time.perf_counter_ns() - started_ns) // 1000, 2**32 - 1))
        self.acked += 1


async def open_charger(url: str, index: int, timeout: float) -> Charger:
    ws = await connect(
        f"{url}/BENCH{index:05d}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        open_timeout=timeout,
        ping_interval=None,  # the server pings; the client answers them without sending its own
        close_timeout=2,
        max_queue=4,
    )
    return Charger(ws)


async def open_all(url: str, count: int, concurrency: int, timeout: float) -> list[Charger]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Charger:
        async with gate:
            return await open_charger(url, i, timeout)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def close_all(chargers: list[Charger], timeout: float = 30.0) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(c.ws.close() for c in chargers), return_exceptions=True), timeout
        )


async def flood(spec: dict[str, Any], tally: Tally) -> dict[str, Any]:
    chargers = await open_all(spec["url"], spec["chargers"], 100, 30)
    deadline = time.perf_counter() + spec["duration"]

    async def run(c: Charger) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter_ns()
            await c.call(b"MeterValues", METER_VALUES)
            tally.timed(started)

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in chargers))
    elapsed = time.perf_counter() - started
    await close_all(chargers)
    return {"elapsed": elapsed}


async def paced(spec: dict[str, Any], tally: Tally) -> dict[str, Any]:
    chargers = await open_all(spec["url"], spec["chargers"], 100, 30)
    period = spec["chargers"] / spec["rate"]
    begin = time.perf_counter() + 0.2
    deadline = begin + spec["duration"]
    late = 0

    async def run(c: Charger) -> None:
        nonlocal late
        due = begin + random.uniform(0, period)  # spread the chargers over one period, as real ones are
        while due < deadline:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -period:
                late += 1  # the previous ack took longer than a period: this frame goes out late
            started = time.perf_counter_ns()
            await c.call(b"MeterValues", METER_VALUES)
            tally.timed(started)
            due += period

    await asyncio.gather(*(run(c) for c in chargers))
    elapsed = time.perf_counter() - begin
    await close_all(chargers)
    return {"elapsed": elapsed, "late_sends": late}


async def idle(spec: dict[str, Any], tally: Tally) -> dict[str, Any]:
    gate = asyncio.Semaphore(spec["concurrency"])
    chargers: list[Charger] = []

    async def one(i: int) -> None:
        async with gate:
            try:
                c = await open_charger(spec["url"], i, 60)
                started = time.perf_counter_ns()
                await c.call(b"BootNotification", BOOT)
                tally.timed(started)
                chargers.append(c)
            except Exception as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(spec["connections"])))
    opened = time.perf_counter() - started
    print(orjson.dumps({"ready": True, "open": len(chargers), "open_seconds": opened}).decode(), flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), spec["hold_seconds"])
    still_open = sum(1 for c in chargers if c.ws.close_code is None)
    await close_all(chargers)
    return {"elapsed": opened, "open": len(chargers), "still_open_at_end": still_open}


async def storm(spec: dict[str, Any], tally: Tally) -> dict[str, Any]:
    gate = asyncio.Semaphore(spec["concurrency"])
    chargers: list[Charger] = []
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        # A real charger retries until it gets in; so does this one, within the storm's time limit.
        for _attempt in range(spec.get("retries", 5)):
            async with gate:
                c: Charger | None = None
                try:
                    c = await open_charger(spec["url"], i, 60)
                    for action, payload in STORM_CALLS:
                        started = time.perf_counter_ns()
                        await c.call(action, payload)
                        tally.timed(started)
                    chargers.append(c)
                    done += 1
                    return
                except Exception as exc:
                    tally.errors.append(f"{type(exc).__name__}: {exc}")
                    if c is not None:
                        await close_all([c], 5)
            await asyncio.sleep(1)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(spec["chargers"])))
    elapsed = time.perf_counter() - started
    await close_all(chargers)
    return {"elapsed": elapsed, "completed": done}


MODES = {"flood": flood, "paced": paced, "idle": idle, "storm": storm}


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    try:
        result = await asyncio.wait_for(MODES[spec["mode"]](spec, tally), spec.get("timeout", 600))
    except Exception as exc:  # reported, not raised: the parent prints what it got
        result = {"failed": f"{type(exc).__name__}: {exc}"}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    if spec.get("latency_file"):
        with open(spec["latency_file"], "wb") as out:
            tally.latencies_us.tofile(out)
    return {
        **result,
        "acked": tally.acked,
        "errors": len(tally.errors),
        "first_errors": sorted(set(tally.errors))[:5],
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def run(spec: dict[str, Any]) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(orjson.dumps(runner(main(spec))).decode(), flush=True)


if __name__ == "__main__":
    run(orjson.loads(sys.argv[1]))
