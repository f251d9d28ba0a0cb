"""Proxy benchmark: the latency proxy mode adds, against the same paced load sent straight upstream.

    python benchmarks/proxy.py                  # 1,000 frames/s for 40 s per target, about 2.5 minutes
    python benchmarks/proxy.py --processes 1 --duration 10 --rate 500

In one run, a stand-in CSMS (answers every CALL with an empty CallResult at once, so it adds as little
as possible of its own) gets the paced load (MeterValues with 8 sampled values, one open CALL per
charger) first directly, then through `ocpp-opendata listen --upstream` with one listener process and
with two sharing the port (`--reuse-port`, as an operator runs one per core). Load generator and CSMS
are benchmarks/_light_load.py (picows): on a 2-core machine every CPU cycle they spend is taken from the
proxy being measured. Printed: p50/p99/max answer latency of each, the latency the proxy adds at p50
and p99, and the proxy's CPU per exchange (its roll worker's apart). Target (issue 9): added p99 < 5 ms
at 1,000 frames/s. 40 s per target because a listener rolls its WAL into Parquet every 16 MiB (~15 s
at this rate; 30 s for each of two processes), and a measurement without a roll flatters the proxy.
Figures on a shared 2-core machine are noisy: load generator, CSMS and proxy share the cores, and a
run with "late sends" was one where the whole machine stalled (the load generator could not keep pace).
"""

from __future__ import annotations

import argparse
import array
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Run as a script, this folder comes first on sys.path, and benchmarks/ingest.py would shadow the
# ingest package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(REPO))

TARGET_ADDED_P99_MS = 5.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wait_listening(logs: list[Path], timeout: float = 30.0) -> None:
    """Every listener logged "listening" (with --reuse-port a /health probe reaches only one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.exists() and b"listening" in p.read_bytes() for p in logs):
            return
        time.sleep(0.1)
    raise RuntimeError("the proxy did not start; see its log in the work folder")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of the processes so far (/proc/PID/stat, fields 14 and 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pids: list[int]) -> list[int]:
    """The processes the listeners started: their roll workers (and multiprocessing's tracker)."""
    found = []
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def paced(url: str, args: argparse.Namespace, lat_file: Path) -> tuple[dict[str, Any], list[int]]:
    spec = {"url": url, "chargers": args.chargers, "rate": args.rate, "duration": args.duration,
            "latency_file": str(lat_file), "timeout": 30}  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(HERE / "_light_load.py"), "paced", json.dumps(spec)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    values = array.array("I")
    values.frombytes(lat_file.read_bytes())
    return result, sorted(values)


def pct(sorted_us: list[int], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))] / 1000 if sorted_us else float("nan")


def line(name: str, result: dict[str, Any], lat: list[int], extra: str = "") -> str:
    return (f"  {name:<10} acked {result.get('acked', 0):>7,}  p50 {pct(lat, 0.5):6.2f} ms  "
            f"p99 {pct(lat, 0.99):6.2f} ms  max {lat[-1] / 1000 if lat else float('nan'):6.1f} ms  "
            f"late sends {result.get('late_sends', 0)}  errors {result.get('errors')}{extra}")  # fmt: skip


def start_proxies(
    count: int, port: int, csms_port: int, work: Path
) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    procs, logs = [], []
    for i in range(count):
        log = work / f"proxy-{count}-{i}.log"
        command = [sys.executable, "-m", "ocpp_opendata.cli", "listen", "--port", str(port),
                   "--data-dir", str(work / f"data-{count}"), "--rate-limit", "0",
                   "--subprotocols", "ocpp1.6", "--upstream", f"ws://127.0.0.1:{csms_port}/ocpp"]  # fmt: skip
        if count > 1:
            command.append("--reuse-port")
        procs.append(
            subprocess.Popen(
                command,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        )
        logs.append(log)
    return procs, logs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="frames per second, all chargers together")
    parser.add_argument("--chargers", type=int, default=100)
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of load per target")
    parser.add_argument("--processes", default="1,2", help="listener process counts to measure (1,2)")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",") if n.strip()]

    csms_port = free_port()
    print(
        f"paced load: {args.rate:,.0f} frames/s from {args.chargers} chargers, "
        f"{args.duration:.0f} s per target"
    )
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        work = Path(tmp)
        csms = subprocess.Popen([sys.executable, str(HERE / "_light_load.py"), "csms", str(csms_port)])
        try:
            wait_port(csms_port)
            direct, direct_lat = paced(f"ws://127.0.0.1:{csms_port}/ocpp", args, work / "direct.bin")
            print(line("direct", direct, direct_lat))
            verdicts = []
            for count in counts:
                port = free_port()
                procs, logs = start_proxies(count, port, csms_port, work)
                try:
                    wait_listening(logs)
                    pids = [p.pid for p in procs]
                    workers = children(pids)
                    before, before_workers = cpu_seconds(pids), cpu_seconds(workers)
                    proxied, lat = paced(f"ws://127.0.0.1:{port}/ocpp", args, work / f"proxy-{count}.bin")
                    cpu, cpu_workers = cpu_seconds(pids) - before, cpu_seconds(workers) - before_workers
                finally:
                    stop(procs)
                acked = max(1, proxied.get("acked", 0))
                name = f"proxy x{count}"
                per_exchange, per_exchange_workers = cpu / acked * 1e6, cpu_workers / acked * 1e6
                cost = f"  proxy CPU {per_exchange:.0f} µs/exchange + roll worker {per_exchange_workers:.0f}"
                print(line(name, proxied, lat, cost))
                added_p50 = pct(lat, 0.5) - pct(direct_lat, 0.5)
                added_p99 = pct(lat, 0.99) - pct(direct_lat, 0.99)
                verdict = "OK" if added_p99 < TARGET_ADDED_P99_MS else "MISS"
                verdicts.append(f"  {name}: added p50 {added_p50:.2f} ms, p99 {added_p99:.2f} ms "
                                f"(target p99 < {TARGET_ADDED_P99_MS:.0f} ms: {verdict})")  # fmt: skip
        finally:
            stop([csms])
    print("added by the proxy:")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
