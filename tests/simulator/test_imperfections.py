"""Each imperfection switch changes the raw data the way docs/simulator.md says, and only then.

The perfect and the imperfect run play the same sessions (same seed), so a difference between
their raw data is the imperfection's doing.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta

import orjson
import polars as pl
import pytest

from tests.simulator.conftest import Run

pytestmark = pytest.mark.slow
TRANSACTION_ACTIONS = ("StartTransaction", "StopTransaction", "TransactionEvent")


def _kinds(run: Run, kind: str) -> pl.DataFrame:
    return run.truth_table("imperfections").filter(pl.col("kind") == kind)


def _chargers(run: Run) -> pl.DataFrame:
    return run.truth_table("chargers")


def test_the_imperfect_run_injects_every_kind_and_the_perfect_run_none(
    perfect_run: Run, imperfect_run: Run
) -> None:
    kinds = set(imperfect_run.truth_table("imperfections")["kind"].to_list())
    every = {"clock_skew", "json_numbers", "kwh_units", "multiplier", "offline", "register_reset"}
    assert kinds == every | {"retried_message"}
    assert perfect_run.truth_table("imperfections").is_empty()
    assert perfect_run.truth_table("sessions").equals(
        imperfect_run.truth_table("sessions")
        .drop("meter_start_wh", "meter_stop_wh")
        .join(
            perfect_run.truth_table("sessions").select("session_id", "meter_start_wh", "meter_stop_wh"),
            on="session_id",
        )
        .select(perfect_run.truth_table("sessions").columns)
    ), "imperfections must not change the sessions, only registers after a reset"


def _charger_timestamps(run: Run, cp: str) -> list[datetime]:
    """Timestamps of the first boot, every transaction event and every status change but Available
    (a reboot re-sends Available)."""
    events = run.raw_table("transaction_events").filter(pl.col("charge_point_id") == cp)
    statuses = run.raw_table("status_notifications").filter(pl.col("charge_point_id") == cp)
    changes = statuses.filter(pl.col("status") != "Available")["timestamp"].to_list()
    return sorted({*events["timestamp"].to_list(), *changes, statuses["timestamp"].min()})


def test_a_skewed_clock_shifts_every_timestamp_by_the_recorded_skew(
    perfect_run: Run, imperfect_run: Run
) -> None:
    skews = _chargers(imperfect_run).filter(pl.col("clock_skew_s") > 0)
    assert skews.height > 0
    for cp, skew in skews.select("charge_point_id", "clock_skew_s").iter_rows():
        true_times = _charger_timestamps(perfect_run, cp)
        sent = _charger_timestamps(imperfect_run, cp)
        assert true_times and sent != true_times
        assert [t - timedelta(seconds=skew) for t in sent] == true_times
    unskewed = _chargers(imperfect_run).filter(pl.col("clock_skew_s") == 0)["charge_point_id"].to_list()
    for cp in unskewed:
        assert _charger_timestamps(imperfect_run, cp) == _charger_timestamps(perfect_run, cp)


def test_offline_messages_are_replayed_on_a_new_connection_with_their_original_timestamps(
    perfect_run: Run, imperfect_run: Run
) -> None:
    periods = imperfect_run.truth_table("offline_periods").filter(pl.col("queued_messages") > 0)
    assert periods.height > 0
    assert imperfect_run.result.replayed == periods["queued_messages"].sum()
    skew = dict(_chargers(imperfect_run).select("charge_point_id", "clock_skew_s").iter_rows())
    statuses = imperfect_run.raw_table("status_notifications")
    perfect_statuses = perfect_run.raw_table("status_notifications")
    checked = 0
    for cp, start, end in periods.select("charge_point_id", "start", "end").iter_rows():
        lag = pl.duration(seconds=skew[cp])
        mine = statuses.filter(pl.col("charge_point_id") == cp).with_columns(
            true_ts=pl.col("timestamp") - lag
        )
        inside = mine.filter(pl.col("true_ts") >= start, pl.col("true_ts") < end)
        if inside.is_empty():
            continue
        before = mine.filter(pl.col("true_ts") < start).sort("received_at").tail(1)
        # A retry during the replay may open yet another connection, but none is the old one.
        assert before["connection_id"][0] not in set(inside["connection_id"].to_list())
        same = perfect_statuses.filter(
            pl.col("charge_point_id") == cp, pl.col("timestamp") >= start, pl.col("timestamp") < end
        )
        assert sorted(inside["true_ts"].to_list()) == sorted(same["timestamp"].to_list())
        checked += 1
    assert checked > 0
    flagged = imperfect_run.raw_table("transaction_events").filter(pl.col("offline"))
    assert flagged.height > 0 and set(flagged["ocpp_version"].to_list()) == {"2.0.1"}
    assert perfect_run.raw_table("transaction_events").filter(pl.col("offline")).is_empty()


def test_every_drop_shows_as_a_new_connection(perfect_run: Run, imperfect_run: Run) -> None:
    """One connection per charger when perfect; one more per offline period, reboot and retry."""
    assert imperfect_run.result.unexpected_disconnects == 0
    for run in (perfect_run, imperfect_run):
        connects = Counter(
            run.raw_table("connections").filter(pl.col("event") == "connected")["charge_point_id"].to_list()
        )
        imperfections = run.truth_table("imperfections")
        resets = imperfections.filter(pl.col("kind") == "register_reset").unique(["charge_point_id", "at"])
        expected = Counter(run.truth_table("chargers")["charge_point_id"].to_list())
        expected.update(
            imperfections.filter(pl.col("kind").is_in(["offline", "retried_message"]))[
                "charge_point_id"
            ].to_list()
        )
        expected.update(resets["charge_point_id"].to_list())
        assert connects == expected
    assert sum(connects.values()) > len(connects)


def _energy_rows(run: Run) -> pl.DataFrame:
    return run.raw_table("meter_values").filter(pl.col("measurand") == "Energy.Active.Import.Register")


def test_each_value_format_shows_in_the_raw_meter_values(perfect_run: Run, imperfect_run: Run) -> None:
    formats = dict(_chargers(imperfect_run).select("charge_point_id", "value_format").iter_rows())
    energy = _energy_rows(imperfect_run)
    for cp, fmt in formats.items():
        mine = energy.filter(pl.col("charge_point_id") == cp)
        if mine.is_empty():
            continue
        units = set(mine["unit_raw"].to_list())
        multipliers = set(mine["multiplier"].to_list())
        assert units == ({"kWh"} if fmt == "kwh" else {"Wh"}), (cp, fmt)
        assert multipliers == ({3} if fmt == "multiplier" else {None}), (cp, fmt)
        assert (mine["unit"] == "Wh").all()
    assert set(formats.values()) == {"standard", "json_numbers", "kwh", "multiplier"}
    perfect = _energy_rows(perfect_run)
    assert set(perfect["unit_raw"].to_list()) == {"Wh"} and set(perfect["multiplier"].to_list()) == {None}


def _numeric_value_chargers(run: Run) -> set[str]:
    frames = run.raw_table("frames").filter(
        pl.col("direction") == "in", pl.col("action") == "MeterValues", pl.col("ocpp_version") == "1.6"
    )
    number = re.compile(r'"value":\s*-?\d')
    return {cp for cp, text in frames.select("charge_point_id", "text").iter_rows() if number.search(text)}


def test_json_numbers_reach_the_wire_only_from_the_models_that_send_them(
    perfect_run: Run, imperfect_run: Run
) -> None:
    formats = _chargers(imperfect_run)
    charging = set(imperfect_run.truth_table("sessions")["charge_point_id"].to_list())
    numeric = set(formats.filter(pl.col("value_format") == "json_numbers")["charge_point_id"].to_list())
    assert numeric & charging and _numeric_value_chargers(imperfect_run) == numeric & charging
    assert _numeric_value_chargers(perfect_run) == set()


def _begin_registers(run: Run) -> pl.DataFrame:
    """Each transaction's lowest register reading, with the truth session it belongs to."""
    sessions = run.truth_table("sessions")
    given = run.truth_table("run_transaction_ids").select(
        "session_id", pl.col("transaction_id").alias("given")
    )
    sessions = sessions.join(given, on="session_id", how="left").with_columns(
        tx=pl.coalesce("transaction_id", "given")
    )
    lowest = _energy_rows(run).group_by("charge_point_id", "transaction_id").agg(begin=pl.col("value").min())
    return sessions.join(
        lowest, left_on=["charge_point_id", "tx"], right_on=["charge_point_id", "transaction_id"]
    )


def test_a_reboot_resets_the_registers_and_boots_again(perfect_run: Run, imperfect_run: Run) -> None:
    resets = _kinds(imperfect_run, "register_reset")
    boots = Counter(imperfect_run.raw_table("boot_notifications")["charge_point_id"].to_list())
    reboots = Counter(resets.unique(["charge_point_id", "at"])["charge_point_id"].to_list())
    assert reboots and all(boots[cp] == 1 + reboots[cp] for cp in boots)
    assert set(
        Counter(perfect_run.raw_table("boot_notifications")["charge_point_id"].to_list()).values()
    ) == {1}
    begins = _begin_registers(imperfect_run)
    dropped = 0
    for cp, connector, at, before in resets.select(
        "charge_point_id", "connector_id", "at", "value"
    ).iter_rows():
        after = begins.filter(
            pl.col("charge_point_id") == cp, pl.col("connector_id") == connector, pl.col("plug_in") > at
        ).sort("plug_in")
        if after.height:
            assert after["begin"][0] == after["meter_start_wh"][0] == 0
            dropped += before > 0
    assert dropped > 0
    perfect = _begin_registers(perfect_run).sort("charge_point_id", "connector_id", "plug_in")
    # Without reboots each session begins where the one before ended (a car that drew nothing
    # leaves the register where it was).
    rises = perfect.with_columns(
        d=pl.col("begin").diff().over("charge_point_id", "connector_id"),
        before=pl.col("energy_wh").shift(1).over("charge_point_id", "connector_id"),
    ).drop_nulls("d")
    assert rises.height and (rises["d"] == rises["before"]).all()


def _duplicated_transaction_calls(run: Run) -> list[pl.DataFrame]:
    frames = run.raw_table("frames").filter(
        pl.col("direction") == "in", pl.col("message_type") == 2, pl.col("action").is_in(TRANSACTION_ACTIONS)
    )
    keyed = frames.with_columns(
        content=pl.col("text").map_elements(lambda t: orjson.dumps(orjson.loads(t)[2:]).decode(), pl.String)
    )
    groups = keyed.group_by("charge_point_id", "content").agg("message_id", "connection_id", pl.len())
    return [g for g in groups.filter(pl.col("len") > 1).iter_slices(1)]


def test_a_retried_message_arrives_twice_with_a_new_message_id_on_a_new_connection(
    perfect_run: Run, imperfect_run: Run
) -> None:
    retried = _kinds(imperfect_run, "retried_message")
    duplicates = _duplicated_transaction_calls(imperfect_run)
    assert retried.height > 0 and len(duplicates) == retried.height == imperfect_run.result.retries
    for d in duplicates:
        assert d["len"][0] == 2
        assert len(set(d["message_id"][0])) == 2
        assert len(set(d["connection_id"][0])) == 2
    assert _duplicated_transaction_calls(perfect_run) == []
    assert imperfect_run.result.transaction_id_mismatches == 0
