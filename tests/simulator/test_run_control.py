"""Starting, pacing and failing: the simulated clock, unreachable and refusing listeners."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ingest.simulator import SimulationError, SimulationOptions, run_simulation
from ingest.simulator.options import check_never_ahead, zone
from ocpp_opendata.cli import main
from tests.support.listener import RunningListener, free_port, make_listener


def _simulate_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--chargers", "2", "--days", "0.5", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_listener_ends_the_run_with_a_clear_message() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ocpp"
    done = _simulate_cli("--url", url)
    assert done.returncode != 0
    assert re.search(rf"error: the listener at {re.escape(url)}/SIM000[12] is unreachable", done.stderr)
    assert "Traceback" not in done.stderr


def test_a_listener_that_refuses_the_chargers_ends_the_run_with_a_clear_message(tmp_path: Path) -> None:
    known = tmp_path / "charge_points.txt"
    known.write_text("SOMEONE-ELSE\n")
    listener = make_listener(tmp_path / "data", "--charge-points", str(known)).start()
    try:
        done = _simulate_cli("--url", listener.url)
    finally:
        listener.stop()
    assert done.returncode != 0
    assert "the listener refused charge point SIM000" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_start_that_would_run_the_simulated_clock_ahead_is_refused() -> None:
    today = datetime.now(zone("Europe/Amsterdam")).date().isoformat()
    result = CliRunner().invoke(
        main, ["simulate", "--start", today, "--days", "7", "--speed", "10080", "--dry-run"]
    )
    assert result.exit_code != 0
    assert "ahead of the real one" in result.output
    now = time.time()
    with pytest.raises(SimulationError, match="ahead of the real one"):
        check_never_ahead(int(now) - 3600, int(now) + 3600, 0, now)
    check_never_ahead(int(now) - 7 * 86400, int(now) - 86400, 10080, now)


def test_with_speed_messages_follow_the_simulated_clock_and_never_run_ahead(
    listener: RunningListener,
) -> None:
    """0.1 day at 3,600× takes 2.4 s; no timestamp is later than the moment it was received."""
    tz = zone("Europe/Amsterdam")
    start = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(hours=12)
    options = SimulationOptions(
        url=listener.url,
        chargers=4,
        days=0.1,
        start=start,
        speed=3600,
        seed=4,
        profiles=(("hub", 1.0),),
        share_two_connectors=1.0,
        heartbeat_every=600,
    ).without_imperfections()
    began = time.monotonic()
    result = asyncio.run(run_simulation(options))
    took = time.monotonic() - began
    listener.stop()
    assert took >= 0.1 * 86400 / 3600 * 0.9
    assert result.sessions > 0
    rows = [
        pl.read_parquet(f).select("received_at", "timestamp")
        for table in ("status_notifications", "transaction_events", "meter_values")
        for f in (listener.data_dir / "raw" / table).glob("date=*/*.parquet")
    ]
    stamped = pl.concat(rows).drop_nulls()
    assert stamped.height > 50
    assert (stamped["timestamp"] <= stamped["received_at"]).all()
    # Compressed: the simulated hour took about a second of real time, not an hour.
    assert (stamped["received_at"].max() - stamped["received_at"].min()) < timedelta(seconds=took + 1)
