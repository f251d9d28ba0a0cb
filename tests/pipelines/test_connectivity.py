"""Offline periods from the connection log, heartbeat silences and replayed messages (real Parquet)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ocpp_opendata.settings import Settings
from pipelines.daily import connect
from pipelines.raw_index import RawIndex
from pipelines.raw_reader import register_view
from pipelines.transforms.connectivity import OfflinePeriod, offline_periods, register_connectivity_views
from tests.pipelines.rawdata import RawZone

M = timedelta(minutes=1)
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _heartbeats(raw: RawZone, cp: str, conn: str, start: datetime, end: datetime) -> None:
    t = start
    while t < end:
        raw.frame(cp, t, '[2,"x","Heartbeat",{}]')
        raw.rows["frames"][-1]["connection_id"] = conn
        t += 5 * M


def _periods(settings: Settings) -> list[OfflinePeriod]:
    index = RawIndex.of(settings)
    index.refresh()
    con = connect()
    register_connectivity_views(con, index, settings.clock_skew_minutes)
    register_view(con, "status_notifications", index.all_files("status_notifications"), None, None,
                  skew_minutes=settings.clock_skew_minutes)  # fmt: skip
    return offline_periods(
        con, heartbeat_interval_s=300, offline_after=settings.outage_offline_after,
        spans=index.connection_spans(),
    )  # fmt: skip


def test_a_close_and_a_later_reopen_are_one_offline_period_from_the_close_to_the_reopen(
    settings: Settings, raw: RawZone
) -> None:
    raw.connected("CP1", T0, "c1")
    _heartbeats(raw, "CP1", "c1", T0, T0 + 60 * M)
    raw.disconnected("CP1", T0 + 60 * M, "c1")
    raw.connected("CP1", T0 + 90 * M, "c2")
    _heartbeats(raw, "CP1", "c2", T0 + 90 * M, T0 + 120 * M)
    raw.flush()
    assert _periods(settings) == [OfflinePeriod("CP1", T0 + 60 * M, T0 + 90 * M, "connection")]


def test_a_silence_of_more_than_two_heartbeat_intervals_is_offline_from_the_first_missed_heartbeat(
    settings: Settings, raw: RawZone
) -> None:
    raw.connected("CP2", T0, "c1")
    _heartbeats(raw, "CP2", "c1", T0, T0 + 30 * M)  # last one at +25 min
    _heartbeats(raw, "CP2", "c1", T0 + 70 * M, T0 + 100 * M)
    # A single missed heartbeat (10 minutes of silence) is not offline.
    _heartbeats(raw, "CP2", "c1", T0 + 105 * M, T0 + 120 * M)
    raw.flush()
    assert _periods(settings) == [OfflinePeriod("CP2", T0 + 30 * M, T0 + 70 * M, "heartbeat")]


def test_messages_replayed_on_reconnect_extend_the_offline_period_back_to_their_event_time(
    settings: Settings, raw: RawZone
) -> None:
    # The listener missed the drop (the socket stayed half-open behind a NAT until 10:20), but the
    # charger queued a status at 09:40 and replayed it at 10:30.
    raw.connected("CP3", T0, "c1")
    raw.status("CP3", 1, T0 + 5 * M, "Available")
    raw.rows["status_notifications"][-1]["connection_id"] = "c1"
    raw.disconnected("CP3", T0 + 80 * M, "c1")
    raw.connected("CP3", T0 + 90 * M, "c2")
    raw.status("CP3", 1, T0 + 40 * M, "Preparing", received=T0 + 90 * M + 2 * M / 60)
    raw.status("CP3", 1, T0 + 95 * M, "Charging")
    for r in raw.rows["status_notifications"][-2:]:
        r["connection_id"] = "c2"
    _heartbeats(raw, "CP3", "c1", T0, T0 + 40 * M)
    _heartbeats(raw, "CP3", "c2", T0 + 90 * M, T0 + 100 * M)
    raw.flush()
    assert _periods(settings) == [
        OfflinePeriod("CP3", T0 + 40 * M, T0 + 90 * M, "connection+heartbeat+replay")
    ]
