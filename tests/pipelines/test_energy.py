"""Metered energy per station and minute from register samples of several sources and qualities."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from ocpp_opendata.settings import Settings
from pipelines.daily import station_minutes_for_day
from pipelines.raw_index import RawIndex
from tests.pipelines.helpers import current, published, run_days, work, write_registry
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
REGISTER = "Energy.Active.Import.Register"


def minutes(settings: Settings) -> list[dict]:
    index = RawIndex(settings.data_dir, settings.clock_skew_minutes)
    index.refresh()
    station_minutes_for_day(settings, index, DAY)
    return work(settings, "station_minutes", DAY)


def session_16(
    raw: RawZone, conn: int, tx: str, start: datetime, n: int, power_w: float, reg: float
) -> float:
    """A 1.6 session: Start, a MeterValues sample per minute, Stop with Begin/End transactionData."""
    raw.start("CP1", conn, start, tx, "04A1B2C3", reg)
    end = raw.charge("CP1", conn, start, n, power_w, reg, tx=tx)
    raw.stop("CP1", start + (n + 1) * M, tx, end)
    raw.transaction_data("CP1", start, tx, reg, "Transaction.Begin", received=start + (n + 1) * M)
    raw.transaction_data("CP1", start + (n + 1) * M, tx, end, "Transaction.End")
    return end - reg


def test_two_connectors_registers_never_mix_through_transaction_data(
    settings: Settings, raw: RawZone
) -> None:
    # Registers far apart: mixing their samples in one series books millions of Wh.
    a = session_16(raw, 1, "t1", T, 60, 11000, 1_000_000.0)
    b = session_16(raw, 2, "t2", T + 10 * M, 40, 7000, 5_000_000.0)
    a += session_16(raw, 1, "t3", T + 70 * M, 30, 11000, 1_000_000.0 + a)
    raw.flush()
    rows = minutes(settings)
    assert abs(sum(r["energy_wh"] for r in rows) - (a + b)) < 1e-6
    assert max(r["power_w"] for r in rows) <= 18000 + 1e-6


def test_201_samples_without_an_evse_take_it_from_their_transaction(settings: Settings, raw: RawZone) -> None:
    raw.version = "2.0.1"
    total = 0.0
    for evse, reg, power in ((1, 200_000.0, 22000), (2, 9_000_000.0, 11000)):
        tx = f"tx-{evse}"
        raw.tx_event("CP1", T, source_action="TransactionEvent", transaction_id=tx, evse_id=evse,
                     connector_id=1, event_type="Started", seq_no=0)  # fmt: skip
        raw.meter("CP1", evse, T, REGISTER, reg, "Wh", tx=tx)
        for i in range(1, 31):  # later samples name only the transaction
            raw.meter("CP1", None, T + i * M, REGISTER, reg + power / 60 * i, "Wh", tx=tx)  # type: ignore[arg-type]
        total += power / 2
    raw.flush()
    rows = minutes(settings)
    assert abs(sum(r["energy_wh"] for r in rows) - total) < 1e-6
    assert max(r["power_w"] for r in rows) <= 33000 + 1e-6


def test_stale_and_repeated_samples_add_nothing_and_a_reset_counts_from_zero(
    settings: Settings, raw: RawZone
) -> None:
    first = raw.charge("CP1", 1, T, 30, 6000, 50_000.0, tx="t1")
    # A replayed reading under a later timestamp (a queue flushed with the receipt time) and the
    # same frame again: neither is new energy, and the register carries on afterwards.
    raw.meter("CP1", 1, T + 31 * M, REGISTER, 51_000.0, "Wh", tx="t1")
    raw.meter("CP1", 1, T + 15 * M, REGISTER, 50_000.0 + 1500.0, "Wh", tx="t1")
    raw.meter("CP1", 1, T + 32 * M, REGISTER, first, "Wh", tx="t1")
    # The charger reboots while idle; its register restarts at zero.
    second = raw.charge("CP1", 1, T + 60 * M, 20, 6000, 0.0, tx="t2")
    raw.flush()
    rows = minutes(settings)
    assert abs(sum(r["energy_wh"] for r in rows) - ((first - 50_000.0) + second)) < 1e-6


def test_a_single_garbled_reading_is_ignored(settings: Settings, raw: RawZone) -> None:
    end = raw.charge("CP1", 1, T, 30, 6000, 50_000.0, tx="t1")
    raw.meter("CP1", 1, T + 10 * M + timedelta(seconds=30), REGISTER, 51_000.0 * 1000, "Wh", tx="t1")
    raw.flush()
    rows = minutes(settings)
    assert abs(sum(r["energy_wh"] for r in rows) - (end - 50_000.0)) < 1e-6
    assert max(r["power_w"] for r in rows) <= 6000 + 1e-6


def test_a_station_drawing_megawatts_has_only_that_interval_withheld_and_listed(
    settings: Settings, raw: RawZone
) -> None:
    write_registry(settings.data_dir, [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public")])
    raw.status("CP1", 1, T - 60 * M, "Available")
    raw.charge("CP1", 1, T, 30, 11000, 50_000.0, tx="t1")
    # 7.6 kWh in a minute: within the unit mix-up limit's whole-Wh margin, but 456 kW on one connector.
    raw.meter("CP1", 1, T + 31 * M, REGISTER, 50_000.0 + 5500 + 7600, "Wh", tx="t1")
    raw.flush()
    run_days(settings, DAY)
    manifest = json.loads((current(settings) / "manifest.json").read_text())
    assert manifest["datasets"]["station_energy_15min"]["kept_previous"] == {}
    rows = published(settings, "station_energy_15min")
    issues = [r for r in published(settings, "quality_issues") if r["dataset"] == "station_energy_15min"]
    assert [(r["rule"], r["action"], r["interval_start"]) for r in issues] == [
        ("power_above_connector_max", "withheld", T + 30 * M)
    ]
    assert issues[0]["measured_value"] > 400 and issues[0]["limit_value"] == round(22 * 1.1, 3)
    # The two intervals before it are published (11 kW charging); the bad one is not.
    assert [r["interval_start"] for r in rows] == [T, T + 15 * M]
    assert all(r["peak_power_kw"] <= 11.0 + 1e-9 for r in rows)
    assert published(settings, "station_availability_hourly")
    assert manifest["quality"]["withheld_records"] == 1


def test_energy_between_two_samples_is_split_linearly_across_local_midnight_and_15_minutes(
    settings: Settings, raw: RawZone
) -> None:
    from zoneinfo import ZoneInfo

    write_registry(settings.data_dir, [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public")])
    # Samples every 10 minutes at :x5: each interval straddles a quarter hour, one local midnight.
    midnight = datetime(2026, 3, 11, 0, 0, tzinfo=ZoneInfo("Europe/Stockholm")).astimezone(UTC)
    first = midnight - 35 * M
    raw.status("CP1", 1, first - 60 * M, "Available")
    raw.start("CP1", 1, first, "t1", "04A1B2C3", 10_000.0)
    for i in range(8):  # 23:25 … 00:35 local, 1.2 kWh per interval (7.2 kW)
        raw.meter("CP1", 1, first + 10 * i * M, REGISTER, 10_000.0 + 1200.0 * i, "Wh", tx="t1")
    raw.flush()
    run_days(settings, DAY, DAY + timedelta(days=1))
    rows = published(settings, "station_energy_15min")
    per_day: dict[date, float] = {}
    for r in rows:
        per_day[r["date"]] = per_day.get(r["date"], 0.0) + r["energy_kwh"]
    # 23:25 → 00:00 is 35 of the 70 minutes: half the 8.4 kWh on each side of midnight.
    assert abs(per_day[DAY] - 4.2) < 1e-9
    assert abs(per_day[DAY + timedelta(days=1)] - 4.2) < 1e-9
    # A quarter hour fully inside the samples holds 15 minutes at 7.2 kW.
    q = {r["interval_start"]: r["energy_kwh"] for r in rows}
    assert abs(q[midnight - 30 * M] - 1.8) < 1e-9
    assert abs(q[midnight] - 1.8) < 1e-9
