"""Ingest benchmark: how much durable OCPP traffic one listener process absorbs, and at what cost.

    python benchmarks/ingest.py            # full run, several minutes
    python benchmarks/ingest.py --quick    # about a minute, scaled down
    python benchmarks/ingest.py --parts throughput,latency --duration 30

Parts (each against a fresh listener on a free loopback port with a temporary data directory):
- throughput: N chargers send MeterValues (8 sampled values) as fast as acks return; the same load, in the
  same run, against a bare `websockets` server and a plain `ocpp` library ChargePoint server, so the
  figures read as ratios.
- latency: the same frames at a fixed total rate; p50/p99 ack latency.
- idle: many connections, one BootNotification each, then held idle; listener RSS.
- storm: many chargers connect at once (bounded concurrency) with BootNotification + 2 StatusNotifications.

The load runs in a separate process (benchmarks/_load.py) with pre-serialised frames; it reports its own
CPU seconds. The listener runs with `--rate-limit 0` so the benchmark measures the server, not the limiter.
Figures on a shared 2-core machine are noisy: the load generator and the server compete for the cores.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import queue
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOAD_SCRIPT = HERE / "_load.py"
ROWS_PER_FRAME = 8  # sampled values per MeterValues frame in _load.py
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Targets from issue 2 (2-core machine, load generator included).
TARGET_FRAMES_PER_S = 5_000
TARGET_RATIO_TO_BARE = 0.5
TARGET_P99_MS = 50.0
TARGET_IDLE_MIB = 500.0
TARGET_STORM_S = 60.0


# --- comparison servers (run as subprocesses of this script) ---------------------------------------


def serve_bare(port: int) -> None:
    """A bare websockets server: parse each frame with orjson, reply with an empty CallResult."""
    import orjson
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            call = orjson.loads(message)
            await ws.send(orjson.dumps([3, call[1], {}]), text=True)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None):  # type: ignore[list-item]
            await _until_sigterm()

    _run_loop(main)


def serve_reference(port: int) -> None:
    """A plain `ocpp` library ChargePoint per connection with a MeterValues handler (schema validation on)."""
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from websockets.asyncio.server import ServerConnection, serve

    class ReferenceChargePoint(ChargePoint):
        @on("MeterValues")
        def on_meter_values(self, connector_id: int, meter_value: list[Any], **_: Any) -> Any:
            return call_result.MeterValues()

    async def handler(ws: ServerConnection) -> None:
        await ReferenceChargePoint(ws.request.path.rsplit("/", 1)[-1], ws).start()  # type: ignore[union-attr]

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, subprotocols=["ocpp1.6"], compression=None):  # type: ignore[list-item]
            await _until_sigterm()

    _run_loop(main)


async def _until_sigterm() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def _run_loop(main: Callable[[], Any]) -> None:
    try:
        import uvloop  # the listener uses uvloop too, so the comparison is like for like

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# --- processes --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> int:
    """Children inherit the limit; 10,000 connections need more than the default 1,024 descriptors."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def proc_status_kib(pid: int, key: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid: int) -> float:
    fields_after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_after_name[11]) + int(fields_after_name[12])) / CLOCK_TICKS  # utime + stime


@dataclass
class Server:
    """A server under test: the listener, the bare websockets server or the ocpp-library reference."""

    name: str
    cmd: list[str]
    port: int
    log_path: Path
    health_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open for the process's life
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: see {self.log_path}")
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: see {self.log_path}")

    def _ready(self) -> bool:
        try:
            if self.health_url is not None:
                with urllib.request.urlopen(self.health_url, timeout=1) as resp:
                    return bool(resp.status == 200)
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def metrics(self) -> str:
        assert self.health_url is not None
        with urllib.request.urlopen(self.health_url.replace("/health", "/metrics"), timeout=10) as resp:
            return str(resp.read().decode())

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait (the listener flushes to Parquet); returns the seconds the exit took."""
        started = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise RuntimeError(f"{self.name} ignored SIGTERM for {timeout}s") from None
        return time.monotonic() - started

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self._log is not None:
            self._log.close()


def listener(work: Path, roll_seconds: float) -> Server:
    data_dir = work / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ocpp_opendata.cli",
        "listen",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--authorize",
        "accept-all",
        "--rate-limit",
        "0",
        "--roll-seconds",
        str(roll_seconds),
    ]
    return Server("listener", cmd, port, work / "listener.log", f"http://127.0.0.1:{port}/health")


def comparison_server(work: Path, kind: str) -> Server:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", kind, "--port", str(port)]
    return Server(kind, cmd, port, work / f"{kind}.log")


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.kill()


class Load:
    """The load generator process; results arrive as JSON lines on its stdout."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.proc = subprocess.Popen(
            [sys.executable, str(LOAD_SCRIPT), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def next_result(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"load generator silent for {timeout:.0f}s") from None
        if not line:
            raise RuntimeError(f"load generator exited with {self.proc.wait(10)} without a result")
        result: dict[str, Any] = json.loads(line)
        if "failed" in result:
            raise RuntimeError(f"load generator failed: {result['failed']} {result.get('first_errors')}")
        return result

    def release(self) -> None:
        """Tell an idle load to close its connections and finish."""
        assert self.proc.stdin is not None
        with suppress(BrokenPipeError):
            self.proc.stdin.write(b"go\n")
            self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def run_load(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    load = Load({**spec, "timeout": timeout})
    try:
        return load.next_result(timeout + 30)
    finally:
        load.kill()


def percentile_ms(sorted_us: list[int], q: float) -> float:
    if not sorted_us:
        return float("nan")
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))] / 1000


def read_latencies(path: Path) -> list[int]:
    values = array.array("I")
    with open(path, "rb") as f:
        values.frombytes(f.read())
    return sorted(values)


def parquet_rows(data_dir: Path, table: str) -> int:
    import duckdb

    files = list((data_dir / "raw" / table).glob("date=*/*.parquet"))
    if not files:
        return 0
    con = duckdb.connect()
    try:
        row = con.execute("select count(*) from read_parquet(?)", [[str(f) for f in files]]).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def metric_value(text: str, name: str, labels: str = "") -> float:
    # rows_written_total may be rendered in %g notation (1.2e+06); float() reads both.
    match = re.search(rf"^ocpp_opendata_{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def fsync_summary(text: str) -> str:
    """Group-commit fsyncs from the listener's histogram: count, mean, and how many took > 25 ms."""
    count = metric_value(text, "fsync_seconds_count")
    total = metric_value(text, "fsync_seconds_sum")
    fast = metric_value(text, "fsync_seconds_bucket", '{le="0.025"}')
    slowest = 0.0
    for bound, _n in re.findall(
        r'^ocpp_opendata_fsync_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.MULTILINE
    ):
        if bound != "+Inf" and float(_n) < count:
            slowest = max(slowest, float(bound))
    mean_ms = 1000 * total / count if count else float("nan")
    return (
        f"{count:,.0f} fsyncs, mean {mean_ms:.1f} ms, {count - fast:,.0f} over 25 ms, "
        f"slowest bucket > {slowest * 1000:g} ms"
    )


# --- parts ------------------------------------------------------------------------------------------


@dataclass
class Line:
    part: str
    figure: str
    target: str = ""
    ok: bool | None = None

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


def flood_against(server: Server, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    lat_file = work / f"lat-{server.name}.bin"
    cpu_before = proc_cpu_seconds(server.pid)
    rows_before = (
        metric_value(server.metrics(), "rows_written_total", '{table="meter_values"}')
        if (server.health_url)
        else 0.0
    )
    spec = {
        "mode": "flood",
        "url": server.url,
        "chargers": args.chargers,
        "duration": args.duration,
        "latency_file": str(lat_file),
    }
    result = run_load(spec, args.duration + 90)
    out: dict[str, Any] = {
        "acked": result["acked"],
        "elapsed": result["elapsed"],
        "fps": result["acked"] / result["elapsed"],
        "load_cpu": result["cpu_seconds"],
        "server_cpu": proc_cpu_seconds(server.pid) - cpu_before,
        "peak_rss_mib": proc_status_kib(server.pid, "VmHWM") / 1024,
        "errors": result["errors"],
    }
    lat = read_latencies(lat_file)
    out["p50"], out["p99"], out["max"] = percentile_ms(lat, 0.5), percentile_ms(lat, 0.99), lat[-1] / 1000
    if server.health_url:
        text = server.metrics()
        rows_during = metric_value(text, "rows_written_total", '{table="meter_values"}')
        out["wal_mib_at_end"] = metric_value(text, "wal_bytes") / 2**20
        out["rows_rolled_during_load"] = rows_during - rows_before
        out["flush_seconds"] = server.stop()
        out["parquet_rows"] = parquet_rows(work / "data", "meter_values")
        # Rows reach Parquet only when a WAL segment rolls; the SIGTERM flush rolls what is left, so
        # the end-to-end rate counts the flush time as well.
        out["rows_per_s"] = out["parquet_rows"] / (result["elapsed"] + out["flush_seconds"])
        out["rolled_per_s"] = out["rows_rolled_during_load"] / result["elapsed"]
    return out


def part_throughput(args: argparse.Namespace, work: Path) -> list[Line]:
    results: dict[str, dict[str, Any]] = {}
    targets = [("listener", lambda: listener(work, args.roll_seconds))]
    targets += [(kind, lambda kind=kind: comparison_server(work, kind)) for kind in args.compare]
    for name, make in targets:
        print(f"[throughput] {name}: {args.chargers} chargers, {args.duration:.0f} s ...", flush=True)
        with running(make()) as server:
            results[name] = flood_against(server, args, work)
        r = results[name]
        print(
            f"  {name:9s} acked {r['acked']:>9,} frames in {r['elapsed']:.1f} s = {r['fps']:>8,.0f} frames/s"
            f"  p50 {r['p50']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:7.1f} ms"
            f"  peak RSS {r['peak_rss_mib']:6.1f} MiB  server CPU {r['server_cpu']:5.1f} s"
            f"  load CPU {r['load_cpu']:5.1f} s  errors {r['errors']}",
            flush=True,
        )
        if "parquet_rows" in r:
            print(
                f"            Parquet meter_values rows after SIGTERM flush: {r['parquet_rows']:,}"
                f" (acked frames x {ROWS_PER_FRAME} = {r['acked'] * ROWS_PER_FRAME:,});"
                f" rolled during the load: {r['rows_rolled_during_load']:,.0f} ({r['rolled_per_s']:,.0f}/s);"
                f" WAL not yet rolled at the end {r['wal_mib_at_end']:.0f} MiB;"
                f" SIGTERM flush took {r['flush_seconds']:.1f} s;"
                f" end to end {r['rows_per_s']:,.0f} rows/s",
                flush=True,
            )
    ours = results["listener"]
    lines = [
        Line(
            "throughput",
            f"listener: {ours['fps']:,.0f} acked durable frames/s",
            f">= {TARGET_FRAMES_PER_S:,}",
            ours["fps"] >= TARGET_FRAMES_PER_S,
        ),
        Line(
            "throughput",
            f"listener: p50 {ours['p50']:.1f} ms, p99 {ours['p99']:.1f} ms ack latency (flooded)",
        ),
        Line(
            "throughput",
            f"listener: {ours['rows_per_s']:,.0f} meter_values rows/s into Parquet (incl. SIGTERM flush;"
            f" {ours['rolled_per_s']:,.0f}/s rolled during the load)",
            f"= {ROWS_PER_FRAME} x frames",
            ours["parquet_rows"] == ours["acked"] * ROWS_PER_FRAME,
        ),
        Line(
            "throughput",
            f"listener: peak RSS {ours['peak_rss_mib']:.0f} MiB, CPU {ours['server_cpu']:.1f} s;"
            f" load generator CPU {ours['load_cpu']:.1f} s over {ours['elapsed']:.0f} s",
        ),
    ]
    for name in args.compare:
        other = results[name]
        ratio = ours["fps"] / other["fps"]
        target, ok = ("", None)
        if name == "bare":
            target, ok = f">= {TARGET_RATIO_TO_BARE:.2f} (ambition)", ratio >= TARGET_RATIO_TO_BARE
        lines.append(
            Line(
                "throughput",
                f"{name}: {other['fps']:,.0f} frames/s, p50 {other['p50']:.1f} ms, p99 {other['p99']:.1f}"
                f" ms, peak RSS {other['peak_rss_mib']:.0f} MiB; listener/{name} = {ratio:.2f}",
                target,
                ok,
            )
        )
    return lines


def part_latency(args: argparse.Namespace, work: Path) -> list[Line]:
    print(
        f"[latency] listener: {args.rate:,.0f} frames/s total from {args.chargers} chargers, "
        f"{args.latency_duration:.0f} s ...",
        flush=True,
    )
    lat_file = work / "lat-paced.bin"
    with running(listener(work, args.roll_seconds)) as server:
        spec = {
            "mode": "paced",
            "url": server.url,
            "chargers": args.chargers,
            "rate": args.rate,
            "duration": args.latency_duration,
            "latency_file": str(lat_file),
        }
        result = run_load(spec, args.latency_duration + 60)
        fsyncs = fsync_summary(server.metrics())
        rolls = metric_value(server.metrics(), "rolls_total")
        server.stop()
    lat = read_latencies(lat_file)
    p50, p99, p999 = (percentile_ms(lat, q) for q in (0.5, 0.99, 0.999))
    rate = result["acked"] / result["elapsed"]
    print(
        f"  acked {result['acked']:,} frames = {rate:,.0f} frames/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
        f"p99.9 {p999:.1f} ms  max {lat[-1] / 1000:.1f} ms  late sends {result['late_sends']}  "
        f"load CPU {result['cpu_seconds']:.1f} s  errors {result['errors']}",
        flush=True,
    )
    print(f"  listener: {fsyncs}; {rolls:.0f} Parquet rolls", flush=True)
    return [
        Line(
            "latency",
            f"{rate:,.0f} frames/s paced: p50 {p50:.1f} ms, p99 {p99:.1f} ms, p99.9 {p999:.1f} ms",
            f"p99 < {TARGET_P99_MS:.0f} ms",
            p99 < TARGET_P99_MS,
        ),
    ]


def part_idle(args: argparse.Namespace, work: Path) -> list[Line]:
    n = args.idle_connections
    print(f"[idle] listener: {n:,} connections, one BootNotification each, then held idle ...", flush=True)
    with running(listener(work, args.roll_seconds)) as server:
        base_mib = proc_status_kib(server.pid, "VmRSS") / 1024
        load = Load(
            {
                "mode": "idle",
                "url": server.url,
                "connections": n,
                "concurrency": args.concurrency,
                "hold_seconds": 600,
                "timeout": 900,
            }
        )
        try:
            ready = load.next_result(600)
            time.sleep(args.settle)  # let buffers drain and a roll happen, so RSS is the steady state
            rss_mib = proc_status_kib(server.pid, "VmRSS") / 1024
            hwm_mib = proc_status_kib(server.pid, "VmHWM") / 1024
            gauge = metric_value(server.metrics(), "connections")
            load.release()
            result = load.next_result(120)
        finally:
            load.kill()
        server.stop()
    per_conn = (rss_mib - base_mib) * 1024 / max(ready["open"], 1)
    print(
        f"  {ready['open']:,} open after {ready['open_seconds']:.1f} s (listener gauge {gauge:,.0f}, "
        f"{result['still_open_at_end']:,} still open after {args.settle:.0f} s idle); listener RSS "
        f"{base_mib:.0f} MiB empty -> {rss_mib:.0f} MiB ({per_conn:.1f} KiB/connection), "
        f"peak {hwm_mib:.0f} MiB; "
        f"errors {result['errors']} {result['first_errors']}",
        flush=True,
    )
    all_open = ready["open"] == n and result["still_open_at_end"] == n
    return [
        Line(
            "idle",
            f"{ready['open']:,}/{n:,} idle connections: RSS {rss_mib:.0f} MiB (peak {hwm_mib:.0f} MiB,"
            f" {per_conn:.1f} KiB/conn)",
            f"< {TARGET_IDLE_MIB:.0f} MiB, all open",
            all_open and rss_mib < TARGET_IDLE_MIB,
        ),
    ]


def part_storm(args: argparse.Namespace, work: Path) -> list[Line]:
    n = args.storm_chargers
    print(
        f"[storm] listener: {n:,} chargers connect ({args.concurrency} in flight), Boot + 2 Status each ...",
        flush=True,
    )
    with running(listener(work, args.roll_seconds)) as server:
        cpu_before = proc_cpu_seconds(server.pid)
        spec = {"mode": "storm", "url": server.url, "chargers": n, "concurrency": args.concurrency}
        result = run_load(spec, 600)
        cpu = proc_cpu_seconds(server.pid) - cpu_before
        hwm_mib = proc_status_kib(server.pid, "VmHWM") / 1024
        server.stop()
        boots = parquet_rows(work / "data", "boot_notifications")
        statuses = parquet_rows(work / "data", "status_notifications")
    print(
        f"  {result['completed']:,}/{n:,} chargers acknowledged in {result['elapsed']:.1f} s "
        f"({result['acked']:,} acks); Parquet: {boots:,} boot rows, {statuses:,} status rows; listener CPU "
        f"{cpu:.1f} s, peak RSS {hwm_mib:.0f} MiB; load CPU {result['cpu_seconds']:.1f} s; errors "
        f"{result['errors']} {result['first_errors']}",
        flush=True,
    )
    complete = result["completed"] == n and boots == n and statuses == 2 * n
    return [
        Line(
            "storm",
            f"{result['completed']:,}/{n:,} chargers (Boot + 2 Status) acknowledged in "
            f"{result['elapsed']:.1f} s",
            f"< {TARGET_STORM_S:.0f} s, all stored",
            complete and result["elapsed"] < TARGET_STORM_S,
        ),
    ]


# Defaults of the full run and of --quick; an explicit flag wins over both.
SCALED: dict[str, tuple[float, float]] = {
    "duration": (20.0, 10.0),  # long enough that Parquet rolls start inside the window
    "latency_duration": (20.0, 5.0),
    "settle": (10.0, 3.0),
    "idle_connections": (10_000, 2_000),
    "storm_chargers": (10_000, 2_000),
}
PARTS = {"throughput": part_throughput, "latency": part_latency, "idle": part_idle, "storm": part_storm}


def print_summary(lines: list[Line], args: argparse.Namespace) -> None:
    width = max(len(line.figure) for line in lines)
    target_width = max(12, *(len(line.target) for line in lines))
    print()
    print(
        f"Summary (listener --rate-limit 0 --roll-seconds {args.roll_seconds:g}; uvloop everywhere if "
        f"installed; {os.cpu_count()} cores shared with the load generator)"
    )
    print(f"{'part':11s} {'figure':{width}s}  {'target':{target_width}s}  verdict")
    print(f"{'-' * 11} {'-' * width}  {'-' * target_width}  -------")
    for line in lines:
        print(f"{line.part:11s} {line.figure:{width}s}  {line.target:{target_width}s}  {line.verdict}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    p.add_argument("--quick", action="store_true", help="scaled-down run of about a minute")
    p.add_argument("--chargers", type=int, default=50, help="chargers for throughput and latency (50)")
    p.add_argument("--duration", type=float, help="seconds of flood per server (20; --quick 10)")
    p.add_argument("--compare", default="bare,ocpp", help="comparison servers (bare,ocpp; empty: none)")
    p.add_argument(
        "--roll-seconds", type=float, default=5.0, help="listener --roll-seconds (5: rolls in window)"
    )
    p.add_argument("--rate", type=float, default=1000.0, help="total frames/s of the latency part (1000)")
    p.add_argument("--latency-duration", type=float, help="seconds (20; --quick 5)")
    p.add_argument("--idle-connections", type=int, help="(10000; --quick 2000)")
    p.add_argument("--settle", type=float, help="seconds idle before RSS is read (10; --quick 3)")
    p.add_argument("--storm-chargers", type=int, help="(10000; --quick 2000)")
    p.add_argument(
        "--concurrency", type=int, default=500, help="connections opening at once (idle, storm; 500)"
    )
    p.add_argument("--work-dir", type=Path, help="keep data and logs here instead of a temp dir")
    p.add_argument("--serve", choices=["bare", "ocpp"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, (full, quick) in SCALED.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.parts = [part for part in args.parts.split(",") if part]
    args.compare = [kind for kind in args.compare.split(",") if kind]
    unknown = [part for part in args.parts if part not in PARTS] + [
        k for k in args.compare if k not in ("bare", "ocpp")
    ]
    if unknown:
        p.error(f"unknown part or comparison server: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        raise_nofile()
        (serve_bare if args.serve == "bare" else serve_reference)(args.port)
        return 0
    hard = raise_nofile()
    needed = max(args.idle_connections, args.storm_chargers) + 200
    if hard < needed:
        print(f"warning: RLIMIT_NOFILE hard limit {hard} < {needed}: connection counts will be capped")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="ocpp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    lines: list[Line] = []
    try:
        for part in args.parts:
            try:
                lines += PARTS[part](args, work)
            except Exception as exc:  # one broken part must not hide the others' figures
                print(f"[{part}] FAILED: {type(exc).__name__}: {exc}", flush=True)
                lines.append(Line(part, f"failed: {exc}"[:100], "runs", False))
    finally:
        failed = any(line.figure.startswith("failed") for line in lines)
        if args.work_dir is None and not failed:
            shutil.rmtree(work, ignore_errors=True)
        elif failed:
            print(f"logs and data kept in {work}")
    print_summary(lines, args)
    return 0 if all(line.ok is not False for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
