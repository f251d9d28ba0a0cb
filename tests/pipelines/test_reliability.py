"""Reliability datasets from raw OCPP rows: port outages by cause, NEVI uptime, exclusions, UK reg. 7
network reliability and session outcomes (pipelines/reliability, docs/reliability.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ocpp_opendata.settings import Settings
from pipelines.reliability.checks import reliability_checks
from pipelines.reliability.exclusions import ExclusionError, load_exclusions
from tests.pipelines.helpers import published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

D1, D2 = date(2026, 3, 10), date(2026, 3, 11)
# Europe/Stockholm is UTC+1 in March: local midnight of D2 is 23:00 UTC on D1.
T0 = datetime(2026, 3, 9, 23, 0, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)
REGISTRY = [
    ("CP1", "Rapid", 59.3, 18.0, "north", 150, "public"),
    ("CP2", "Home", 59.3, 18.1, "north", 11, "private"),
]


def heartbeats(raw: RawZone, cp: str, conn: str, start: datetime, end: datetime) -> None:
    """Inbound Heartbeat frames every 300 s: the signs of life connectivity.py looks for."""
    t = start
    while t < end:
        raw.rows["frames"].append(
            {"received_at": t, "charge_point_id": cp, "connection_id": conn, "ocpp_version": "1.6",
             "seq": 0, "direction": "in", "message_type": 2, "message_id": "hb", "action": "Heartbeat",
             "text": '[2,"hb","Heartbeat",{}]', "length": 22}
        )  # fmt: skip
        t += 5 * M


def fleet(raw: RawZone) -> None:
    """CP1 (150 kW, two ports) over two local days: a Faulted period across midnight with an MREC
    code, an Unavailable window, a session that never delivers, one normal session; CP2 is private."""
    for conn in (1, 2):
        raw.status("CP1", conn, T0, "Available")
    raw.connected("CP1", T0 - H)
    heartbeats(raw, "CP1", "test-CP1", T0 - H, T0 + 49 * H)
    # Port 1: Faulted from 21:00 local D1 (20:00 UTC) to 02:00 local D2 (01:00 UTC): 300 min.
    raw.status("CP1", 1, T0 + 21 * H, "Faulted", error_code="OtherError", vendor_id="com.evgo.mrec",
               vendor_error_code="F008", info="70")  # fmt: skip
    raw.status("CP1", 1, T0 + 26 * H, "Available")
    # Port 2: Unavailable 10:00-11:30 UTC on D1 (90 min).
    raw.status("CP1", 2, T0 + 11 * H, "Unavailable")
    raw.status("CP1", 2, T0 + 12 * H + 30 * M, "Available")
    # Port 2, D2: a session that starts but never delivers (08:00-08:20 UTC).
    t = T0 + 33 * H
    raw.status("CP1", 2, t, "Preparing")
    raw.start("CP1", 2, t + M, "tx-bad", "TAGBAD01", 5000.0)
    raw.stop("CP1", t + 19 * M, "tx-bad", 5000.0)
    raw.status("CP1", 2, t + 20 * M, "Available")
    # Port 1, D2: a normal 60 kW session of 40 min (40 kWh).
    t = T0 + 36 * H
    raw.status("CP1", 1, t, "Preparing")
    raw.start("CP1", 1, t + M, "tx-ok", "TAGOK001", 9000.0)
    raw.status("CP1", 1, t + 2 * M, "Charging")
    end = raw.charge("CP1", 1, t + 2 * M, 40, 60000, 9000.0, tx="tx-ok")
    raw.stop("CP1", t + 43 * M, "tx-ok", end)
    raw.status("CP1", 1, t + 44 * M, "Available")
    # A private station's fault never appears.
    raw.status("CP2", 1, T0, "Available")
    raw.status("CP2", 1, T0 + 2 * H, "Faulted", error_code="GroundFailure")
    raw.flush()


@pytest.fixture
def run(settings: Settings, raw: RawZone) -> Settings:
    write_registry(settings.data_dir, REGISTRY)
    (settings.data_dir / "outage_exclusions.csv").write_text(
        "station_id,connector_id,start,end,reason\n"
        # 30 of the Unavailable window's 90 minutes were declared maintenance...
        "CP1,2,2026-03-10T11:00:00Z,2026-03-10T12:00:00Z,scheduled_maintenance\n"
        # ...and a declared utility outage when nothing was down excludes nothing.
        "CP1,,2026-03-10T15:00:00Z,2026-03-10T16:00:00Z,utility_outage\n"
    )
    fleet(raw)
    run_days(settings, D1, D2)
    return settings


def test_port_outages_hold_each_cause_with_its_error_code_and_exclusions(run: Settings) -> None:
    rows = {(r["connector_id"], r["cause"]): r for r in published(run, "port_outages")}
    assert set(rows) == {(1, "faulted"), (2, "unavailable"), (2, "no_power")}
    assert {r["station_id"] for r in rows.values()} == {"CP1"}
    f = rows[(1, "faulted")]
    assert f["date"] == D1 and f["minutes"] == pytest.approx(300.0)
    assert (f["error_code"], f["vendor_error_code"], f["mrec_code"]) == ("OtherError", "F008", "F008")
    u = rows[(2, "unavailable")]
    assert u["minutes"] == pytest.approx(90.0)
    assert u["excluded"] and u["excluded_minutes"] == pytest.approx(30.0)
    assert u["exclusion_reason"] == "scheduled_maintenance"
    n = rows[(2, "no_power")]
    assert n["date"] == D2 and not n["excluded"]
    # Widened to the 15-minute grid: 08:00-08:30 UTC.
    assert n["minutes"] == pytest.approx(30.0)


def test_port_uptime_follows_the_nevi_formula_per_port_month(run: Settings) -> None:
    rows = {r["connector_id"]: r for r in published(run, "port_uptime_monthly")}
    assert set(rows) == {1, 2}
    p1, p2 = rows[1], rows[2]
    # Two local days observed from 00:00 local (23:00 UTC on the 9th): 2 × 1440 minutes.
    assert p1["date"] == date(2026, 3, 1)
    assert p1["period_minutes"] == pytest.approx(2880.0) and p1["unknown_minutes"] == 0
    assert p1["outage_minutes"] == pytest.approx(300.0) and p1["excluded_minutes"] == 0
    assert p1["uptime_pct"] == pytest.approx(100 * (2880 - 300) / 2880)
    assert p2["outage_minutes"] == pytest.approx(120.0) and p2["excluded_minutes"] == pytest.approx(30.0)
    assert p2["uptime_pct"] == pytest.approx(100 * (2880 - 90) / 2880)
    assert p1["uptime_pct_12m"] is None and p1["window_months"] == 1
    # 89.6 % and 96.9 %: neither port exceeds 97 %.
    assert p1["meets_nevi"] is False and p2["meets_nevi"] is False


def test_network_reliability_counts_only_inoperative_and_out_of_order_minutes(run: Settings) -> None:
    rows = {(r["date"], r["area"]): r for r in published(run, "network_reliability_monthly")}
    assert set(rows) == {(date(2026, 3, 1), "north"), (date(2026, 3, 1), "(network)")}
    net = rows[(date(2026, 3, 1), "(network)")]
    assert net["power_class"] == "rapid" and net["stations"] == 1
    assert net["not_working_minutes"] == pytest.approx(300.0 + 90.0)
    assert net["total_minutes"] == pytest.approx(2 * 2880.0)
    assert net["reliability_pct"] == pytest.approx(100 * (5760 - 390) / 5760)
    assert net["meets_uk_reg7"] is False
    (year,) = [r for r in published(run, "network_reliability_yearly") if r["area"] == "(network)"]
    assert year["year"] == 2026 and year["reliability_pct"] == pytest.approx(net["reliability_pct"])


def test_session_outcomes_tell_a_failed_start_from_a_success(run: Settings) -> None:
    (row,) = published(run, "station_session_outcomes_daily")
    assert (row["date"], row["station_id"], row["sessions"]) == (D2, "CP1", 2)
    assert row["outcomes_suppressed"] is False
    assert (row["successful"], row["failed_to_start"], row["ended_in_fault"], row["too_short"]) == (
        1,
        1,
        0,
        0,
    )
    assert row["visits"] == 2 and row["first_attempt_success_pct"] == pytest.approx(50.0)


def test_a_lost_connection_is_an_offline_outage_and_a_quick_reconnect_is_not(
    settings: Settings, raw: RawZone
) -> None:
    write_registry(settings.data_dir, REGISTRY)
    raw.status("CP1", 1, T0, "Available")
    raw.connected("CP1", T0 - H, "c1")
    heartbeats(raw, "CP1", "c1", T0 - H, T0 + 2 * H)
    heartbeats(raw, "CP1", "c2", T0 + 2 * H + 2 * M, T0 + 13 * H)
    heartbeats(raw, "CP1", "c3", T0 + 15 * H + 30 * M, T0 + 25 * H)
    # A reconnect after 2 minutes (under two 300 s heartbeat intervals): no outage.
    raw.disconnected("CP1", T0 + 2 * H, "c1")
    raw.connected("CP1", T0 + 2 * H + 2 * M, "c2")
    # Gone from 12:00 to 14:30 UTC: an offline outage of 150 minutes.
    raw.disconnected("CP1", T0 + 13 * H, "c2")
    raw.connected("CP1", T0 + 15 * H + 30 * M, "c3")
    raw.status("CP1", 1, T0 + 15 * H + 31 * M, "Available")
    raw.flush()
    run_days(settings, D1)
    (o,) = published(settings, "port_outages")
    assert o["cause"] == "offline" and o["minutes"] == pytest.approx(150.0)
    assert o["start"] == T0 + 13 * H and not o["ongoing"]
    (u,) = published(settings, "port_uptime_monthly")
    assert u["outage_minutes"] == pytest.approx(150.0) and u["period_minutes"] == pytest.approx(1440.0)


def test_a_bad_exclusion_reason_is_refused_with_its_line(data_dir: Path) -> None:
    (data_dir / "outage_exclusions.csv").write_text(
        "station_id,connector_id,start,end,reason\n"
        "CP1,1,2026-03-10T11:00:00Z,2026-03-10T12:00:00Z,scheduled_maintenance\n"
        "CP1,1,2026-03-10T11:00:00Z,2026-03-10T12:00:00Z,bad luck\n"
    )
    with pytest.raises(ExclusionError, match="line 3: reason 'bad luck' is not one of"):
        load_exclusions(data_dir)


def test_the_blocking_checks_pass_on_the_release_and_catch_a_broken_row(run: Settings) -> None:
    tables = {
        name: pa.Table.from_pylist(published(run, name))
        for name in ("port_outages", "port_uptime_monthly", "network_reliability_monthly",
                     "network_reliability_yearly")
    }  # fmt: skip
    assert all(r.passed for r in reliability_checks(tables, run.timezone))
    rows = tables["port_uptime_monthly"].to_pylist()
    rows[0] = {**rows[0], "outage_minutes": rows[0]["period_minutes"] + 5, "uptime_pct": 99.0}
    broken = {**tables, "port_uptime_monthly": pa.Table.from_pylist(rows)}
    failed = {r.name for r in reliability_checks(broken, run.timezone) if not r.passed}
    assert failed == {"outage_minutes_within_period", "outages_add_up_to_monthly_totals",
                      "uptime_follows_the_formula"}  # fmt: skip
