"""The hostile review's /v1/sql attacks (issue 20, items 1, 2, 6) against a real API: how long each
takes to be refused, the peak memory of the SQL worker processes, and whether the rest of the API keeps
answering meanwhile.

    python benchmarks/sql_attacks.py [--data-dir DIR] [--time-limit 5] [--memory-limit 256MB]

Without --data-dir a synthetic release (tests/api/builder.py) is written to a temporary folder. The API
runs with `ocpp-opendata serve` and its defaults unless given. Each attack runs alone, then all of them
two at a time (the review: "two in flight double it"). A poller asks `/v1/datasets/stations/rows` ten
times a second the whole time and reports its latency. Targets: every attack ends (4xx) within the time
limit + 1 s; the workers' peak RSS stays under the memory limit + 100 MB; no poll fails.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.api import free_port  # noqa: E402

JOIN_200 = "SELECT count(*) AS n FROM " + ", ".join(f"range(2) t{i}" for i in range(200))
JOIN_400 = "SELECT count(*) AS n FROM " + ", ".join(f"range(2) t{i}" for i in range(400))
ATTACKS = {
    "length(range(1e8))": "SELECT length(range(100000000)) AS n",
    "list_transform over 1e8": "SELECT length(list_transform(range(100000000), lambda x: x::VARCHAR)) AS n",
    "repeat 1 MB x 800 rows": "SELECT repeat('x', 1000000) AS s FROM range(800)",
    "200-way join chain": JOIN_200,
    "400-way join chain": JOIN_400,
    "CTE in a subquery unlocking duckdb_databases": "SELECT database_name, path FROM (WITH duckdb_databases "
    "AS (SELECT 1 x) SELECT x FROM duckdb_databases) t, duckdb_databases",
    # Within every bound of the parse tree, so only the time limit stops it.
    "CPU-bound scan (time limit)": "SELECT sum(hash(i)) AS h FROM range(1000000) a(i), range(1000000) b(j)",
}


def _bytes(text: str) -> int:
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
    t = text.strip().upper()
    for unit, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * factor)
    return int(t)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the SQL workers are the API's children or its forkserver's)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak RSS of the API process and of its largest descendant, every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.api_peak = 0
        self.worker_peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.api_peak = max(self.api_peak, rss_bytes(self.pid))
            for child in descendants(self.pid):
                self.worker_peak = max(self.worker_peak, rss_bytes(child))
            time.sleep(0.02)


class Poller(threading.Thread):
    """An ordinary user of the API while the attacks run."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url + "/v1/datasets/stations/rows?limit=5"
        self.latencies: list[float] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    r.read()
                self.latencies.append(time.monotonic() - started)
            except OSError:
                self.failures += 1
            time.sleep(0.1)


def ask(url: str, query: str) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(
            url + "/v1/sql?" + urllib.parse.urlencode({"q": query}), timeout=300
        ) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, time.monotonic() - started, body.decode(errors="replace")[:90]


def two_at_once(url: str, query: str) -> list[tuple[int, float, str]]:
    results: list[tuple[int, float, str]] = []
    pair = [threading.Thread(target=lambda: results.append(ask(url, query))) for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join()
    return results


def start_api(data_dir: Path, time_limit: float, memory_limit: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocpp_opendata.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir), "--sql-time-limit", str(time_limit), "--sql-memory-limit", memory_limit,
         "--log-level", "WARNING"],
        cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if ask(url, "SELECT 1 AS x")[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the API did not start")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, help="a data root with published/current (default: synthetic)"
    )
    parser.add_argument("--time-limit", type=float, default=5.0, help="--sql-time-limit of the API (s)")
    parser.add_argument("--memory-limit", default="256MB", help="--sql-memory-limit of the API")
    args = parser.parse_args()
    tmp = None
    data_dir = args.data_dir
    if data_dir is None:
        from tests.api.builder import Shape, build_release

        tmp = Path(tempfile.mkdtemp(prefix="sql-attacks-"))
        data_dir = tmp / "data"
        data_dir.mkdir()
        build_release(data_dir, Shape(stations=50, days=31, first_day=dt.date(2026, 10, 1)))
    proc, url = start_api(data_dir, args.time_limit, args.memory_limit)
    sampler, poller = Sampler(proc.pid), Poller(url)
    sampler.start()
    poller.start()
    late, rows = [], []
    try:
        for label, query in ATTACKS.items():
            status, took, body = ask(url, query)
            rows.append((label, "alone", status, took, body))
        for label, query in ATTACKS.items():
            for status, took, body in two_at_once(url, query):
                rows.append((label, "two at once", status, took, body))
            time.sleep(3)  # a killed worker is replaced meanwhile (otherwise the next pair sees a 429)
    finally:
        sampler.stop.set()
        poller.stop.set()
        sampler.join()
        poller.join()
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        stop_seconds = time.monotonic() - stopping
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    limit = args.time_limit
    print(f"API with --sql-time-limit {limit:g} s, --sql-memory-limit {args.memory_limit}")
    print(f"{'attack':48} {'mode':12} {'status':>6} {'seconds':>8}  answer")
    for label, mode, status, took, body in rows:
        # A query that is refused with a 4xx, within the limit + 1 s (the test of the issue).
        ok = 400 <= status < 500 and took <= limit + 1
        if not ok:
            late.append(label)
        print(f"{label:48} {mode:12} {status:>6} {took:8.2f}  {'' if ok else 'MISSED '}{body}")
    mem_cap = _bytes(args.memory_limit) + 100 * 1024**2
    lat = sorted(poller.latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    worker, api = sampler.worker_peak / 1024**2, sampler.api_peak / 1024**2
    print(f"peak RSS of the largest SQL worker: {worker:.0f} MiB (target < {mem_cap / 1024**2:.0f} MiB); "
          f"API process: {api:.0f} MiB")  # fmt: skip
    print(f"rest of the API meanwhile: {len(lat)} answers, p50 {statistics.median(lat) * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms, {poller.failures} failed")  # fmt: skip
    print(f"SIGTERM to exit: {stop_seconds:.2f} s")
    missed = bool(late) or sampler.worker_peak >= mem_cap or poller.failures > 0 or stop_seconds > 10
    print("all targets met" if not missed else f"targets missed: {sorted(set(late))}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
