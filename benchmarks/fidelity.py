"""Fidelity of a demo release against the simulator's ground truth (issue 21).

Builds a release the way `ocpp-opendata demo` does (a real listener subprocess, the simulated fleet
over WebSockets, the Dagster pipeline) with every imperfection on, clock skew at a high share, then
compares the published datasets with the truth and prints, per check, expected vs measured:

- sessions per public station-day (station_usage_daily.sessions): exact, skewed clocks included;
- energy per public station-day: station_usage_daily (by plug-in day) against the truth's session
  energy, and station_energy_15min (by time) against the truth's registers at local midnights,
  both within 0.1 %;
- availability per public station-hour (station_availability_hourly, every category including
  offline): within 1 connector-minute;
- offline minutes per connector-day (work table port_states, outages longer than
  --outage-offline-after heartbeat intervals): within 1 minute;
- skewed chargers: no offline minute that the truth does not have.

The fleet plays at the demo's --speed (2000): a finite speed makes offline periods observable
(docs/pipeline.md, "Replays at a constant rate"). Exit status 1 if any check fails. Run (about three
minutes for the default 20 chargers × 3 days):

    python -m benchmarks.fidelity [--chargers 20] [--days 3] [--seed 7] [--clock-skew-share 0.25]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from rich.console import Console

from ocpp_opendata.commands.demo import DEMO_SPEED, ROLL_SECONDS
from ocpp_opendata.settings import Settings, load_settings
from pipelines.partitions import day_bounds, local_date
from pipelines.published_schema import current_release_dir
from pipelines.storage import read_work

CATEGORY = {"Available": "available", "Preparing": "occupied", "Charging": "occupied",
            "SuspendedEV": "occupied", "SuspendedEVSE": "occupied", "Finishing": "occupied",
            "Faulted": "faulted"}  # fmt: skip
AVAILABILITY = (
    "available", "occupied", "charging", "faulted", "offline", "unknown", "reserved", "unavailable",
)  # fmt: skip


@dataclass
class Check:
    name: str
    expected: str
    measured: str
    ok: bool
    detail: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build(base: Path, args: argparse.Namespace, console: Console) -> Settings:
    """Listener + simulator + pipeline, with the demo's own functions."""
    from ocpp_opendata.commands.demo import publish, running_listener, simulate

    data = base / "data"
    data.mkdir(parents=True)
    key = base / "pseudonym.key"
    key.write_text(secrets.token_hex(32) + "\n")
    overrides = {
        "data_dir": data,
        "timezone": args.timezone,
        "pseudonym_key_file": key,
        "listen_port": _free_port(),
        "operator_port": _free_port(),
        "sim_chargers": args.chargers,
        "sim_days": args.days,
        "sim_start": args.start,
        "sim_seed": args.seed,
        "sim_speed": args.speed,
        "sim_timezone": args.timezone,
        "sim_clock_skew_share": args.clock_skew_share,
        "sim_offline_rate": args.offline_rate,
        "sim_truth": base / "truth",
        "sim_station_registry": data,
    }
    env = {
        "DAGSTER_HOME": str(base / "dagster_home"),
        "OCPP_OPENDATA_DATA_DIR": str(data),
        "OCPP_OPENDATA_PSEUDONYM_KEY_FILE": str(key),
        "OCPP_OPENDATA_TIMEZONE": args.timezone,
    }
    (base / "dagster_home").mkdir()
    with _env(env):
        settings = load_settings(overrides)
        started = time.monotonic()
        from ingest.operate.tokens import create_token

        tokens = base / "operators.tokens"
        create_token(tokens, "fidelity", "control")
        with running_listener(settings, base / "listener.log", tokens) as url:
            simulate(settings, url, console)
            time.sleep(ROLL_SECONDS + 1)  # as the demo does: the last raw files roll
        simulated = time.monotonic() - started
        publish(settings, console)
    published = time.monotonic() - started - simulated
    console.print(f"simulated in {simulated:.0f} s, published in {published:.0f} s")
    return settings


def _published(settings: Settings, dataset: str) -> list[dict]:
    release = current_release_dir(settings.data_dir)
    assert release is not None, "nothing published"
    con = duckdb.connect(str(release / "catalog.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(f'SELECT * FROM "{dataset}"').to_arrow_table().to_pylist()
    finally:
        con.close()


def _truth(truth: Path, name: str) -> list[dict]:
    return pq.read_table(truth / f"{name}.parquet").to_pylist()


def _overlap_minutes(a: datetime, b: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(b, hi) - max(a, lo)).total_seconds() / 60.0)


def _hours(lo: datetime, hi: datetime) -> Iterator[datetime]:
    t = lo.replace(minute=0, second=0, microsecond=0)
    while t < hi:
        yield t
        t += timedelta(hours=1)


def compare(settings: Settings, truth: Path, args: argparse.Namespace) -> list[Check]:
    tz = settings.timezone
    chargers = {c["charge_point_id"]: c for c in _truth(truth, "chargers")}
    public = {cp for cp, c in chargers.items() if c["access"] == "public"}
    skewed = {cp for cp in public if chargers[cp]["clock_skew_s"]}
    sessions = [s for s in _truth(truth, "sessions") if s["charge_point_id"] in public]
    intervals = [r for r in _truth(truth, "status_intervals") if r["charge_point_id"] in public]
    offline = [o for o in _truth(truth, "offline_periods") if o["charge_point_id"] in public]
    window_start = min(r["start"] for r in intervals)
    window_end = max(r["end"] for r in intervals)
    days = sorted({local_date(window_start, tz) + timedelta(days=i) for i in range(int(args.days) + 1)})
    days = [d for d in days if day_bounds(d, tz)[0] < window_end]
    checks: list[Check] = []

    # Sessions per station-day (by plug-in), exact.
    want_n: dict[tuple[str, date], int] = defaultdict(int)
    for s in sessions:
        want_n[(s["charge_point_id"], local_date(s["plug_in"], tz))] += 1
    daily = _published(settings, "station_usage_daily")
    got_n = {(r["station_id"], r["date"]): r["sessions"] for r in daily}
    keys = set(want_n) | {k for k, v in got_n.items() if v}
    off = sorted(k for k in keys if want_n.get(k, 0) != got_n.get(k, 0))
    off_skewed = [k for k in off if k[0] in skewed]
    checks.append(Check(
        "sessions per public station-day (exact)",
        f"{sum(want_n.values())} sessions on {len(want_n)} station-days",
        f"{sum(got_n.values())} sessions; {len(off)} station-days differ "
        f"({len(off_skewed)} at skewed chargers)",
        not off, ", ".join(f"{k[0]} {k[1]}: {want_n.get(k, 0)} vs {got_n.get(k, 0)}" for k in off[:5]),
    ))  # fmt: skip

    # Energy per station-day by plug-in day (station_usage_daily), within 0.1 %.
    want_e: dict[tuple[str, date], float] = defaultdict(float)
    for s in sessions:
        want_e[(s["charge_point_id"], local_date(s["plug_in"], tz))] += s["energy_wh"] / 1000.0
    got_e = {(r["station_id"], r["date"]): r["energy_kwh"] for r in daily}
    checks.append(_energy_check("energy per public station-day, station_usage_daily (0.1 %)", want_e, got_e))

    # Energy per station-day by time (station_energy_15min) against the registers at local midnights.
    want_t = _metered_by_day(args, tz, public, days)
    got_t: dict[tuple[str, date], float] = defaultdict(float)
    for r in _published(settings, "station_energy_15min"):
        got_t[(r["station_id"], r["date"])] += r["energy_kwh"]
    checks.append(_energy_check("energy per public station-day, station_energy_15min (0.1 %)", want_t, got_t))

    # Availability per station-hour, every category, offline included: within 1 connector-minute.
    want_a: dict[tuple[str, datetime, str], float] = defaultdict(float)
    down: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for o in offline:
        down[o["charge_point_id"]].append((o["start"], o["end"]))
    for r in intervals:
        cp, cat = r["charge_point_id"], CATEGORY[r["state"]]
        for h in _hours(r["start"], r["end"]):
            he = h + timedelta(hours=1)
            total = _overlap_minutes(r["start"], r["end"], h, he)
            gone = sum(
                _overlap_minutes(max(r["start"], a), min(r["end"], b), h, he) for a, b in down[cp] if b > a
            )
            want_a[(cp, h, cat)] += total - gone
            want_a[(cp, h, "offline")] += gone
            if r["state"] == "Charging":
                want_a[(cp, h, "charging")] += total - gone
    got_a: dict[tuple[str, datetime, str], float] = defaultdict(float)
    for r in _published(settings, "station_availability_hourly"):
        if window_start <= r["hour_start"] < window_end:
            for c in AVAILABILITY:
                got_a[(r["station_id"], r["hour_start"], c)] += r[f"{c}_minutes"]
    keys_a = set(want_a) | {k for k, v in got_a.items() if v > 0}
    off_a = sorted(k for k in keys_a if abs(want_a.get(k, 0.0) - got_a.get(k, 0.0)) > 1.0)
    station_hours = {(k[0], k[1]) for k in keys_a}
    bad_hours = {(k[0], k[1]) for k in off_a}
    offline_hours = {(k[0], k[1]) for k, v in want_a.items() if k[2] == "offline" and v > 0}
    checks.append(Check(
        "availability per public station-hour (1 min, offline hours included)",
        f"{len(station_hours)} station-hours, {len(offline_hours)} with offline minutes, "
        f"{sum(v for k, v in want_a.items() if k[2] == 'offline'):.0f} offline connector-min",
        f"{len(bad_hours)} station-hours off by > 1 min "
        f"({len(bad_hours & offline_hours)} of them offline hours); "
        f"{sum(v for k, v in got_a.items() if k[2] == 'offline'):.0f} offline connector-min",
        not off_a,
        ", ".join(f"{k[0]} {k[1]:%m-%d %H:%M} {k[2]}: {want_a.get(k, 0):.1f} vs {got_a.get(k, 0):.1f}"
                  for k in off_a[:5]),
    ))  # fmt: skip

    # Offline minutes per connector-day (port_states), within 1 minute. An outage is a connection
    # lost longer than --outage-offline-after heartbeat intervals (issue 18): shorter periods of the
    # truth are a reconnect there, not an outage.
    shortest = timedelta(seconds=settings.heartbeat_interval * settings.outage_offline_after)
    want_o: dict[tuple[str, int, date], float] = defaultdict(float)
    for cp, periods in down.items():
        for d in days:
            lo, hi = day_bounds(d, tz)
            minutes = sum(_overlap_minutes(a, b, lo, hi) for a, b in periods if b - a > shortest)
            for c in range(1, chargers[cp]["connectors"] + 1):
                want_o[(cp, c, d)] += minutes
    got_o: dict[tuple[str, int, date], float] = defaultdict(float)
    for r in read_work(settings.data_dir, "port_states", days).to_pylist():
        if r["station_id"] in public and r["state"] == "offline":
            minutes = (r["end"] - r["start"]).total_seconds() / 60
            got_o[(r["station_id"], r["connector_id"], r["date"])] += minutes
    keys_o = set(want_o) | {k for k, v in got_o.items() if v > 0}
    off_o = sorted(k for k in keys_o if abs(want_o.get(k, 0.0) - got_o.get(k, 0.0)) > 1.0)
    checks.append(Check(
        "offline minutes per public connector-day (1 min)",
        f"{sum(want_o.values()):.0f} min on {sum(1 for v in want_o.values() if v > 0)} connector-days",
        f"{sum(got_o.values()):.0f} min; {len(off_o)} connector-days off by > 1 min",
        not off_o,
        ", ".join(f"{k[0]}/{k[1]} {k[2]}: {want_o.get(k, 0):.1f} vs {got_o.get(k, 0):.1f}"
                  for k in off_o[:5]),
    ))  # fmt: skip

    # Skewed chargers: no offline minute the truth does not have.
    invented = sum(
        max(0.0, got_a.get((cp, h, "offline"), 0.0) - want_a.get((cp, h, "offline"), 0.0))
        for cp, h in station_hours
        if cp in skewed
    )
    checks.append(Check(
        "skewed public chargers: no invented offline minutes",
        f"0 connector-min ({len(skewed)} skewed: "
        + ", ".join(f"{cp} +{chargers[cp]['clock_skew_s'] / 60:.0f} min" for cp in sorted(skewed)) + ")",
        f"{invented:.1f} connector-min", invented <= 1.0,
    ))  # fmt: skip
    return checks


def _energy_check(name: str, want: dict, got: dict) -> Check:
    keys = {k for k, v in want.items() if v > 0} | {k for k, v in got.items() if v > 0}
    off = sorted(k for k in keys if abs(got.get(k, 0.0) - want.get(k, 0.0)) > 0.001 * want.get(k, 0.0) + 1e-6)
    worst = max((abs(got.get(k, 0.0) - want.get(k, 0.0)) for k in keys), default=0.0)
    return Check(
        name,
        f"{sum(want.values()):.1f} kWh on {len(keys)} station-days",
        f"{sum(got.values()):.1f} kWh; {len(off)} station-days off by > 0.1 % (worst {worst:.3f} kWh)",
        not off,
        ", ".join(f"{k[0]} {k[1]}: {want.get(k, 0):.3f} vs {got.get(k, 0):.3f}" for k in off[:5]),
    )


def _metered_by_day(args: argparse.Namespace, tz: str, public: set[str], days: list[date]) -> dict:
    """Truth energy per (station, local day) by time: each session's register at the day's bounds."""
    from ingest.simulator import SimulationOptions
    from ingest.simulator.fleet import plan_fleet
    from ingest.simulator.options import parse_start, zone

    options = replace(
        SimulationOptions(),
        chargers=args.chargers, days=args.days, start=parse_start(args.start, zone(tz)), seed=args.seed,
        timezone=tz, clock_skew_share=args.clock_skew_share, offline_rate=args.offline_rate,
    )  # fmt: skip
    plan = plan_fleet(options)
    out: dict[tuple[str, date], float] = defaultdict(float)
    for s in plan.sessions:
        cp = plan.chargers[s.charger_index].charge_point_id
        if cp not in public:
            continue
        for d in days:
            lo, hi = (int(t.timestamp()) for t in day_bounds(d, tz))
            a, b = max(lo, s.charging_start), min(hi, s.transaction_stop)
            if b > a:
                out[(cp, d)] += (s.register_at(b) - s.register_at(a)) / 1000.0
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chargers", type=int, default=20)
    p.add_argument("--days", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--speed", type=float, default=DEMO_SPEED, help="simulated seconds per real second (the demo's)"
    )
    p.add_argument("--start", default=None, help="first simulated day (default: DAYS + 1 days ago)")
    p.add_argument("--timezone", default="Europe/Amsterdam")
    p.add_argument("--clock-skew-share", type=float, default=0.25)
    p.add_argument("--offline-rate", type=float, default=0.3)
    p.add_argument("--keep", type=Path, default=None, help="build in this (empty) folder and keep it")
    args = p.parse_args()
    if args.start is None:
        args.start = (datetime.now(UTC).date() - timedelta(days=int(args.days) + 1)).isoformat()
    console = Console(stderr=True)
    with contextlib.ExitStack() as stack:
        base = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fidelity-")))
        settings = build(base, args, console)
        checks = compare(settings, base / "truth", args)
    print(f"fidelity: {args.chargers} chargers x {args.days:g} days from {args.start}, "
          f"--speed {args.speed:g}, seed {args.seed}, "
          f"clock skew share {args.clock_skew_share}, offline rate {args.offline_rate}")  # fmt: skip
    for c in checks:
        print(f"[{'ok' if c.ok else 'FAIL'}] {c.name}")
        print(f"    expected: {c.expected}\n    measured: {c.measured}")
        if c.detail and not c.ok:
            print(f"    e.g. {c.detail}")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
