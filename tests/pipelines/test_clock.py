"""Charger clock offsets (pipelines/transforms/clock.py): estimated from raw rows, applied to sessions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ocpp_opendata.settings import Settings
from pipelines.automation import affected_dates
from pipelines.daily import materialize_day
from pipelines.partitions import day_bounds
from pipelines.raw_index import IndexedFile, RawIndex
from pipelines.transforms.clock import ClockRule, ConnectionStats, estimate_offsets
from tests.pipelines.helpers import work
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def _session(raw: RawZone, cp: str, true_start: datetime, ahead: timedelta, tx: str) -> None:
    """A 1.6 session stamped by a clock `ahead` of the listener's, every message sent live."""

    def at(minutes: int) -> tuple[datetime, datetime]:
        t = true_start + minutes * M
        return t + ahead, t + timedelta(milliseconds=40)

    stamp, got = at(0)
    raw.status(cp, 1, stamp, "Preparing", received=got)
    stamp, got = at(1)
    raw.start(cp, 1, stamp, tx, "TAG1", 0.0, received=got)
    raw.status(cp, 1, stamp, "Charging", received=got)
    stamp, got = at(31)
    raw.stop(cp, stamp, tx, 5500.0, received=got)
    raw.status(cp, 1, stamp, "Finishing", received=got)
    stamp, got = at(40)
    raw.status(cp, 1, stamp, "Available", received=got)


def test_a_live_charger_three_minutes_ahead_has_its_session_moved_back_and_flagged(
    settings: Settings, raw: RawZone
) -> None:
    # Under the 5-minute receipt rule, so only the offset estimate can move it.
    _session(raw, "CP1", T, 3 * M, "7")
    _session(raw, "CP2", T, timedelta(0), "8")
    raw.flush()
    materialize_day(settings, DAY)
    by_station = {s["station_id"]: s for s in work(settings, "sessions", DAY)}
    skewed, honest = by_station["CP1"], by_station["CP2"]
    assert abs((skewed["plug_in"] - T).total_seconds()) < 1
    assert abs((skewed["plug_out"] - (T + 40 * M)).total_seconds()) < 1
    assert skewed["clock_corrected"] is True
    assert honest["plug_in"] == T and honest["clock_corrected"] is False


def test_a_queue_replayed_on_a_reconnect_keeps_the_offset_of_the_chargers_clock(
    settings: Settings, raw: RawZone
) -> None:
    ahead = 2 * 60 * M
    _session(raw, "CP1", T - 120 * M, ahead, "6")  # a live connection that shows the offset
    raw.flush()
    # Offline from T; on reconnecting at T + 60 min the charger replays the session it recorded.
    _session(raw, "CP1", T, ahead, "7")
    replayed = raw.rows["status_notifications"] + raw.rows["transaction_events"]
    for i, row in enumerate(sorted(replayed, key=lambda r: r["timestamp"])):
        row["connection_id"] = "test-CP1-2"
        row["received_at"] = T + 60 * M + i * timedelta(milliseconds=50)
    raw.flush()
    materialize_day(settings, DAY)
    late = next(s for s in work(settings, "sessions", DAY) if s["transaction_id"] == "7")
    assert abs((late["plug_in"] - T).total_seconds()) < 1
    assert late["clock_corrected"] is True
    offsets = RawIndex.of(settings).clock_offsets()
    assert offsets["test-CP1-2"].source == "carried"
    assert abs(offsets["test-CP1-2"].offset_s - 7200) < 1


def _conn(
    conn: str, cp: str, first: datetime, d0: float, live: tuple[int, float, float] | None
) -> ConnectionStats:
    """live: (messages, median, interquartile range) of timestamp - receipt."""
    n, med, iqr = live or (0, None, None)
    return ConnectionStats(conn, cp, n, med, 0.0 if live else None, iqr, first, d0)


def test_live_messages_that_disagree_give_no_offset() -> None:
    rule = ClockRule()
    steady = _conn("a", "CP1", T, 400.0, (20, 400.0, 4.0))
    drifting = _conn("b", "CP2", T, 400.0, (20, 400.0, 800.0))
    small = _conn("c", "CP3", T, 20.0, (20, 20.0, 2.0))
    offsets = estimate_offsets([steady, drifting, small], rule)
    assert set(offsets) == {"a"} and offsets["a"].source == "live"


def test_a_replay_gives_offsets_only_when_the_fleet_started_on_one_shared_clock() -> None:
    rule = ClockRule()
    lag = -10 * 86400.0  # a replay of days long past
    together = [_conn(f"c{i}", f"CP{i}", T + i * timedelta(seconds=0.1), lag, None) for i in range(6)]
    together.append(_conn("c9", "CP9", T + timedelta(seconds=1), lag + 1800, None))
    offsets = estimate_offsets(together, rule)
    assert set(offsets) == {"c9"} and abs(offsets["c9"].offset_s - 1800) < 1e-6
    # Chargers whose first messages were stamped at different times (an import of several days).
    scattered = [
        _conn(f"c{i}", f"CP{i}", T + i * timedelta(seconds=0.1), lag + i * 3600, None) for i in range(7)
    ]
    assert estimate_offsets(scattered, rule) == {}


def test_an_index_from_before_clock_offsets_gathers_them_without_calling_old_files_new(
    settings: Settings, raw: RawZone
) -> None:
    _session(raw, "CP1", T, 3 * M, "7")
    raw.flush()
    index = RawIndex.of(settings)
    index.refresh()
    assert set(index.clock_offsets()) == {"test-CP1"}
    with sqlite3.connect(index.path) as db:
        db.execute("DROP TABLE clock_stats")
        db.execute("DROP TABLE clock_backlog")
    upgraded = RawIndex.of(settings)
    assert upgraded.clock_offsets() == {}
    assert upgraded.refresh() == []
    assert abs(upgraded.clock_offsets()["test-CP1"].offset_s - 180) < 1


def test_the_sensor_requests_the_day_a_clock_offset_moves_events_back_to(settings: Settings) -> None:
    # Events stamped just after midnight by a clock 20 minutes ahead happened the day before.
    after_midnight = day_bounds(date(2026, 3, 11), settings.timezone)[0] + 5 * M
    f = IndexedFile(
        Path("x.parquet"), "status_notifications", "2026-03-11", 3, after_midnight, after_midnight
    )
    today = date(2026, 3, 12)
    assert affected_dates([f], settings, today) == {date(2026, 3, 11)}
    assert affected_dates([f], settings, today, 20 * M) == {date(2026, 3, 10), date(2026, 3, 11)}
