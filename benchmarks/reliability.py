"""Reliability benchmark: a city-month of status data through the reliability build.

    python benchmarks/reliability.py                          # 1,000 stations, 30 days (~30 M rows)
    python benchmarks/reliability.py --stations 200 --days 10 # scaled down

The raw zone is synthesized with DuckDB straight into the listener's schema (ingest/schema.py), one
file per table and receipt day: every station has two connectors and sends a Heartbeat every
--heartbeat seconds (inbound `frames` rows); each connector has 12 sessions a day (Preparing,
Charging, SuspendedEV, Finishing, Available), a Faulted hour on one day in 15 and an Unavailable
maintenance hour on one day in 29; one station-day in 20 loses its connection for an hour (a
disconnect, no heartbeats, a new connection). The sessions work table those statuses belong to is
written directly (the sessions step is benchmarked by benchmarks/pipeline.py), one in 25 without
energy.

Steps, each in its own process (wall time around the work only, peak RSS from wait4()):
- index: the raw index over every file;
- port_states: the daily step that derives each port's states (`availability_for_day`, which writes
  the availability and port-state work tables from the statuses, connections and heartbeats), over
  every day of the month;
- reliability: `build_reliability` over the month (port_outages, port_uptime_monthly,
  network_reliability_monthly/yearly, station_session_outcomes_daily).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.schema import partition_dir  # noqa: E402
from pipelines.storage import work_path  # noqa: E402
from pipelines.transforms.availability import AVAILABILITY_SCHEMA  # noqa: E402

KEY = "benchmark-pseudonym-key-0123456789"
TZ = "UTC"  # local days are receipt days: one raw file per table and day
FIRST = date(2026, 3, 1)
STEPS = ("index", "daily", "reliability")
SYNTH = "bench_synthesized_port_states"  # the synthesized port states of the days the daily step builds
SYNTH_AV = "bench_synthesized_availability"  # and their station-hour minutes


def _copy(con: duckdb.DuckDBPyConnection, sql: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE out AS {sql}")
    rows = con.execute("SELECT count(*) FROM out").fetchone()[0]  # type: ignore[index]
    con.execute(f"COPY out TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    return int(rows)


def _port_states_sql(day: date, t0: str, off: str) -> str:
    """The port-state work rows the daily step derives from the day's statuses (every port is
    Available at midnight; an offline hour is cut out of the states and is a row of its own)."""
    end = f"{t0} + INTERVAL 1 DAY"
    h2, h3 = f"{t0} + INTERVAL 2 HOUR", f"{t0} + INTERVAL 3 HOUR"
    return f"""
        WITH e AS (
            SELECT i, cp, conn, t, status, error_code, 1 AS o FROM ev
            UNION ALL SELECT i, cp, c::INTEGER, {t0}, 'Available', NULL, 0 FROM st, range(1, 3) a(c)
        ),
        iv AS (
            SELECT i, cp, conn, t AS a, coalesce(lead(t) OVER w, {end}) AS b, status,
                   CASE WHEN status = 'Faulted' THEN nullif(error_code, 'NoError') END AS error_code
            FROM e WINDOW w AS (PARTITION BY cp, conn ORDER BY t, o)
        ),
        cut AS (
            SELECT i, cp, conn, a, b, status, error_code FROM iv WHERE NOT {off}
            UNION ALL
            SELECT i, cp, conn, a, least(b, {h2}), status, error_code FROM iv WHERE {off} AND a < {h2}
            UNION ALL
            SELECT i, cp, conn, greatest(a, {h3}), b, status, error_code FROM iv WHERE {off} AND b > {h3}
            UNION ALL SELECT i, cp, c::INTEGER, {h2}, {h3}, NULL, NULL FROM st, range(1, 3) a(c) WHERE {off}
        )
        SELECT DATE '{day.isoformat()}' AS date, cp AS station_id, conn AS connector_id,
               a AS start, b AS "end",
               CASE WHEN status IS NULL THEN 'offline' WHEN status = 'Available' THEN 'available'
                    WHEN status = 'Charging' THEN 'charging' WHEN status = 'Faulted' THEN 'faulted'
                    WHEN status = 'Unavailable' THEN 'unavailable' ELSE 'occupied' END AS state,
               status, error_code, NULL::VARCHAR AS vendor_id, NULL::VARCHAR AS vendor_error_code,
               NULL::VARCHAR AS info
        FROM cut WHERE a < b ORDER BY station_id, connector_id, start"""


def _availability_sql(day: date, t0: str) -> str:
    """The station-hour minutes per state of the port states just written (table `out`); the daily
    step writes the same (all_busy_minutes aside, which the reliability build does not read)."""
    cats = ("available", "occupied", "charging", "reserved", "unavailable", "faulted", "offline", "unknown")
    # occupied_minutes include the charging ones (charging is the part of occupied with energy flowing)
    states = {c: ("occupied", "charging") if c == "occupied" else (c, c) for c in cats}
    minutes = ", ".join(
        f"coalesce(sum(m) FILTER (WHERE state IN {states[c]}), 0)::DOUBLE AS {c}_minutes" for c in cats
    )
    return f"""
        WITH h AS (SELECT {t0} + to_hours(k::BIGINT) AS h FROM range(24) r(k)),
        x AS (
            SELECT o.station_id, h.h, o.connector_id, o.state,
                   epoch(least(o."end", h.h + INTERVAL 1 HOUR) - greatest(o.start, h.h)) / 60 AS m
            FROM out o JOIN h ON o.start < h.h + INTERVAL 1 HOUR AND o."end" > h.h
        )
        SELECT DATE '{day.isoformat()}' AS date, station_id, h AS hour_start,
               count(DISTINCT connector_id)::INTEGER AS connectors, {minutes}, 0.0 AS all_busy_minutes
        FROM x GROUP BY station_id, h ORDER BY station_id, hour_start"""


def generate(
    data_dir: Path, stations: int, days: int, heartbeat_s: int, daily_days: int, raw: bool = True
) -> dict[str, int]:
    """Write the raw zone, the sessions and port-state work tables and stations.csv; returns rows per
    table. The port states of the last `daily_days` days go to SYNTH: the daily step writes the real ones."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""CREATE TEMP TABLE st AS
        SELECT i, printf('BENCH%05d', i) AS cp FROM range({stations}) t(i)""")
    counts = {"status_notifications": 0, "frames": 0, "connections": 0, "sessions": 0, "port_states": 0}
    for d in range(days):
        day = FIRST + timedelta(days=d)
        t0 = f"TIMESTAMPTZ '{day.isoformat()} 00:00:00+00'"
        # Per station-day: is it offline from 02:00 to 03:00 (one in 20)?
        off = f"((i * 7 + {d}) % 20 = 0)"
        conn_id = f"cp || '-{d}-' || CASE WHEN {off} AND t >= {t0} + INTERVAL 3 HOUR THEN 'b' ELSE 'a' END"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE ev AS
            WITH s AS (
                SELECT i, cp, c::INTEGER AS conn, k,
                       {t0} + to_minutes((k * 100 + (i * 13 + c * 31 + {d} * 7) % 30)::BIGINT) AS p
                FROM st, range(1, 3) a(c), range(12) b(k)
            ),
            seq AS (
                SELECT i, cp, conn, p + to_seconds(o::BIGINT) AS t, status, NULL::VARCHAR AS error_code
                FROM s, (VALUES (0, 'Preparing'), (60, 'Charging'), (2400, 'SuspendedEV'),
                                (3300, 'Finishing'), (3360, 'Available')) v(o, status)
                UNION ALL
                SELECT i, cp, c::INTEGER, {t0} + INTERVAL 21 HOUR + to_seconds(o::BIGINT), status, code
                FROM st, range(1, 3) a(c),
                     (VALUES (0, 'Faulted', 'GroundFailure'), (3600, 'Available', 'NoError'))
                     v(o, status, code)
                WHERE (i + c * 7 + {d}) % 15 = 0
                UNION ALL
                SELECT i, cp, c::INTEGER,
                       {t0} + INTERVAL 22 HOUR + INTERVAL 30 MINUTE + to_seconds(o::BIGINT), status, 'NoError'
                FROM st, range(1, 3) a(c), (VALUES (0, 'Unavailable'), (3600, 'Available')) v(o, status)
                WHERE (i * 5 + c + {d}) % 29 = 1
            )
            SELECT * FROM seq
            WHERE NOT ({off} AND t >= {t0} + INTERVAL 2 HOUR AND t < {t0} + INTERVAL 3 HOUR)""")
        if raw:  # (without: only the work tables the reliability build reads)
            counts["status_notifications"] += _copy(con, f"""
                SELECT t + INTERVAL 1 SECOND AS received_at, cp AS charge_point_id,
                       {conn_id} AS connection_id,
                       '1.6' AS ocpp_version, 'm' || row_number() OVER () AS message_id, t AS "timestamp",
                       conn AS connector_id, NULL::INTEGER AS evse_id, status, coalesce(error_code, 'NoError')
                       AS error_code, NULL::VARCHAR AS info, NULL::VARCHAR AS vendor_id,
                       NULL::VARCHAR AS vendor_error_code, []::VARCHAR[] AS quality
                FROM ev ORDER BY received_at""",
                partition_dir(data_dir / "raw", "status_notifications", day) / "bench.parquet",
            )  # fmt: skip
            beats = 86400 // heartbeat_s
            counts["frames"] += _copy(con, f"""
                WITH h AS (
                    SELECT i, cp, {t0} + to_seconds((b * {heartbeat_s} + i % {heartbeat_s})::BIGINT) AS t
                    FROM st, range({beats}) r(b)
                )
                SELECT t AS received_at, cp AS charge_point_id, {conn_id} AS connection_id,
                       '1.6' AS ocpp_version,
                       (row_number() OVER ())::BIGINT AS seq, 'in' AS direction, 2::TINYINT AS message_type,
                       'h' || row_number() OVER () AS message_id, 'Heartbeat' AS action,
                       '[2,"h","Heartbeat",{{}}]' AS text, 25::BIGINT AS length,
                       NULL::VARCHAR AS validation_error
                FROM h WHERE NOT ({off} AND t >= {t0} + INTERVAL 2 HOUR AND t < {t0} + INTERVAL 3 HOUR)
                ORDER BY received_at""",
                partition_dir(data_dir / "raw", "frames", day) / "bench.parquet",
            )  # fmt: skip
            counts["connections"] += _copy(con, f"""
                WITH e AS (
                    SELECT cp, cp || '-{d}-a' AS cid, {t0} AS t, 'connected' AS event FROM st
                    UNION ALL
                    SELECT cp, cp || '-{d}-a', {t0} + INTERVAL 2 HOUR, 'disconnected' FROM st WHERE {off}
                    UNION ALL
                    SELECT cp, cp || '-{d}-b', {t0} + INTERVAL 3 HOUR, 'connected' FROM st WHERE {off}
                    UNION ALL SELECT cp, cp || '-{d}-' || CASE WHEN {off} THEN 'b' ELSE 'a' END,
                                     {t0} + INTERVAL 1 DAY - INTERVAL 1 SECOND, 'disconnected' FROM st
                )
                SELECT t AS received_at, event, cp AS charge_point_id, cid AS connection_id,
                       '1.6' AS ocpp_version,
                       'ocpp1.6' AS subprotocols_offered, '127.0.0.1:1' AS remote_address, 'none' AS auth,
                       NULL::VARCHAR AS reason, NULL::INTEGER AS close_code, 'bench' AS listener_id
                FROM e ORDER BY received_at""",
                partition_dir(data_dir / "raw", "connections", day) / "bench.parquet",
            )  # fmt: skip
        counts["sessions"] += _copy(con, f"""
            SELECT DATE '{day.isoformat()}' AS date, cp || '-' || conn || '-' || k || '-{d}' AS session_id,
                   cp AS station_id, conn AS connector_id, '1.6' AS ocpp_version,
                   k || '-{d}' AS transaction_id,
                   'u' || (i * 3 + k) % 40 AS user_pseudonym, 'k' || (i * 3 + k) % 40 AS user_key,
                   p AS plug_in,
                   CASE WHEN (i + k + {d}) % 25 <> 0 THEN p + INTERVAL 1 MINUTE END AS charging_start,
                   CASE WHEN (i + k + {d}) % 25 <> 0 THEN p + INTERVAL 40 MINUTE END AS charging_end,
                   p + INTERVAL 56 MINUTE AS plug_out,
                   CASE WHEN (i + k + {d}) % 25 <> 0 THEN 7000.0 ELSE 0.0 END AS energy_wh,
                   'meter_stop' AS energy_source,
                   CASE WHEN (i + k + {d}) % 25 <> 0 THEN 11000.0 END AS max_power_w, 'Local' AS stop_reason,
                   false AS clock_corrected, false AS left_open, '' AS quality_flags
            FROM (SELECT i, cp, c::INTEGER AS conn, k,
                         {t0} + to_minutes((k * 100 + (i * 13 + c * 31 + {d} * 7) % 30)::BIGINT) AS p
                  FROM st, range(1, 3) a(c), range(12) b(k))
            WHERE NOT ({off} AND p >= {t0} + INTERVAL 2 HOUR AND p < {t0} + INTERVAL 3 HOUR)
            ORDER BY station_id, plug_in""",
            work_path(data_dir, "sessions", day),
        )  # fmt: skip
        real = d >= days - daily_days
        target = SYNTH if real else "port_states"
        counts["port_states"] += _copy(con, _port_states_sql(day, t0, off), work_path(data_dir, target, day))
        path = work_path(data_dir, SYNTH_AV if real else "availability", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = con.sql(_availability_sql(day, t0)).to_arrow_table()
        pq.write_table(table.cast(AVAILABILITY_SCHEMA), path, compression="zstd")
    con.close()
    lines = ["id,name,latitude,longitude,area,max_power_kw,access"]
    lines += [
        f"BENCH{i:05d},Bench {i},52.{i:05d},5.{i:05d},Area{i % 12},{150 if i % 5 == 0 else 22},public"
        for i in range(stations)
    ]
    (data_dir / "stations.csv").write_text("\n".join(lines) + "\n")
    return counts


def _compare_port_states(data_dir: Path, days: int, daily_days: int) -> dict[str, object]:
    """The daily step's port states against the synthesized ones: minutes per port, day and state."""
    con = duckdb.connect()
    sql = """SELECT station_id, connector_id, date, state, sum(epoch("end" - start)) / 60 AS m
             FROM read_parquet($f) GROUP BY ALL"""
    real, synth = (
        [str(work_path(data_dir, name, FIRST + timedelta(days=d))) for d in range(days - daily_days, days)]
        for name in ("port_states", SYNTH)
    )
    diff = con.execute(
        f"""SELECT count(*), coalesce(max(abs(coalesce(r.m, 0) - coalesce(s.m, 0))), 0)
            FROM ({sql.replace("$f", "$r")}) r FULL JOIN ({sql.replace("$f", "$s")}) s
            USING (station_id, connector_id, date, state)""",
        {"r": real, "s": synth},
    ).fetchone()
    cats = ("available", "occupied", "charging", "unavailable", "faulted", "offline", "unknown")
    total = " + ".join(f"abs(r.{c}_minutes - s.{c}_minutes)" for c in cats)
    real_av, synth_av = (
        [str(work_path(data_dir, name, FIRST + timedelta(days=d))) for d in range(days - daily_days, days)]
        for name in ("availability", SYNTH_AV)
    )
    av = con.execute(
        f"""SELECT count(*), coalesce(max({total}), 0) FROM read_parquet($r) r
            JOIN read_parquet($s) s USING (station_id, hour_start)""",
        {"r": real_av, "s": synth_av},
    ).fetchone()
    return {
        "port-state cells compared": diff[0],  # type: ignore[index]
        "largest difference (min)": round(diff[1], 3),  # type: ignore[index]
        "station-hours compared": av[0],  # type: ignore[index]
        "largest station-hour difference (min)": round(av[1], 3),  # type: ignore[index]
    }


def run_step(step: str, data_dir: Path, days: int, daily_days: int) -> None:
    """Inside the child process: one step, timed around the work only; prints JSON."""
    os.environ["OCPP_OPENDATA_DATA_DIR"] = str(data_dir)
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = KEY
    os.environ["OCPP_OPENDATA_TIMEZONE"] = TZ
    from ocpp_opendata.settings import load_settings
    from pipelines.raw_index import RawIndex

    settings = load_settings()
    index = RawIndex(settings.data_dir, settings.clock_skew_minutes)
    facts: dict[str, object] = {}
    t0 = time.perf_counter()
    if step == "index":
        index.refresh()
    elif step == "daily":
        from pipelines.daily import availability_for_day

        for d in range(days - daily_days, days):
            availability_for_day(settings, index, FIRST + timedelta(days=d))
        seconds = time.perf_counter() - t0
        facts = _compare_port_states(settings.data_dir, days, daily_days)
        print(json.dumps({"seconds": seconds, "rows": facts}))
        return
    else:
        from ocpp_opendata.registry import load_registry
        from pipelines.datasets import _registry_table
        from pipelines.reliability.build import build_reliability

        con = duckdb.connect()
        registry = load_registry(settings.registry_path, settings.areas_path)
        con.register("reg", _registry_table(registry))
        tables = build_reliability(settings, con, registry)
        facts = {name: t.num_rows for name, t in tables.items()}
    print(json.dumps({"seconds": time.perf_counter() - t0, "rows": facts}))


def measure(step: str, data_dir: Path, days: int, daily_days: int) -> tuple[float, float, dict]:
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--step",
            step,
            "--data-dir",
            str(data_dir),
            "--days",
            str(days),
            "--daily-days",
            str(daily_days),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"step {step} failed")
    facts = json.loads(out.strip().splitlines()[-1])
    return facts["seconds"], usage.ru_maxrss / 1024.0, facts["rows"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--heartbeat", type=int, default=100, help="Seconds between heartbeats.")
    ap.add_argument(
        "--daily-days", type=int, default=1, help="Run the daily port-state step on this many last days."
    )
    ap.add_argument(
        "--build-only", action="store_true", help="Write only the work tables and time the reliability build."
    )
    ap.add_argument("--keep", type=Path, default=None, help="Keep the data in this folder.")
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        run_step(args.step, args.data_dir, args.days, args.daily_days)
        return
    base = args.keep or Path(tempfile.mkdtemp(prefix="ocpp-bench-reliability-"))
    data_dir = base / "data"
    try:
        t0 = time.perf_counter()
        daily_days = 0 if args.build_only else args.daily_days
        counts = generate(data_dir, args.stations, args.days, args.heartbeat, daily_days, not args.build_only)
        status_rows = counts["status_notifications"] + counts["frames"]
        print(f"generated {args.stations} stations × {args.days} days: {status_rows:,} status/heartbeat rows "
              f"({counts['status_notifications']:,} statuses, {counts['frames']:,} heartbeats), "
              f"{counts['sessions']:,} sessions ({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        print(f"{'step':<14}{'wall s':>10}{'peak RSS MiB':>15}")
        for step in ("reliability",) if args.build_only else STEPS:
            seconds, rss, rows = measure(step, data_dir, args.days, args.daily_days)
            label = f"daily ×{args.daily_days}" if step == "daily" else step
            print(f"{label:<14}{seconds:>10.2f}{rss:>15.0f}")
            if rows:
                print("  " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
