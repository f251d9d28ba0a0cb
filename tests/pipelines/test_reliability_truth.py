"""End to end: a simulated release's reliability datasets against the simulator's ground truth.

Simulator → real listener → raw Parquet → Dagster → published release, as in test_ground_truth.py,
with the faults the reliability datasets are about played at high rates: Faulted connectors,
Unavailable maintenance windows, sessions that fail to start, zero-energy sessions and sessions a
fault ends. Offline periods and clock skew are off here: in a time-compressed run the listener's
receipt times cannot show when a charger was offline (test_offline_truth.py plays them in real
time). The window spans a month boundary, so the port-month split is exercised too.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from ocpp_opendata.settings import load_settings
from pipelines import runner
from pipelines.partitions import day_bounds
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.helpers import published
from tests.pipelines.test_ground_truth import Run
from tests.support.listener import make_listener

TZ = "Europe/Amsterdam"
MONTHS = (date(2026, 3, 1), date(2026, 4, 1), date(2026, 5, 1))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("reliability")
    data = base / "data"
    listener = make_listener(data).start()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--url", listener.url,
             "--chargers", "20", "--days", "3", "--start", "2026-03-30", "--seed", "5", "--timezone", TZ,
             "--truth", str(base / "truth"), "--station-registry", str(data),
             "--clock-skew-share", "0", "--offline-rate", "0", "--fault-rate", "0.4",
             "--maintenance-rate", "0.3", "--failed-start-share", "0.1", "--zero-energy-share", "0.08",
             "--fault-end-share", "0.1", "--users-per-charger", "3"],
            capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr[-2000:]
    finally:
        listener.stop()
    saved = {k: os.environ.get(k) for k in ("OCPP_OPENDATA_PSEUDONYM_KEY", "OCPP_OPENDATA_PRIVACY_K")}
    os.environ["OCPP_OPENDATA_PSEUDONYM_KEY"] = TEST_KEY
    os.environ["OCPP_OPENDATA_PRIVACY_K"] = "1"  # outcome counts are compared exactly, none withheld
    try:
        settings = load_settings({"data_dir": data, "timezone": TZ})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
        yield Run(settings, base / "truth", summary.release_id)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def truth(run: Run, name: str) -> list[dict]:
    return pq.read_table(run.truth / f"{name}.parquet").to_pylist()


def _epoch(t: datetime) -> float:
    return t.timestamp()


def _cut(a: float, b: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pieces = [(a, b)]
    for x, y in holes:
        pieces = [p for lo, hi in pieces for p in ((lo, min(hi, x)), (max(lo, y), hi)) if p[0] < p[1]]
    return pieces


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def expected_outage_minutes(run: Run) -> dict[tuple[str, int, date, str], float]:
    """Truth outage minutes per (port, local month, cause). A no_power outage is published on the
    session-time grid (plug-in floored, plug-out ceiled to --round-minutes, docs/privacy.md) and only
    where the port was otherwise up, so its truth interval is widened and cut the same way."""
    grid = int(run.settings.round_minutes) * 60
    by_port: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for o in truth(run, "port_outages"):
        by_port[(o["charge_point_id"], o["connector_id"])].append(o)
    spans: list[tuple[tuple[str, int], str, float, float]] = []
    for port, rows in by_port.items():
        down = [(_epoch(o["start"]), _epoch(o["end"])) for o in rows if o["cause"] != "no_power"]
        spans += [
            (port, o["cause"], _epoch(o["start"]), _epoch(o["end"])) for o in rows if o["cause"] != "no_power"
        ]
        widened = [
            piece
            for o in rows
            if o["cause"] == "no_power"
            for piece in _cut(_epoch(o["start"]) // grid * grid, -(-_epoch(o["end"]) // grid) * grid, down)
        ]
        spans += [(port, "no_power", a, b) for a, b in _union(widened)]
    out: dict[tuple[str, int, date, str], float] = defaultdict(float)
    for (cp, conn), cause, a, b in spans:
        for m, nxt in itertools.pairwise(MONTHS):
            lo, hi = max(a, day_bounds(m, TZ)[0].timestamp()), min(b, day_bounds(nxt, TZ)[0].timestamp())
            if hi > lo:
                out[(cp, conn, m, cause)] += (hi - lo) / 60
    return out


def test_outage_minutes_per_port_month_and_cause_are_within_a_minute_of_the_truth(faulty: Run) -> None:
    expected = expected_outage_minutes(faulty)
    assert {k[3] for k in expected} == {"faulted", "unavailable", "no_power"}
    assert {k[2] for k in expected} == {date(2026, 3, 1), date(2026, 4, 1)}
    got: dict[tuple[str, int, date, str], float] = defaultdict(float)
    for o in published(faulty.settings, "port_outages"):
        start, end = o["start"].timestamp(), o["end"].timestamp()
        for m, nxt in itertools.pairwise(MONTHS):
            lo, hi = (
                max(start, day_bounds(m, TZ)[0].timestamp()),
                min(end, day_bounds(nxt, TZ)[0].timestamp()),
            )
            if hi > lo:
                got[(o["station_id"], o["connector_id"], m, o["cause"])] += (hi - lo) / 60
    keys = set(expected) | set(got)
    off = {
        k: (expected.get(k, 0.0), got.get(k, 0.0))
        for k in keys
        if abs(expected.get(k, 0.0) - got.get(k, 0.0)) > 1
    }
    assert not off


def test_port_uptime_months_hold_the_truths_outage_minutes_within_a_minute(faulty: Run) -> None:
    expected: dict[tuple[str, int, date], float] = defaultdict(float)
    for (cp, conn, month, _cause), minutes in expected_outage_minutes(faulty).items():
        expected[(cp, conn, month)] += minutes
    rows = published(faulty.settings, "port_uptime_monthly")
    public_ports = {(c["charge_point_id"], k) for c in truth(faulty, "chargers") if c["access"] == "public"
                    for k in range(1, c["connectors"] + 1)}  # fmt: skip
    assert {(r["station_id"], r["connector_id"]) for r in rows} == public_ports
    got = {(r["station_id"], r["connector_id"], r["date"]): r["outage_minutes"] for r in rows}
    off = {
        k: (expected.get(k, 0.0), got.get(k, 0.0))
        for k in set(expected) | set(got)
        if abs(expected.get(k, 0.0) - got.get(k, 0.0)) > 1
    }
    assert not off
    assert any(v > 0 for v in got.values())


def test_session_outcome_counts_per_station_day_equal_the_truth(faulty: Run) -> None:
    columns = ("sessions", "successful", "failed_to_start", "ended_in_fault", "too_short")
    expected = {(r["charge_point_id"], r["date"]): tuple(r[c] for c in columns)
                for r in truth(faulty, "session_outcomes_daily")}  # fmt: skip
    totals = [sum(v[i] for v in expected.values()) for i in range(len(columns))]
    assert totals[2] > 0 and totals[3] > 0 and totals[1] > totals[2]  # every outcome really happened
    kinds = {s["kind"] for s in truth(faulty, "sessions")}
    assert kinds == {"normal", "failed_start", "zero_energy", "fault_end"}
    got = {
        (r["station_id"], r["date"]): tuple(r[c] for c in columns)
        for r in published(faulty.settings, "station_session_outcomes_daily")
    }
    assert got == expected


def test_every_truth_fault_shows_as_an_outage_starting_within_a_minute(faulty: Run) -> None:
    starts = defaultdict(list)
    for o in published(faulty.settings, "port_outages"):
        starts[(o["station_id"], o["connector_id"], o["cause"])].append(o["start"])
    for o in truth(faulty, "port_outages"):
        if o["cause"] in ("faulted", "unavailable"):
            seen = starts[(o["charge_point_id"], o["connector_id"], o["cause"])]
            assert any(abs((t - o["start"]).total_seconds()) <= 60 for t in seen), o
