"""Pipeline benchmark: one synthetic city-day laid out as the listener writes it, materialized.

    python benchmarks/pipeline.py                   # 1,000 chargers, one day (about 11.5 M meter rows)
    python benchmarks/pipeline.py --chargers 200    # scaled down
    python benchmarks/pipeline.py --backfill-days 30 --chargers 100   # per-day step times over a backfill

The raw zone gets one file per table per simulated minute (the listener rolls every <= 60 s): every
charger sends one MeterValues per minute with 8 sampled values (register, power, 3 currents, 3
voltages), ~3 sessions a day with their status changes and transaction events, and one connection.

Each step runs in its own process (real Dagster materializations on an ephemeral instance); its wall
time is measured inside the process around the materialization only (Dagster and Python start-up
excluded) and its peak RSS comes from wait4(). In the same run a bare DuckDB hourly-energy aggregation
over the same meter files gives the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.schema import TABLES, partition_dir  # noqa: E402

KEY = "benchmark-pseudonym-key-0123456789"
STEPS = ("index", "work_sessions", "work_availability", "work_station_minutes", "published_release", "floor")
MEASURANDS = [
    ("Energy.Active.Import.Register", None, "Wh"),
    ("Power.Active.Import", None, "W"),
    ("Current.Import", "L1", "A"),
    ("Current.Import", "L2", "A"),
    ("Current.Import", "L3", "A"),
    ("Voltage", "L1-N", "V"),
    ("Voltage", "L2-N", "V"),
    ("Voltage", "L3-N", "V"),
]


def _dict(values: list[str | None], idx: list[int]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), pa.array(values, pa.string())).cast(
        pa.string()
    )


def _plan(chargers: int, rng: random.Random) -> list[list[tuple[int, int]]]:
    """Per charger: sessions as (start minute, end minute) of the local day."""
    plans = []
    for _ in range(chargers):
        starts = sorted(rng.sample(range(6 * 60, 21 * 60), 3))
        sessions, busy_until = [], -1
        for st in starts:
            if st <= busy_until + 5:
                continue
            e = min(st + rng.randint(30, 180), 1439)
            sessions.append((st, e))
            busy_until = e
        plans.append(sessions)
    return plans


def generate_day(data_dir: Path, day: date, chargers: int, seed: int) -> int:
    """Write one day of raw files (one file per table and minute); returns meter rows written."""
    rng = random.Random(seed)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)  # local midnight (CET)
    cps = [f"BENCH{i:05d}" for i in range(chargers)]
    plans = _plan(chargers, rng)
    power = [[0.0] * 1441 for _ in range(chargers)]
    for i, sessions in enumerate(plans):
        for st, e in sessions:
            for m in range(st, e):
                power[i][m] = 11000.0
    register = []
    for i in range(chargers):
        # The register runs on across days (a charger's meter never restarts at the same reading).
        reg, acc = [], 1_000_000.0 + (day - date(2026, 1, 1)).days * 200_000.0
        for m in range(1441):
            reg.append(acc)
            acc += power[i][m] / 60.0
        register.append(reg)
    n_meas = len(MEASURANDS)
    n = chargers * n_meas
    meter_schema = TABLES["meter_values"].schema
    cp_idx = [i for i in range(chargers) for _ in range(n_meas)]
    meas_idx = list(range(n_meas)) * chargers
    zeros = [0] * n
    constant = {
        "charge_point_id": _dict(cps, cp_idx),
        "connection_id": _dict([f"{c}-1" for c in cps], cp_idx),
        "ocpp_version": _dict(["1.6"], zeros),
        "message_id": pa.nulls(n, pa.string()),
        "source_action": _dict(["MeterValues"], zeros),
        "value_index": pa.array(meas_idx, pa.int32()),
        "connector_id": pa.array([1] * n, pa.int32()),
        "evse_id": pa.nulls(n, pa.int32()),
        "transaction_id": pa.nulls(n, pa.string()),
        "measurand": _dict([m[0] for m in MEASURANDS], meas_idx),
        "phase": _dict([m[1] for m in MEASURANDS], meas_idx),
        "location": _dict(["Outlet"], zeros),
        "context": _dict(["Sample.Periodic"], zeros),
        "format": _dict(["Raw"], zeros),
        "unit": _dict([m[2] for m in MEASURANDS], meas_idx),
        "unit_raw": pa.nulls(n, pa.string()),
        "multiplier": pa.nulls(n, pa.int32()),
        "value_raw": _dict(["0"], zeros),
        "quality": pa.nulls(n, pa.list_(pa.string())),
    }
    ts_type = pa.timestamp("us", tz="UTC")
    rows = 0
    for minute in range(1440):
        t = start + timedelta(minutes=minute)
        values: list[float] = []
        for i in range(chargers):
            w = power[i][minute]
            amps = w / 230.0 / 3.0
            values += [register[i][minute], w, amps, amps, amps, 230.0, 230.0, 230.0]
        us = int(t.timestamp()) * 1_000_000
        cols = {
            **constant,
            "received_at": pa.array([us + 1_000_000] * n, ts_type),
            "timestamp": pa.array([us] * n, ts_type),
            "value": pa.array(values, pa.float64()),
        }
        tbl = pa.table({f.name: cols[f.name] for f in meter_schema}, schema=meter_schema)
        path = partition_dir(data_dir / "raw", "meter_values", (t + timedelta(seconds=1)).date())
        path = path / f"bench-{minute:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tbl, path, compression="zstd")
        rows += n
    _events(data_dir, start, cps, plans, register)
    return rows


def _write_rows(data_dir: Path, table: str, rows: list[dict]) -> None:
    schema = TABLES[table].schema
    by_minute: dict[tuple[date, int], list[dict]] = {}
    for r in rows:
        t = r["received_at"]
        by_minute.setdefault((t.date(), t.hour * 60 + t.minute), []).append(r)
    for (d, m), part in by_minute.items():
        tbl = pa.table(
            {f.name: pa.array([r.get(f.name) for r in part], f.type) for f in schema}, schema=schema
        )
        path = partition_dir(data_dir / "raw", table, d) / f"bench-{m:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(tbl, path, compression="zstd")


def _events(
    data_dir: Path, start: datetime, cps: list[str], plans: list, register: list[list[float]]
) -> None:
    statuses, txs, conns = [], [], []
    sec = timedelta(seconds=1)

    def ctx(cp: str, t: datetime) -> dict:
        return {
            "received_at": t + sec,
            "charge_point_id": cp,
            "connection_id": f"{cp}-1",
            "ocpp_version": "1.6",
        }

    for i, cp in enumerate(cps):
        conns.append({"received_at": start - timedelta(hours=2), "event": "connected", "charge_point_id": cp,
                      "connection_id": f"{cp}-1", "listener_id": "bench"})  # fmt: skip
        statuses.append({**ctx(cp, start), "timestamp": start, "connector_id": 1, "status": "Available"})
        for k, (s, e) in enumerate(plans[i]):
            ts, te = start + timedelta(minutes=s), start + timedelta(minutes=e)
            tx = f"{start:%Y%m%d}-{i}-{k}"  # transaction ids are unique per charger, never reused daily
            statuses.append({**ctx(cp, ts), "timestamp": ts, "connector_id": 1, "status": "Charging"})
            txs.append({**ctx(cp, ts), "source_action": "StartTransaction", "event_type": "Started",
                        "timestamp": ts, "transaction_id": tx, "connector_id": 1,
                        "id_tag": f"TAG{i % 5000:05d}", "meter_start_wh": float(register[i][s])})  # fmt: skip
            txs.append({**ctx(cp, te), "source_action": "StopTransaction", "event_type": "Ended",
                        "timestamp": te, "transaction_id": tx, "meter_stop_wh": float(register[i][e]),
                        "stopped_reason": "Local"})  # fmt: skip
            statuses.append({**ctx(cp, te), "timestamp": te, "connector_id": 1, "status": "Available"})
    _write_rows(data_dir, "status_notifications", statuses)
    _write_rows(data_dir, "transaction_events", txs)
    _write_rows(data_dir, "connections", conns)
    registry = ["id,name,latitude,longitude,area,max_power_kw,access"]
    registry += [f"{cp},Bench {cp},52.{i:05d},5.{i:05d},Area{i % 12},22,public" for i, cp in enumerate(cps)]
    (data_dir / "stations.csv").write_text("\n".join(registry) + "\n")


def run_step(step: str, data_dir: Path, day: date) -> None:
    """Inside the child process: one step, timed around the work only; prints JSON."""
    os.environ["OCPP_OPENDATA_DATA_DIR"] = str(data_dir)
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = KEY
    os.environ["OCPP_OPENDATA_TIMEZONE"] = "Europe/Stockholm"
    if step == "floor":
        import duckdb

        files = sorted(str(p) for p in (data_dir / "raw" / "meter_values").glob("date=*/*.parquet"))
        t0 = time.perf_counter()
        duckdb.sql(
            """SELECT charge_point_id, date_trunc('hour', "timestamp") AS h, max(value) - min(value) AS wh
               FROM read_parquet($f) WHERE measurand = 'Energy.Active.Import.Register' GROUP BY ALL""",
            params={"f": files},
        ).fetchall()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    from ocpp_opendata.settings import load_settings
    from pipelines.raw_index import RawIndex

    settings = load_settings()
    if step == "index":
        t0 = time.perf_counter()
        RawIndex(settings.data_dir, settings.clock_skew_minutes).refresh()
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    from dagster import AssetKey, DagsterInstance

    from pipelines.definitions import DAILY_JOB, PUBLISH_JOB, build_definitions

    defs = build_definitions(settings)
    with DagsterInstance.ephemeral() as instance:
        t0 = time.perf_counter()
        if step == "published_release":
            result = defs.resolve_job_def(PUBLISH_JOB).execute_in_process(instance=instance)
        else:
            result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
                partition_key=day.isoformat(), instance=instance, asset_selection=[AssetKey(step)]
            )
        seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "success": result.success}))


def measure(step: str, data_dir: Path, day: date) -> tuple[float, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--step", step, "--data-dir", str(data_dir), "--date", day.isoformat()],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"step {step} failed")
    facts = json.loads(out.strip().splitlines()[-1])
    if facts.get("success") is False:
        raise SystemExit(f"step {step} did not succeed")
    return facts["seconds"], usage.ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chargers", type=int, default=1000)
    ap.add_argument("--backfill-days", type=int, default=0, help="Also time a backfill of this many days.")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the data in this folder.")
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--date", type=date.fromisoformat, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        run_step(args.step, args.data_dir, args.date)
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="ocpp-bench-"))
    data_dir = base / "data"
    day = date(2026, 3, 10)
    try:
        t0 = time.perf_counter()
        rows = generate_day(data_dir, day, args.chargers, seed=1)
        print(f"generated {args.chargers} chargers, one day: {rows:,} meter rows in 1,440 files per table "
              f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        total = 0.0
        print(f"{'step':<24}{'wall s':>10}{'peak RSS MiB':>15}")
        for step in STEPS:
            seconds, rss = measure(step, data_dir, day)
            if step not in ("floor", "published_release", "index"):
                total += seconds
            print(f"{step:<24}{seconds:>10.2f}{rss:>15.0f}")
        print(f"{'partition (3 assets)':<24}{total:>10.2f}")
        if args.backfill_days:
            backfill(data_dir, day, args)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


def backfill(data_dir: Path, first: date, args: argparse.Namespace) -> None:
    """Per-day step times over a growing history: daily steps must stay flat."""
    print(f"\nbackfill of {args.backfill_days} days, {args.chargers} chargers")
    print(f"{'day':<12}{'sessions s':>12}{'availability s':>16}{'minutes s':>11}{'publish s':>11}  rebuilt")
    for i in range(1, args.backfill_days + 1):
        d = first + timedelta(days=i)
        generate_day(data_dir, d, args.chargers, seed=i + 1)
        measure("index", data_dir, d)
        times = [
            measure(s, data_dir, d)[0] for s in ("work_sessions", "work_availability", "work_station_minutes")
        ]
        pub = measure("published_release", data_dir, d)[0] if i % 5 == 0 else float("nan")
        line = f"{d.isoformat():<12}{times[0]:>12.2f}{times[1]:>16.2f}{times[2]:>11.2f}{pub:>11.2f}"
        print(line + (f"  {_rebuilt(data_dir)}" if i % 5 == 0 else ""))


def _rebuilt(data_dir: Path) -> str:
    """What the release just published rebuilt (its manifest's `rebuilt` record)."""
    manifest = json.loads((data_dir / "published" / "current" / "manifest.json").read_text())
    r = manifest.get("rebuilt", {})
    days = len(manifest.get("inputs", {}).get("days", {}))
    changed = "all" if r.get("full") else len(r.get("changed_days", []))
    return f"{changed} changed days of {days}"


if __name__ == "__main__":
    main()
