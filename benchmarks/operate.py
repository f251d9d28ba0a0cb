"""Operator calls under ingest load (issue 16): what a call adds to the charger's own answer time, and
what the calls cost the chargers' acknowledgements.

    python benchmarks/operate.py [--chargers 1000] [--rate 1000] [--calls 100] [--seconds 30]

One listener with its operator API. The load generator (benchmarks/_load.py, its own process) connects
`chargers - targets` chargers sending MeterValues at `rate` frames/s in total; this process connects
`targets` chargers that answer every CSMS CALL at once (and time their own answer), and sends `calls`
operator calls per second (Reset, ChangeAvailability, TriggerMessage in turn) over keep-alive HTTP.
The load runs twice, without and with the calls. Targets: call round trip p99 < 50 ms more than the
charger's own answer time; the ingest acknowledgement p99 rises by < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.ingest import (  # noqa: E402
    free_port,
    listener,
    percentile_ms,
    raise_nofile,
    read_latencies,
    run_load,
    running,
)

CALLS = (
    ("Reset", {"type": "Soft"}),
    ("ChangeAvailability", {"connectorId": 1, "type": "Operative"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
)


async def answering_charger(url: str, cp_id: str, own: list[float], stop: asyncio.Event) -> None:
    """A charger that answers every CALL of the CSMS at once; `own` gets its answer times (s)."""
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"], compression=None) as ws:  # type: ignore[list-item]
        await ws.send(
            orjson.dumps(
                [2, "b", "BootNotification", {"chargePointVendor": "B", "chargePointModel": "M"}]
            ).decode()
        )
        await ws.recv()
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            got = time.perf_counter()
            frame = orjson.loads(text)
            if frame[0] == 2:
                await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())
                own.append(time.perf_counter() - got)


async def operator_load(
    api: str, token: str, targets: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    kinds = itertools.cycle(CALLS)
    cps = itertools.cycle(targets)
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30) as client:  # fmt: skip

        async def one(cp: str, action: str, payload: dict[str, Any]) -> None:
            nonlocal failures
            started = time.perf_counter()
            answer = await client.post(f"/v1/chargers/{cp}/calls/{action}", json=payload)
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

        tasks = []
        begin = time.perf_counter()
        for i in range(int(rate * seconds)):
            due = begin + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            action, payload = next(kinds)
            tasks.append(asyncio.create_task(one(next(cps), action, payload)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return {"latencies": latencies, "failures": failures}


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def with_calls(
    args: argparse.Namespace, server: Any, api: str, token: str, spec: dict[str, Any]
) -> dict[str, Any]:
    stop = asyncio.Event()
    own: list[float] = []
    targets = [f"TARGET{i:03d}" for i in range(args.targets)]
    chargers = [asyncio.create_task(answering_charger(server.url, cp, own, stop)) for cp in targets]
    await asyncio.sleep(2)  # connected and booted
    load = asyncio.create_task(asyncio.to_thread(run_load, spec, args.seconds + 60))
    await asyncio.sleep(1)
    calls = await operator_load(api, token, targets, args.calls, args.seconds - 2)
    result = await load
    stop.set()
    await asyncio.gather(*chargers, return_exceptions=True)
    own.sort()
    return {"load": result, "calls": calls, "own": own}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chargers", type=int, default=1000, help="connected chargers in all")
    parser.add_argument("--targets", type=int, default=50, help="of them, chargers that get operator calls")
    parser.add_argument("--rate", type=float, default=1000.0, help="MeterValues frames/s in total")
    parser.add_argument("--calls", type=float, default=100.0, help="operator calls/s")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per run")
    args = parser.parse_args()
    raise_nofile()
    from ingest.operate.tokens import create_token

    work = Path(tempfile.mkdtemp(prefix="operate-bench-"))
    try:
        token = create_token(work / "operators.tokens", "bench", "control")
        operator_port = free_port()
        server = listener(work, 60.0)
        server.cmd += [
            "--operator-tokens",
            str(work / "operators.tokens"),
            "--operator-port",
            str(operator_port),
        ]
        api = f"http://127.0.0.1:{operator_port}"
        load_chargers = args.chargers - args.targets
        figures = {}
        with running(server):
            time.sleep(1)
            for label in ("without calls", "with calls"):
                lat_file = work / f"lat-{label.replace(' ', '-')}.bin"
                spec = {"mode": "paced", "url": server.url, "chargers": load_chargers, "rate": args.rate,
                        "duration": args.seconds, "latency_file": str(lat_file)}  # fmt: skip
                if label == "without calls":
                    result = run_load(spec, args.seconds + 60)
                    figures[label] = {"load": result}
                else:
                    figures[label] = asyncio.run(with_calls(args, server, api, token, spec))
                figures[label]["ack"] = read_latencies(lat_file)
        base_p99 = percentile_ms(figures["without calls"]["ack"], 0.99)
        calls_p99 = percentile_ms(figures["with calls"]["ack"], 0.99)
        call = figures["with calls"]["calls"]
        own = figures["with calls"]["own"]
        rt50, rt99 = quantile(call["latencies"], 0.5) * 1000, quantile(call["latencies"], 0.99) * 1000
        own99 = quantile(own, 0.99) * 1000
        print(f"{args.chargers} chargers ({args.targets} answering operator calls), "
              f"{args.rate:.0f} MeterValues/s, {args.calls:.0f} operator calls/s, "
              f"{args.seconds:.0f} s per run")  # fmt: skip
        for label in ("without calls", "with calls"):
            ack = figures[label]["ack"]
            load = figures[label]["load"]
            print(f"  ingest ack {label:14}: {load['acked']:,} frames, p50 {percentile_ms(ack, 0.5):.1f} ms, "
                  f"p99 {percentile_ms(ack, 0.99):.1f} ms, errors {load['errors']}")  # fmt: skip
        print(f"  operator calls: {len(call['latencies'])} answered 200, {call['failures']} failed; "
              f"round trip p50 {rt50:.1f} ms, p99 {rt99:.1f} ms; "
              f"the charger's own answer p99 {own99:.2f} ms")  # fmt: skip
        added, rise = rt99 - own99, calls_p99 - base_p99
        print(f"  added by the listener at p99: {added:.1f} ms (target < 50 ms); ingest ack p99 rise "
              f"{rise:+.1f} ms (target < 2 ms)")  # fmt: skip
        met = added < 50 and rise < 2 and call["failures"] == 0
        print("all targets met" if met else "targets missed")
        return 0 if met else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
