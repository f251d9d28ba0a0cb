"""`ocpp-opendata pipeline run` and `pipeline quality` as an operator runs them (a subprocess of
`python -m ocpp_opendata.cli`): the summary table, exit codes, per-day counts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.faults import OVERRIDES, REGISTRY, M, faulty_fleet, session
from tests.pipelines.helpers import write_registry
from tests.pipelines.rawdata import RawZone


def cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCPP_OPENDATA_")}
    env |= {"OCPP_OPENDATA_PSEUDONYM_KEY": TEST_KEY, "OCPP_OPENDATA_PRIVACY_K": "2"}
    return subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "pipeline", *args, "--data-dir", str(data)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def columns(output: str, first: str) -> list[str]:
    (line,) = [x for x in output.splitlines() if x.split()[:1] == [first]]
    return line.split()


def test_a_run_with_withheld_records_prints_them_per_dataset_and_rule_and_exits_0(data_dir: Path) -> None:
    write_registry(data_dir, REGISTRY)
    (data_dir / "quality_overrides.csv").write_text(OVERRIDES)
    faulty_fleet(RawZone(data_dir))
    run = cli(data_dir, "run", "--all")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    # Two sessions and the eight 15-minute intervals they span; one session and its two intervals.
    assert "quality: 10 record(s) withheld, 0 flagged, 3 overridden" in out, out
    # dataset, rows, withheld, flagged, overridden, by rule
    sessions = columns(out, "charging_sessions")
    assert sessions[2:5] == ["2", "0", "1"], out
    assert "overlapping_sessions: 1 withheld" in " ".join(sessions)
    assert "power_above_connector_max: 1 withheld" in " ".join(sessions)
    assert columns(out, "stations")[1:5] == ["3", "0", "0", "0"]
    assert columns(out, "no_idtag_in_release")[1:] == ["ERROR", "passed"]
    assert columns(out, "quality_withheld_records")[1:] == ["WARN", "warning"]
    assert columns(out, "quality_flagged_records")[1:] == ["WARN", "passed"]


def test_a_blocking_check_failure_names_the_check_and_exits_2(data_dir: Path) -> None:
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    write_registry(data_dir, [("CP1", "Card 04A1B2C3D4E5 bay", 52.2, 5.9, "Centrum", 22, "public")])
    raw = RawZone(data_dir)
    raw.status("CP1", 1, t - 60 * M, "Available")
    session(raw, "CP1", t, 30, 11_000, "ok-1", "04A1B2C3D4E5", 0.0)
    raw.flush()
    run = cli(data_dir, "run", "--all")
    assert run.returncode == 2
    assert columns(run.stderr, "no_idtag_in_release")[1:4] == ["ERROR", "FAILED", "(blocks"]
    assert "release blocked by a failed check; nothing was published" in run.stderr
    assert not (data_dir / "published" / "current").exists()


def test_pipeline_quality_prints_every_local_date_with_counts_per_rule(data_dir: Path) -> None:
    write_registry(data_dir, REGISTRY)
    (data_dir / "quality_overrides.csv").write_text(OVERRIDES)
    faulty_fleet(RawZone(data_dir))
    assert cli(data_dir, "run", "--all").returncode == 0
    q = cli(data_dir, "quality", "--days", "3")
    assert q.returncode == 0, q.stderr
    rows = [line.split() for line in q.stdout.splitlines()[2:]]
    assert rows == [
        ["2026-03-09", "-", "-", "0", "0", "0"],  # a day without issues is shown as such
        ["2026-03-10", "power_above_connector_max", "session", "1", "0", "0"],
        ["2026-03-10", "power_above_connector_max", "station_15min", "1", "0", "0"],
        ["2026-03-11", "energy_above_power_time", "session", "0", "0", "1"],
        ["2026-03-11", "overlapping_sessions", "session", "1", "0", "0"],
        # The station's 15-minute intervals the withheld session spans (08:00 to 09:30) go with it.
        ["2026-03-11", "overlapping_sessions", "station_15min", "7", "0", "0"],
        ["2026-03-11", "power_above_connector_max", "session", "0", "0", "1"],
        ["2026-03-11", "power_above_connector_max", "station_15min", "0", "0", "2"],
        ["total", "10", "0", "4"],
    ], q.stdout


def test_pipeline_quality_without_a_release_says_so_and_exits_2(data_dir: Path) -> None:
    q = cli(data_dir, "quality")
    assert q.returncode == 2 and "nothing is published" in q.stderr
