"""Sessions from raw OCPP rows: times, energy, dedupe, resets, late and odd messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ocpp_opendata.settings import Settings
from pipelines.daily import materialize_day
from tests.pipelines.helpers import work
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def one_session_16(
    raw: RawZone, cp: str = "CP1", tag: str = "04A1B2C3", t: datetime = T, reg: float = 1000.0
) -> float:
    raw.status(cp, 1, t - 60 * M, "Available")
    raw.status(cp, 1, t, "Preparing")
    raw.start(cp, 1, t + M, f"{cp}-17", tag, reg)
    raw.status(cp, 1, t + 2 * M, "Charging")
    end = raw.charge(cp, 1, t + 2 * M, 60, 11000, reg, tx=f"{cp}-17")
    raw.status(cp, 1, t + 62 * M, "SuspendedEV")
    raw.stop(cp, t + 90 * M, f"{cp}-17", end)
    raw.status(cp, 1, t + 90 * M, "Finishing")
    raw.status(cp, 1, t + 100 * M, "Available")
    return end


def test_a_16_session_takes_plug_times_from_statuses_and_energy_from_the_meter(
    settings: Settings, raw: RawZone
) -> None:
    one_session_16(raw)
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert s["plug_in"] == T
    assert s["charging_start"] == T + 2 * M
    assert s["charging_end"] == T + 62 * M
    assert s["plug_out"] == T + 100 * M
    assert abs(s["energy_wh"] - 11000.0) < 1e-6
    assert s["energy_source"] == "meter_stop"
    assert s["max_power_w"] == 11000.0
    assert s["left_open"] is False


def test_retried_start_and_stop_frames_count_once(settings: Settings, raw: RawZone) -> None:
    one_session_16(raw)
    # The charger resends both transaction messages with new message ids on a new socket.
    for row in [r for r in raw.rows["transaction_events"]]:
        raw.rows["transaction_events"].append(
            {**row, "message_id": row["message_id"] + "-retry", "connection_id": "test-CP1-2",
             "received_at": row["received_at"] + timedelta(seconds=30)}
        )  # fmt: skip
    raw.flush()
    materialize_day(settings, DAY)
    sessions = work(settings, "sessions", DAY)
    assert len(sessions) == 1
    assert abs(sessions[0]["energy_wh"] - 11000.0) < 1e-6


def test_a_201_session_takes_charging_times_from_transaction_events(settings: Settings, raw: RawZone) -> None:
    raw.version = "2.0.1"
    raw.status("CP2", 1, T - 60 * M, "Available")
    raw.status("CP2", 1, T, "Occupied")
    tx = {"source_action": "TransactionEvent", "transaction_id": "tx-a", "evse_id": 1}
    raw.tx_event("CP2", T, **tx, event_type="Started", connector_id=1, id_tag="AABBCCDD",
                 charging_state="EVConnected", seq_no=0)  # fmt: skip
    raw.meter("CP2", 1, T, "Energy.Active.Import.Register", 5000.0, "Wh", tx="tx-a")
    raw.tx_event("CP2", T + 3 * M, **tx, event_type="Updated", charging_state="Charging", seq_no=1)
    end = raw.charge("CP2", 1, T + 3 * M, 30, 22000, 5000.0, tx="tx-a")
    raw.tx_event("CP2", T + 33 * M, **tx, event_type="Updated", charging_state="SuspendedEV", seq_no=2)
    raw.tx_event("CP2", T + 50 * M, **tx, event_type="Ended", charging_state="Idle",
                 stopped_reason="EVDisconnected", seq_no=3)  # fmt: skip
    raw.meter("CP2", 1, T + 50 * M, "Energy.Active.Import.Register", end, "Wh", tx="tx-a")
    raw.status("CP2", 1, T + 50 * M, "Available")
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert (s["plug_in"], s["plug_out"]) == (T, T + 50 * M)
    assert (s["charging_start"], s["charging_end"]) == (T + 3 * M, T + 33 * M)
    assert abs(s["energy_wh"] - 11000.0) < 1e-6
    assert s["energy_source"] == "meter_values"
    assert s["stop_reason"] == "EVDisconnected"


def test_a_register_reset_mid_session_is_counted_from_zero_and_flagged(
    settings: Settings, raw: RawZone
) -> None:
    raw.status("CP1", 1, T, "Preparing")
    raw.start("CP1", 1, T, "t1", "TAG1", 50000.0)
    reg = raw.charge("CP1", 1, T, 10, 6000, 50000.0, tx="t1")  # +1000 Wh
    reg2 = raw.charge("CP1", 1, T + 11 * M, 10, 6000, 0.0, tx="t1")  # after a reboot: from zero, +1000 Wh
    raw.stop("CP1", T + 22 * M, "t1", reg2)
    raw.status("CP1", 1, T + 22 * M, "Available")
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert reg == 51000.0
    assert abs(s["energy_wh"] - 2000.0) < 1e-6
    assert s["energy_source"] == "meter_values"
    assert "register_reset" in s["quality_flags"]


def test_a_stop_with_an_unknown_id_and_late_meter_values_still_join_their_session(
    settings: Settings, raw: RawZone
) -> None:
    raw.status("CP1", 1, T, "Preparing")
    raw.start("CP1", 1, T, "41", "TAG1", 100.0)
    end = raw.charge("CP1", 1, T, 20, 3000, 100.0, tx="41")
    raw.stop("CP1", T + 20 * M, "9999", end)  # the charger lost its id
    # A sample of the transaction arrives after its stop (offline queue replayed).
    raw.meter("CP1", 1, T + 20 * M, "Energy.Active.Import.Register", end, "Wh", tx="41", received=T + 90 * M)
    raw.status("CP1", 1, T + 25 * M, "Available")
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert "stop_unknown_id" in s["quality_flags"]
    assert s["plug_out"] == T + 25 * M
    assert abs(s["energy_wh"] - 1000.0) < 1e-6


def test_a_charger_clock_far_ahead_is_moved_back_to_the_listeners_time_and_flagged(
    settings: Settings, raw: RawZone
) -> None:
    # The start is received a minute after its stamp: the estimated offset (the median of
    # timestamp - receipt, transforms/clock.py) is within half a minute of the two hours.
    ahead = timedelta(hours=2)
    raw.status("CP1", 1, T + ahead, "Preparing", received=T)
    raw.start("CP1", 1, T + ahead, "5", "TAG1", 0.0, received=T + M)
    raw.stop("CP1", T + ahead + 30 * M, "5", 500.0, received=T + 30 * M)
    raw.status("CP1", 1, T + ahead + 30 * M, "Available", received=T + 30 * M)
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert abs((s["plug_in"] - T).total_seconds()) <= 30
    assert abs((s["plug_out"] - (T + 30 * M)).total_seconds()) <= 30
    assert s["clock_corrected"] is True


def test_a_lone_timestamp_far_ahead_is_replaced_by_the_receipt_time(settings: Settings, raw: RawZone) -> None:
    # Too few messages to estimate an offset from: the 5-minute rule alone applies.
    one_session_16(raw)
    raw.rows["status_notifications"][-1]["timestamp"] += timedelta(hours=3)
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert s["plug_out"] == T + 100 * M + raw.lag
    assert s["clock_corrected"] is True


def test_a_session_without_an_end_is_left_open(settings: Settings, raw: RawZone) -> None:
    raw.status("CP1", 1, T, "Preparing")
    raw.start("CP1", 1, T, "7", "TAG1", 0.0)
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert s["left_open"] is True
    assert s["plug_out"] is None


def test_a_stale_reading_in_a_session_adds_nothing_and_is_no_reset(settings: Settings, raw: RawZone) -> None:
    end = one_session_16(raw)
    # A reading from the session's first half, replayed under a later timestamp.
    raw.meter("CP1", 1, T + 40 * M, "Energy.Active.Import.Register", 1000.0 + 5000.0, "Wh", tx="CP1-17")
    raw.flush()
    materialize_day(settings, DAY)
    (s,) = work(settings, "sessions", DAY)
    assert abs(s["energy_wh"] - (end - 1000.0)) < 1e-6
    assert "register_reset" not in s["quality_flags"]
