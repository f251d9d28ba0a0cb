"""Simulator benchmark: how many frames/s one simulator process sustains, and 1,000 connected chargers.

    python benchmarks/simulator.py                 # every part, about four minutes
    python benchmarks/simulator.py --quick         # scaled down, about a minute
    python benchmarks/simulator.py --parts sink,connections

Parts:
- sink: the simulator against a bare answering WebSocket server in another process: the simulator's
  own ceiling (issue 3: >= 3,000 frames/s from one process).
- listener: a 7-day, 50-charger run as fast as possible against the real listener (issue 3: "a couple
  of minutes"); the listener, not the simulator, is then the limit.
- speed: the same week at --speed 10080 (a week per minute): how far behind the simulated clock fell.
- connections: 1,000 chargers connected at once to the real listener, counted by its /health.

The listener runs with `--rate-limit 0`: a simulated week per minute sends far faster per connection
than a real charger ever would. Figures on a shared 2-core machine are noisy: the simulator and the
server compete for the cores; each part prints the simulator's own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/ingest.py would shadow the
# `ingest` package.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

TARGET_FRAMES_PER_S = 3_000
TARGET_CONNECTED = 1_000
TARGET_WEEK_S = 180.0  # "a couple of minutes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_sink(port: int) -> None:
    """A bare central system: answers every CALL at once with the smallest valid result."""
    import orjson
    from websockets.asyncio.server import ServerConnection, serve

    tx = itertools.count(1)
    given: dict[bytes, int] = {}  # a retried StartTransaction gets the same id, as from the listener

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            msg = orjson.loads(raw)
            action = msg[2]
            if action == "BootNotification":
                now = datetime.now(UTC).isoformat()
                result: dict[str, object] = {"status": "Accepted", "currentTime": now, "interval": 300}
            elif action == "StartTransaction":
                key = orjson.dumps(msg[3])
                if key not in given:
                    given[key] = next(tx)
                result = {"transactionId": given[key], "idTagInfo": {"status": "Accepted"}}
            else:
                result = {}
            await ws.send(orjson.dumps([3, msg[1], result]), text=True)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6", "ocpp2.0.1"], compression=None):  # type: ignore[list-item]
            stop = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
            await stop

    asyncio.run(main())


@contextmanager
def process(cmd: list[str], health: str | None, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if health:
                    urllib.request.urlopen(health, timeout=1).close()
                else:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()}")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)


@contextmanager
def listener(work: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "ocpp_opendata.cli", "listen", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(work / "data"), "--authorize", "accept-all", "--rate-limit", "0",
        "--log-level", "WARNING",
    ]  # fmt: skip
    health = f"http://127.0.0.1:{port}/health"
    with process(cmd, health, port, work / "listener.log"):
        yield f"ws://127.0.0.1:{port}/ocpp", health


@contextmanager
def sink(work: Path) -> Iterator[str]:
    port = free_port()
    with process([sys.executable, __file__, "--serve-sink", str(port)], None, port, work / "sink.log"):
        yield f"ws://127.0.0.1:{port}/ocpp"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def simulate(url: str, **kw: object) -> dict[str, float]:
    from ingest.simulator import SimulationOptions, run_blocking

    options = SimulationOptions(url=url, **kw)  # type: ignore[arg-type]
    cpu = cpu_seconds()
    result = run_blocking(options)
    return {
        "chargers": float(options.chargers),
        "days": options.days,
        "frames": float(result.frames_sent),
        "sessions": float(result.sessions),
        "seconds": round(result.elapsed_s, 1),
        "frames_per_s": round(result.frames_per_second),
        "simulator_cpu_s": round(cpu_seconds() - cpu, 1),
    }


def part_sink(work: Path, quick: bool) -> dict[str, object]:
    with sink(work) as url:
        figures = simulate(url, chargers=50, days=1 if quick else 3, seed=7)
    return {
        **figures,
        "target_frames_per_s": TARGET_FRAMES_PER_S,
        "ok": figures["frames_per_s"] >= TARGET_FRAMES_PER_S,
    }


def part_listener(work: Path, quick: bool) -> dict[str, object]:
    with listener(work) as (url, _):
        figures = simulate(url, chargers=50, days=2 if quick else 7, seed=7)
    return {**figures, "target_week_s": TARGET_WEEK_S, "ok": quick or figures["seconds"] <= TARGET_WEEK_S}


def part_speed(work: Path, quick: bool) -> dict[str, object]:
    days = 1 if quick else 7
    speed = days * 86400 / 60  # the whole window in one minute
    with listener(work) as (url, _):
        figures = simulate(url, chargers=50, days=days, speed=speed, seed=7)
    behind = figures["seconds"] - 60
    return {**figures, "speed": speed, "planned_s": 60, "behind_s": round(behind, 1)}


def part_connections(work: Path, quick: bool) -> dict[str, object]:
    chargers = 300 if quick else TARGET_CONNECTED
    peak = 0
    stop = threading.Event()

    def watch(health: str) -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                with urllib.request.urlopen(health, timeout=2) as resp:
                    peak = max(peak, int(json.loads(resp.read())["connections"]))
            except OSError:
                pass
            stop.wait(0.5)

    with listener(work) as (url, health):
        watcher = threading.Thread(target=watch, args=(health,), daemon=True)
        watcher.start()
        # A quarter day at 1,080x: about 20 s with every charger connected and heartbeating.
        figures = simulate(url, chargers=chargers, days=0.25, speed=1080, heartbeat_every=900, seed=7)
        stop.set()
        watcher.join()
    return {**figures, "peak_connected": peak, "target": chargers, "ok": peak >= chargers}


PARTS = {"sink": part_sink, "listener": part_listener, "speed": part_speed, "connections": part_connections}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for name in args.parts.split(","):
        with tempfile.TemporaryDirectory(prefix=f"simbench-{name}-") as tmp:
            figures = PARTS[name](Path(tmp), args.quick)
        print(json.dumps({"part": name, **figures}), flush=True)
    del soft


if __name__ == "__main__":
    os.environ.setdefault("OCPP_OPENDATA_LOG_LEVEL", "WARNING")
    main()
