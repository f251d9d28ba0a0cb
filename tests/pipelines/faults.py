"""Raw sessions, clean and faulty, for the quality-rule scenarios (tests/api/test_quality.py and
tests/pipelines/test_quality_isolation.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.pipelines.rawdata import RawZone

M = timedelta(minutes=1)
REGISTER = "Energy.Active.Import.Register"


def session(
    raw: RawZone, cp: str, start: datetime, minutes: int, power_w: float, tx: str, tag: str,
    register_wh: float = 0.0, conn: int = 1,
) -> float:  # fmt: skip
    """A 1.6 session at constant power with a register sample per minute; returns the final register."""
    raw.status(cp, conn, start, "Preparing")
    raw.start(cp, conn, start, tx, tag, register_wh)
    end = raw.charge(cp, conn, start, minutes, power_w, register_wh, tx=tx)
    raw.stop(cp, start + (minutes + 1) * M, tx, end)
    raw.status(cp, conn, start + (minutes + 1) * M, "Available")
    return end


def register_backwards(
    raw: RawZone, cp: str, start: datetime, tx: str, tag: str, register_wh: float, conn: int = 1
) -> float:
    """A 40-minute 7.2 kW session whose register reads 300 Wh low once, after 20 minutes (no reset:
    far from zero), and then counts on: published, flagged `register_backwards`."""
    raw.status(cp, conn, start, "Preparing")
    raw.start(cp, conn, start, tx, tag, register_wh)
    reg = register_wh
    for i in range(41):
        t = start + i * M
        shown = reg - 300.0 if i == 20 else reg
        raw.meter(cp, conn, t, REGISTER, shown, "Wh", tx=tx)
        raw.meter(cp, conn, t, "Power.Active.Import", 7200.0 if i < 40 else 0.0, "W", tx=tx)
        if i < 40:
            reg += 120.0
    raw.stop(cp, start + 41 * M, tx, reg)
    raw.status(cp, conn, start + 41 * M, "Available")
    return reg


def future_stop(raw: RawZone, cp: str, start: datetime, tx: str, tag: str, register_wh: float) -> None:
    """A session whose stop is stamped a year ahead by a charger clock gone wrong (received on time)."""
    raw.status(cp, 1, start, "Preparing")
    raw.start(cp, 1, start, tx, tag, register_wh)
    end = raw.charge(cp, 1, start, 20, 7200.0, register_wh, tx=tx)
    stop = start + 21 * M
    raw.stop(cp, stop + timedelta(days=365), tx, end, received=stop)
    raw.status(cp, 1, stop, "Available")


# Three public stations over two days with three faults (tests/api/test_quality.py, the CLI tests).
D1, D2 = date(2026, 3, 10), date(2026, 3, 11)
T1 = datetime(2026, 3, 10, 8, tzinfo=UTC)
T2 = datetime(2026, 3, 11, 8, tzinfo=UTC)
REGISTRY = [
    ("CP1", "One", 52.2, 5.90, "Centrum", 22, "public"),
    ("CP2", "Two", 52.2, 5.91, "Centrum", 22, "public"),
    ("CP3", "Three", 52.2, 5.92, "Centrum", 22, "public"),
]


def faulty_fleet(raw: RawZone) -> None:
    for cp in ("CP1", "CP2", "CP3"):
        raw.status(cp, 1, T1 - 60 * M, "Available")
    # CP1, day 1: a clean session, then 470 kW on a 22 kW connector (withheld).
    reg = session(raw, "CP1", T1, 30, 11_000, "c1-1", "TAGA1", 0.0)
    session(raw, "CP1", T1 + 120 * M, 10, 470_000, "c1-2", "TAGB2", reg)
    session(raw, "CP1", T1 + 240 * M, 20, 11_000, "c1-3", "TAGC3", reg + 80_000)
    # CP2, day 2: the second session starts on the connector 30 minutes before the first ended.
    reg = session(raw, "CP2", T2, 60, 7_000, "c2-1", "TAGD4", 0.0)
    raw.status("CP2", 1, T2 + 30 * M, "Preparing")
    raw.start("CP2", 1, T2 + 30 * M, "c2-2", "TAGE5", reg)
    raw.stop("CP2", T2 + 90 * M, "c2-2", reg + 3000)
    session(raw, "CP2", T2 + 180 * M, 20, 7_000, "c2-3", "TAGF6", reg + 3000)
    # CP3, day 2: 30 kW on a connector the registry rates 22 kW, overridden by the operator.
    reg = session(raw, "CP3", T2, 30, 30_000, "c3-1", "TAGG7", 0.0)
    session(raw, "CP3", T2 + 60 * M, 30, 11_000, "c3-2", "TAGH8", reg)
    raw.flush()


OVERRIDES = (
    "station_id,rule,reason,reviewed_by,reviewed_on\n"
    "CP3,power_above_connector_max,30 kW DC unit; registry rating outdated,ops,2026-03-12\n"
    "CP3,energy_above_power_time,30 kW DC unit; registry rating outdated,ops,2026-03-12\n"
)
