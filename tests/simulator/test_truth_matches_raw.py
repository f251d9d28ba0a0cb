"""The ground truth and what the listener stored agree."""

from __future__ import annotations

import polars as pl
import pytest

from tests.simulator.conftest import Run

pytestmark = pytest.mark.slow


def _with_transaction_ids(run: Run) -> pl.DataFrame:
    """Truth sessions with their transaction id: 2.0.1's from the truth, 1.6's as the listener gave it."""
    sessions = run.truth_table("sessions")
    given = run.truth_table("run_transaction_ids").select(
        "session_id", pl.col("transaction_id").alias("given")
    )
    return sessions.join(given, on="session_id", how="left").with_columns(
        tx=pl.coalesce("transaction_id", "given")
    )


@pytest.mark.parametrize("which", ["perfect_run", "imperfect_run"])
def test_every_simulated_session_has_its_start_and_stop_events(
    which: str, request: pytest.FixtureRequest
) -> None:
    run: Run = request.getfixturevalue(which)
    sessions = _with_transaction_ids(run)
    assert sessions.height > 20
    assert sessions["tx"].null_count() == 0
    events = run.raw_table("transaction_events")
    for kind in ("Started", "Ended"):
        seen = (
            events.filter(pl.col("event_type") == kind).select("charge_point_id", "transaction_id").unique()
        )
        missing = sessions.join(
            seen,
            left_on=["charge_point_id", "tx"],
            right_on=["charge_point_id", "transaction_id"],
            how="anti",
        )
        assert missing.is_empty(), f"sessions without {kind} events: {missing['session_id'].to_list()}"
    assert run.result.sessions == sessions.height


@pytest.mark.parametrize("which", ["perfect_run", "imperfect_run"])
def test_energy_per_connector_in_raw_meter_values_equals_the_truth(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Register rise per transaction, summed per connector; kWh and multiplier models included."""
    run: Run = request.getfixturevalue(which)
    sessions = _with_transaction_ids(run)
    registers = run.raw_table("meter_values").filter(
        pl.col("measurand") == "Energy.Active.Import.Register", pl.col("transaction_id").is_not_null()
    )
    per_tx = registers.group_by("charge_point_id", "transaction_id").agg(
        raw_wh=pl.col("value").max() - pl.col("value").min()
    )
    joined = sessions.join(
        per_tx, left_on=["charge_point_id", "tx"], right_on=["charge_point_id", "transaction_id"], how="left"
    )
    assert joined["raw_wh"].null_count() == 0
    per_connector = joined.group_by("charge_point_id", "connector_id").agg(
        pl.col("energy_wh").sum(), pl.col("raw_wh").sum(), pl.len()
    )
    assert per_connector.height >= 8
    resolution_wh = 1.0
    off = per_connector.filter((pl.col("raw_wh") - pl.col("energy_wh")).abs() >= resolution_wh)
    assert off.is_empty(), off


def test_status_notifications_are_the_truths_status_changes(perfect_run: Run) -> None:
    intervals = perfect_run.truth_table("status_intervals").sort("charge_point_id", "connector_id", "start")
    changes = (
        intervals.with_columns(prev=pl.col("status").shift(1).over("charge_point_id", "connector_id"))
        .filter(pl.col("prev").is_null() | (pl.col("prev") != pl.col("status")))
        .select("charge_point_id", "connector_id", "status", timestamp=pl.col("start"))
    )
    raw = (
        perfect_run.raw_table("status_notifications")
        .with_columns(connector_id=pl.coalesce("evse_id", "connector_id"))
        .filter(pl.col("connector_id") > 0)
        .select("charge_point_id", "connector_id", "status", "timestamp")
    )
    assert "Faulted" in raw["status"].to_list()
    assert {"Preparing", "Charging", "SuspendedEV", "Finishing", "Occupied"} <= set(raw["status"].to_list())
    assert raw.sort(pl.all()).equals(changes.sort(pl.all()))


def test_2_0_1_charging_states_follow_the_truth(perfect_run: Run) -> None:
    sessions = perfect_run.truth_table("sessions").filter(pl.col("ocpp_version") == "2.0.1")
    events = perfect_run.raw_table("transaction_events").filter(pl.col("charging_state").is_not_null())
    charging = sessions.join(
        events.filter(pl.col("charging_state") == "Charging"), on=["charge_point_id", "transaction_id"]
    )
    charged = sessions.filter(pl.col("charging_start").is_not_null())
    assert charging.height == charged.height
    assert (charging["timestamp"] == charging["charging_start"]).all()
    suspended = events.filter(pl.col("charging_state") == "SuspendedEV")
    # SuspendedEV when the car is full before the transaction ends, or from the start when it draws nothing.
    expected = sessions.filter(
        (pl.col("charging_end") < pl.col("transaction_stop")) | (pl.col("kind") == "zero_energy")
    )
    assert suspended.height == expected.height > 0


def test_a_perfect_fleet_sends_only_schema_valid_frames_that_are_all_accepted(perfect_run: Run) -> None:
    frames = perfect_run.raw_table("frames")
    calls = frames.filter(pl.col("direction") == "in", pl.col("message_type") == 2)
    assert set(calls["action"].to_list()) >= {
        "BootNotification", "StatusNotification", "Heartbeat", "StartTransaction", "StopTransaction",
        "MeterValues", "TransactionEvent",
    }  # fmt: skip
    invalid = calls.filter(pl.col("validation_error").is_not_null())
    assert invalid.is_empty(), invalid.select("action", "validation_error").unique()
    assert frames.filter(pl.col("message_type") == 4).is_empty()
    assert perfect_run.result.call_errors == {} and perfect_run.result.not_accepted == {}
    for table in ("meter_values", "status_notifications", "transaction_events", "boot_notifications"):
        flagged = perfect_run.raw_table(table).filter(pl.col("quality").list.len() > 0)
        assert flagged.is_empty(), (table, flagged["quality"].explode().unique().to_list())
