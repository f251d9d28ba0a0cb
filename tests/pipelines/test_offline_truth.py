"""Offline periods reach `station_availability_hourly` as the truth has them, played in real time
and played time-compressed at a constant rate.

At --speed 1 the simulator's disconnect (the socket dropped as a network would drop it), the time it
stays away and its reconnect with the queued messages replayed are what the listener observes. A
run at --speed 1000 plays the same as an absence of period / 1000 seconds: its messages lag receipt,
but at a constant rate, and the pipeline maps its receipt times back to event time (docs/pipeline.md,
"Replays at a constant rate"). At --speed 0 nothing can show them (docs/simulator.md, "Time"). The
plans are the simulator's own with offline periods placed where a short window has room for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from ingest.simulator import SimulationOptions
from ingest.simulator.driver import Stats, play
from ingest.simulator.fleet import OfflinePeriod, plan_fleet
from ingest.simulator.registry import write_station_registry
from ingest.simulator.truth import write_truth
from ocpp_opendata.settings import Settings, load_settings
from pipelines import runner
from pipelines.partitions import day_bounds, local_date
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.helpers import published
from tests.support.listener import make_listener

TZ = "Europe/Amsterdam"
HEARTBEAT_S = 10  # listener and simulator agree; 2 missed heartbeats (20 s) is an outage
WINDOW_S = 170
OFFLINE = ((0, 30, 135), (2, 60, 150))  # (charger, from, to) seconds into the window
# charging_minutes is a part of occupied_minutes: not summed again.
CONNECTED = ("available", "occupied", "reserved", "unavailable", "faulted")


# A 30 ms scheduling delay on a loaded machine is 30 s of event time at this speed.
COMPRESSED_SPEED = 1000.0
COMPRESSED_WINDOW_S = 12 * 3600  # ending an hour ago: sessions give the run timestamped messages
COMPRESSED_CHARGERS = 6
COMPRESSED_HEARTBEAT_S = 300
COMPRESSED_OFFLINE = ((0, 7200, 9000), (2, 14400, 19800), (1, 32400, 33900), (4, 36000, 40000))


@dataclass
class LiveRun:
    settings: Settings
    truth: Path
    reconnects: int
    window: tuple[datetime, datetime]


def _run(
    base: Path, *, start: datetime, window_s: int, speed: float, heartbeat_s: int, periods: tuple,
    chargers: int = 3,
) -> Iterator[LiveRun]:  # fmt: skip
    data = base / "data"
    listener = make_listener(data, "--heartbeat-interval", str(heartbeat_s)).start()
    try:
        options = SimulationOptions(
            url=listener.url, chargers=chargers, days=window_s / 86400, start=start, speed=speed, seed=3,
            timezone=TZ, private_share=0.0, heartbeat_every=heartbeat_s, offline_rate=0.0,
            clock_skew_share=0.0, fault_rate=0.0, maintenance_rate=0.0, register_reset_rate=0.0,
            retry_rate=0.0,
        )  # fmt: skip
        plan = plan_fleet(options)
        w = plan.window.start
        offline = tuple(OfflinePeriod(i, w + a, w + b) for i, a, b in periods)
        plan = dataclasses.replace(plan, offline=offline, _by_charger={})
        write_truth(plan, base / "truth")
        write_station_registry(plan.chargers, data)
        stats = Stats(chargers=len(plan.chargers))
        asyncio.run(play(plan, stats))
    finally:
        assert listener.stop() == 0, listener.log()
    saved = {k: os.environ.get(k) for k in ("OCPP_OPENDATA_PSEUDONYM_KEY", "OCPP_OPENDATA_PRIVACY_K")}
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = TEST_KEY
    os.environ["OCPP_OPENDATA_PRIVACY_K"] = "1"
    try:
        settings = load_settings({"data_dir": data, "timezone": TZ, "heartbeat_interval": heartbeat_s})
        with DagsterInstance.ephemeral() as instance:
            runner.run(settings, runner.all_dates(settings), instance=instance)
        yield LiveRun(settings, base / "truth", stats.reconnects, (plan.window.start_dt, plan.window.end_dt))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """At --speed 1 from now on."""
    start = datetime.fromtimestamp(int(time.time()), UTC)
    base = tmp_path_factory.mktemp("offline")
    yield from _run(base, start=start, window_s=WINDOW_S, speed=1.0, heartbeat_s=HEARTBEAT_S, periods=OFFLINE)


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """Twelve past hours of six chargers at --speed 1000 (about 45 seconds)."""
    start = datetime.fromtimestamp(int(time.time()) - COMPRESSED_WINDOW_S - 3600, UTC)
    base = tmp_path_factory.mktemp("offline-compressed")
    yield from _run(
        base, start=start, window_s=COMPRESSED_WINDOW_S, speed=COMPRESSED_SPEED,
        heartbeat_s=COMPRESSED_HEARTBEAT_S, periods=COMPRESSED_OFFLINE, chargers=COMPRESSED_CHARGERS,
    )  # fmt: skip


def _overlap_minutes(a: datetime, b: datetime, day: date) -> float:
    lo, hi = day_bounds(day, TZ)
    return max(0.0, (min(b, hi) - max(a, lo)).total_seconds() / 60)


def test_offline_minutes_per_connector_day_are_within_a_minute_of_the_truth(live: LiveRun) -> None:
    _assert_offline_minutes_match_the_truth(live, OFFLINE)


def test_a_compressed_run_has_its_offline_minutes_per_connector_day_within_a_minute_of_the_truth(
    compressed: LiveRun,
) -> None:
    _assert_offline_minutes_match_the_truth(compressed, COMPRESSED_OFFLINE)


def _assert_offline_minutes_match_the_truth(live: LiveRun, planned: tuple) -> None:
    """Outside its window the simulated fleet has no connection at all (not yet, or no more), which
    is offline too; so per connector-day the truth's offline minutes are its offline periods plus the
    day's minutes outside the window, and its connected minutes are the window minus the periods."""
    truth = {
        n: pq.read_table(live.truth / f"{n}.parquet").to_pylist() for n in ("chargers", "offline_periods")
    }
    chargers = {r["charge_point_id"]: r for r in truth["chargers"]}
    periods = truth["offline_periods"]
    assert len(periods) == len(planned) and min(p["duration_s"] for p in periods) >= 90  # past the tolerance
    assert live.reconnects >= len(planned)  # the chargers really went away and came back
    w0, w1 = live.window
    days = {local_date(w0, TZ), local_date(w1, TZ)}
    offline: dict[tuple[str, date], float] = defaultdict(float)
    connected: dict[tuple[str, date], float] = defaultdict(float)
    for cp, c in chargers.items():
        n = c["connectors"]
        for d in days:
            lo, hi = day_bounds(d, TZ)
            inside = _overlap_minutes(w0, w1, d)
            gone = sum(
                _overlap_minutes(p["start"], p["end"], d) for p in periods if p["charge_point_id"] == cp
            )
            offline[(cp, d)] = n * ((hi - lo).total_seconds() / 60 - inside + gone)
            connected[(cp, d)] = n * (inside - gone)
    got_offline: dict[tuple[str, date], float] = defaultdict(float)
    got_connected: dict[tuple[str, date], float] = defaultdict(float)
    for r in published(live.settings, "station_availability_hourly"):
        key = (r["station_id"], r["date"])
        got_offline[key] += r["offline_minutes"]
        got_connected[key] += sum(r[f"{c}_minutes"] for c in CONNECTED)
    # Within a minute per connector-day: the station-day sums over its connectors.
    tol = {k: chargers[k[0]]["connectors"] * 1.0 for k in offline}
    off = {k: (v, got_offline[k]) for k, v in offline.items() if abs(v - got_offline[k]) > tol[k]}
    assert not off, off
    off = {k: (v, got_connected[k]) for k, v in connected.items() if abs(v - got_connected[k]) > tol[k]}
    assert not off, off
