"""The simulated fleet's sessions against measured public samples (no network: the plan alone).

Reference figures: /work/shared/reference/charging-statistics.md, computed from
- ElaadNL open transactions, January 2019 (public street charging, Netherlands; copy in
  github.com/J27avier/EvCharge, data/df_elaad_preproc_jan.csv): charging duration p50 2.19 h;
- Caltech ACN-Data site 0002, May–September 2021 (workplace; copy in
  github.com/y1072302536/Electric-vehicle-charging-data, acndata_sessions.json): energy p50 6.82 kWh.
Every session counts, failed starts and zero-energy visits included, as they are in those samples.
"""

from __future__ import annotations

import statistics

from ingest.simulator import SimulationOptions, plan_fleet
from ingest.simulator.options import parse_profiles, parse_start, zone

ELAADNL_STREET_CHARGING_H_P50 = 2.19
ACN_WORKPLACE_ENERGY_KWH_P50 = 6.82
FACTOR = 1.2


def _sessions(profile: str) -> list:
    options = SimulationOptions(
        chargers=150, days=14, seed=21, profiles=parse_profiles(f"{profile}=1"),
        start=parse_start("2026-10-05", zone("Europe/Amsterdam")),
    )  # fmt: skip
    plan = plan_fleet(options, now=parse_start("2026-12-01", zone("Europe/Amsterdam")).timestamp())
    return list(plan.sessions)


def _within(measured: float, reference: float) -> bool:
    return reference / FACTOR <= measured <= reference * FACTOR


def test_street_charging_duration_median_is_within_a_fifth_of_elaadnl() -> None:
    sessions = _sessions("street")
    assert len(sessions) > 1000
    hours = [0.0 if s.kind in ("failed_start", "zero_energy") else (s.charging_end - s.charging_start) / 3600
             for s in sessions]  # fmt: skip
    median = statistics.median(hours)
    assert _within(median, ELAADNL_STREET_CHARGING_H_P50), median


def test_workplace_energy_median_is_within_a_fifth_of_acn() -> None:
    sessions = _sessions("workplace")
    assert len(sessions) > 1000
    median = statistics.median(s.energy_wh / 1000 for s in sessions)
    assert _within(median, ACN_WORKPLACE_ENERGY_KWH_P50), median
