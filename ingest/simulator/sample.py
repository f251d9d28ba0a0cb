"""One meter reading of a connector: what every MeterValues sample is built from."""

from __future__ import annotations

import time
from dataclasses import dataclass

Payload = dict[str, object]


@dataclass(frozen=True, slots=True)
class Sample:
    energy_wh: int  # the register (whole Wh)
    power_w: float
    currents_a: tuple[float, ...]  # L1..L3 on AC; one value on DC
    voltages_v: tuple[float, ...]  # L1-N..L3-N on AC; one value on DC
    soc_percent: float | None  # DC only

    @property
    def dc(self) -> bool:
        return len(self.currents_a) == 1


def iso(t: int) -> str:
    """OCPP timestamp of an epoch second (UTC, 'Z')."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def kilo(value: float) -> float:
    """A Wh/W value in k-units, exact to the unit (three decimals)."""
    return round(value / 1000, 3)
