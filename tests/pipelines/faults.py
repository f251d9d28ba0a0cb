"""Raw sessions, clean and faulty, for the quality-rule scenarios (tests/api/test_quality.py and
tests/pipelines/test_quality_isolation.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

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
) -> None:
    """A 40-minute 7.2 kW session whose register drops by 300 Wh (no reset: far from zero) after 20
    minutes and then counts on: published, flagged `register_backwards`."""
    raw.status(cp, conn, start, "Preparing")
    raw.start(cp, conn, start, tx, tag, register_wh)
    reg = register_wh
    for i in range(41):
        t = start + i * M
        shown = reg - 300.0 if 20 <= i < 25 else reg
        raw.meter(cp, conn, t, REGISTER, shown, "Wh", tx=tx)
        raw.meter(cp, conn, t, "Power.Active.Import", 7200.0 if i < 40 else 0.0, "W", tx=tx)
        if i < 40:
            reg += 120.0
    raw.stop(cp, start + 41 * M, tx, reg)
    raw.status(cp, conn, start + 41 * M, "Available")


def future_stop(raw: RawZone, cp: str, start: datetime, tx: str, tag: str, register_wh: float) -> None:
    """A session whose stop is stamped a year ahead by a charger clock gone wrong (received on time)."""
    raw.status(cp, 1, start, "Preparing")
    raw.start(cp, 1, start, tx, tag, register_wh)
    end = raw.charge(cp, 1, start, 20, 7200.0, register_wh, tx=tx)
    stop = start + 21 * M
    raw.stop(cp, stop + timedelta(days=365), tx, end, received=stop)
    raw.status(cp, 1, stop, "Available")
