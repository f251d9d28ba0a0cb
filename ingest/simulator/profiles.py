"""Site profiles and the distributions the fleet is drawn from.

Per-session figures (arrival hours, energy, connected time, car power) come from two public samples
summarised in `/work/shared/reference/charging-statistics.md`:

- street: ElaadNL open transactions, January 2019 (copy in github.com/J27avier/EvCharge,
  `data/df_elaad_preproc_jan.csv`), 827 public street sessions in the Netherlands;
- workplace: Caltech ACN-Data site 0002, May–September 2021 (copy in
  github.com/y1072302536/Electric-vehicle-charging-data, `acndata_sessions.json`), 2,114 sessions.

Neither sample is network-complete, so the per-connector arrival *rates* and everything about DC
hubs are documented assumptions (docs/simulator.md), not measurements.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

T = TypeVar("T")

# z of the 90th percentile of a standard normal: lognormals are fitted to (p50, p90).
Z90 = 1.2815515655446004


@dataclass(frozen=True)
class LogNormal:
    """A lognormal given by its median and 90th percentile, clipped to [low, high]."""

    p50: float
    p90: float
    low: float
    high: float

    @property
    def sigma(self) -> float:
        return math.log(self.p90 / self.p50) / Z90

    def draw(self, rng: random.Random) -> float:
        value = math.exp(rng.gauss(math.log(self.p50), self.sigma))
        return min(self.high, max(self.low, value))

    def at_z(self, z: float) -> float:
        """The value z standard deviations from the median (in log space), clipped."""
        return min(self.high, max(self.low, math.exp(math.log(self.p50) + self.sigma * z)))

    def draw_at(self, u: float) -> float:
        """The value at quantile u (0 < u < 1) of the clipped lognormal: a draw from one uniform."""
        u = min(max(u, 1e-9), 1 - 1e-9)
        value = math.exp(math.log(self.p50) + self.sigma * NormalDist().inv_cdf(u))
        return min(self.high, max(self.low, value))


def _shares(percent_by_hour: dict[int, float]) -> tuple[float, ...]:
    total = sum(percent_by_hour.values())
    return tuple(percent_by_hour.get(h, 0.0) / total for h in range(24))


# ElaadNL January 2019, % of sessions by arrival hour (local time).
STREET_HOURS = _shares(
    {0: 0.2, 1: 0.1, 2: 0.0, 3: 0.0, 4: 0.1, 5: 1.1, 6: 3.7, 7: 10.5, 8: 7.0, 9: 4.8, 10: 7.1, 11: 7.5,
     12: 7.9, 13: 5.3, 14: 6.4, 15: 6.8, 16: 7.7, 17: 6.5, 18: 6.5, 19: 4.5, 20: 2.5, 21: 2.2, 22: 1.0,
     23: 0.4}
)  # fmt: skip
# ACN-Data site 0002, % of sessions by arrival hour (local); hours below 0.5 % set to 0.2.
WORKPLACE_HOURS = _shares(
    {0: 0.2, 1: 0.2, 2: 0.2, 3: 0.2, 4: 0.2, 5: 0.7, 6: 3.4, 7: 5.0, 8: 12.9, 9: 8.8, 10: 8.4, 11: 6.0,
     12: 5.7, 13: 7.4, 14: 7.8, 15: 5.3, 16: 5.5, 17: 3.9, 18: 5.6, 19: 5.9, 20: 3.8, 21: 1.8, 22: 0.7,
     23: 0.9}
)  # fmt: skip
# Assumption: a motorway/urban fast-charging hub, busy through the day with a late-afternoon peak.
HUB_HOURS = _shares(
    {0: 0.8, 1: 0.5, 2: 0.3, 3: 0.3, 4: 0.4, 5: 1.0, 6: 2.5, 7: 4.5, 8: 5.5, 9: 6.0, 10: 6.5, 11: 7.0,
     12: 7.5, 13: 7.0, 14: 6.8, 15: 7.0, 16: 7.5, 17: 7.8, 18: 7.0, 19: 5.5, 20: 4.0, 21: 3.0, 22: 2.0,
     23: 1.3}
)  # fmt: skip


@dataclass(frozen=True)
class SiteProfile:
    name: str
    current: str  # "AC" or "DC"
    hour_shares: tuple[float, ...]
    sessions_per_weekday: float  # per connector, before sessions are lost to a busy connector
    weekend_factor: float
    energy_kwh: LogNormal | None  # AC energy delivered; DC follows from battery and state of charge
    no_idle_share: float  # AC: share of sessions that end while the car still charges
    idle_h: LogNormal | None  # AC: connected-but-full time of the other sessions
    station_kw: tuple[tuple[float, float], ...]  # (kW per connector, weight)
    districts: tuple[tuple[str, float], ...]  # where such sites are, (district, weight)

    def sessions_per_day(self, weekend: bool) -> float:
        return self.sessions_per_weekday * (self.weekend_factor if weekend else 1.0)


# Idle time (h) after the car is full, (p50, p90): calibrated so that simulated connected times
# match the samples' (see docs/simulator.md for simulated vs. measured quantiles).
IDLE_STREET = (3.0, 12.0)
IDLE_WORKPLACE = (0.3, 2.5)

PROFILES: dict[str, SiteProfile] = {
    "street": SiteProfile(
        name="street",
        current="AC",
        hour_shares=STREET_HOURS,
        sessions_per_weekday=1.3,
        # ElaadNL: 27.3 sessions per weekday vs 24.8 per weekend day.
        weekend_factor=24.8 / 27.3,
        energy_kwh=LogNormal(p50=7.03, p90=26.8, low=0.3, high=75.0),
        # ElaadNL: half the sessions have no idle time; idle is half of all connected hours.
        no_idle_share=0.5,
        idle_h=LogNormal(p50=IDLE_STREET[0], p90=IDLE_STREET[1], low=0.05, high=30.0),
        station_kw=((11.0, 0.7), (22.0, 0.3)),
        districts=(("Centrum", 0.3), ("Noord", 0.2), ("Zuid", 0.2), ("West", 0.2), ("Oost", 0.1)),
    ),
    "workplace": SiteProfile(
        name="workplace",
        current="AC",
        hour_shares=WORKPLACE_HOURS,
        sessions_per_weekday=1.6,
        # ACN: 81 % of sessions on weekdays → per-day weekend rate = (0.19/2) / (0.81/5).
        weekend_factor=(0.19 / 2) / (0.81 / 5),
        energy_kwh=LogNormal(p50=6.82, p90=32.8, low=0.3, high=75.0),
        no_idle_share=0.4,
        idle_h=LogNormal(p50=IDLE_WORKPLACE[0], p90=IDLE_WORKPLACE[1], low=0.05, high=12.0),
        station_kw=((11.0, 0.5), (22.0, 0.5)),
        districts=(("Oost", 0.5), ("Haven", 0.4), ("Centrum", 0.1)),
    ),
    "hub": SiteProfile(
        name="hub",
        current="DC",
        hour_shares=HUB_HOURS,
        sessions_per_weekday=7.0,
        weekend_factor=0.9,
        energy_kwh=None,
        no_idle_share=0.0,
        idle_h=None,
        station_kw=((50.0, 0.2), (150.0, 0.6), (300.0, 0.2)),
        districts=(("Haven", 0.4), ("Noord", 0.3), ("Zuid", 0.3)),
    ),
}

# Cars' on-board AC chargers as (phases, amps, weight). Chosen to match ElaadNL's max power per
# session: p50 3.55 kW, p75 4.56 kW, p90 10.1 kW (most cars draw one phase at 16 A).
AC_CARS: tuple[tuple[int, int, float], ...] = ((1, 16, 0.72), (1, 32, 0.08), (3, 16, 0.15), (3, 32, 0.05))
# Assumption: DC charging power cars accept (kW, weight).
DC_CARS: tuple[tuple[float, float], ...] = ((50.0, 0.15), (100.0, 0.35), (150.0, 0.35), (250.0, 0.15))
# How energy turns into charging time (AC). Calibrated against ElaadNL's charging hours (p10 0.51,
# p25 1.17, p50 2.19, p75 3.50, p90 5.42; simulated street: 0.47, 1.27, 2.04, 3.16, 5.64):
# - energy and the car's power are drawn together, correlation AC_ENERGY_POWER_RHO (Gaussian
#   copula): cars that take a lot of energy tend to have three-phase on-board chargers;
# - the car draws full power for AC_HOLD_SHARE of the energy it wants, then tapers linearly to
#   AC_TAPER_END of full power (the battery's absorption phase, which real sessions spend long in);
# - a driver who leaves mid-charge wanted AC_LEAVE_DEMAND × the energy they got.
# Without the last two, charging ran at full power almost throughout and the street median was 1.45 h.
AC_ENERGY_POWER_RHO = 0.85
AC_HOLD_SHARE = (0.2, 0.6)
AC_TAPER_END = 0.1
AC_LEAVE_DEMAND = (1.0, 1.3)
NOMINAL_VOLTAGE = 230.0
# A car at a 16 A setting draws slightly less (ElaadNL's median max power is 3.55 kW, not 3.68).
AC_DRAW_FACTOR = 0.965

# Assumption: DC session shape (battery size, state of charge on arrival and at departure).
DC_BATTERY_KWH = (45.0, 100.0)
DC_SOC_START = (10.0, 50.0)
DC_SOC_TARGET = (65.0, 90.0)
DC_TAPER_SOC = (50.0, 75.0)
DC_LEAVES_EARLY = 0.3
# Who charges where: (regular, visitor from the population, one-time roaming token) shares.
USER_MIX = {
    "home": (1.0, 0.0, 0.0),
    "private": (0.95, 0.05, 0.0),
    "fleet": (0.95, 0.05, 0.0),
    "public": (0.94, 0.04, 0.02),
    "hub": (0.0, 0.15, 0.85),
}
DC_IDLE_MIN = LogNormal(p50=4.0, p90=15.0, low=0.5, high=45.0)

# Faults: (1.6 errorCode, vendorErrorCode, weight) and their duration.
FAULT_CODES: tuple[tuple[str, str, float], ...] = (
    ("GroundFailure", "RCD-TRIP", 0.3),
    ("ConnectorLockFailure", "LOCK-02", 0.2),
    ("HighTemperature", "TEMP-85", 0.1),
    ("PowerMeterFailure", "METER-COMM", 0.15),
    ("OtherError", "E-1042", 0.25),
)
FAULT_MINUTES = LogNormal(p50=45.0, p90=300.0, low=5.0, high=720.0)
# Assumption: maintenance windows (connector set Unavailable by the operator) of one to a few hours.
MAINTENANCE_MINUTES = LogNormal(p50=90.0, p90=300.0, low=20.0, high=600.0)
# Stop reasons a charger gives when its own fault ends the transaction (1.6 Reason, 2.0.1
# ReasonEnumType); the pipeline also recognises the session by the Faulted status that follows.
FAULT_STOP_REASONS = {
    "1.6": ("EmergencyStop", "PowerLoss", "Other"),
    "2.0.1": ("GroundFault", "OvercurrentFault", "PowerLoss", "Other"),
}
OFFLINE_MINUTES = LogNormal(p50=30.0, p90=240.0, low=2.0, high=720.0)
# Clocks run ahead by 2 minutes to 4 hours (log-uniform).
CLOCK_SKEW_S = (120.0, 4 * 3600.0)


def weighted(rng: random.Random, choices: Sequence[tuple[T, float]]) -> T:
    """One of `choices` by weight (the draw consumes exactly one random number)."""
    total = sum(w for _, w in choices)
    x = rng.random() * total
    for value, w in choices:
        x -= w
        if x < 0:
            return value
    return choices[-1][0]


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: the means here are small (arrivals per hour)."""
    if mean <= 0:
        return 0
    limit = math.exp(-mean)
    k, p = 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
