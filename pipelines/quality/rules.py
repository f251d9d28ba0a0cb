"""The quality rules: what each checks, at which unit, its threshold and where that threshold comes from.

The table is the single source of the rule ids used in `quality_issues`, in the overrides file and in
docs/pipeline.md. `quarantine.py` implements each rule in SQL over the private work tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    WITHHELD = "withheld"  # the record is left out of every dataset derived from it
    FLAGGED = "flagged"  # plausible but suspect: published, with the rule id in its quality flags
    OVERRIDDEN = "overridden"  # an operator's reviewed override: published as it is


class Unit(StrEnum):
    SESSION = "session"  # one row of work_sessions (a transaction)
    INTERVAL = "station_15min"  # one station's 15-minute interval of work_station_minutes


# Registry max_power_kw is a nameplate rating; supply voltage may run 10 % above nominal
# (EN 50160, §4.2.2: ±10 % of the nominal voltage), and power at a given current with it.
REGISTRY_POWER_MARGIN = 1.10
# No registry rating: the fastest chargers sold today (CCS "HPC", up to 400 kW; the same bound as the
# unit mix-up rule in pipelines/transforms/registers.py).
DEFAULT_CONNECTOR_MAX_KW = 400.0
# Whole-Wh registers and a sample-interval's rounding: energy within this of the bound is not suspect.
ENERGY_MARGIN_WH = 1000.0
# Rounded published times may touch; an overlap longer than the default rounding step is real.
OVERLAP_TOLERANCE_MINUTES = 15
# The listener's receipt clock is the reference; the clock-skew tolerance of the raw reader.
FUTURE_TOLERANCE_MINUTES = 5
# A charger whose clock fell back to its epoch (1970, or an RTC's 2000 default) reports times before
# OCPP 1.6 was published (2015-10-08): no real charging record can be that old. Comparing with the
# station's first connection instead withheld every legitimately late import or long offline replay.
CLOCK_RESET_BEFORE = "2015-10-08"


@dataclass(frozen=True)
class Rule:
    id: str
    units: tuple[Unit, ...]
    action: Action
    check: str
    threshold: str
    source: str


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "negative_energy",
            (Unit.SESSION, Unit.INTERVAL),
            Action.WITHHELD,
            "energy of a session, or of any minute of a station's 15-minute interval, below zero",
            "< 0 kWh",
            "physics: an import register only counts up",
        ),
        Rule(
            "power_above_connector_max",
            (Unit.SESSION, Unit.INTERVAL),
            Action.WITHHELD,
            "a session's highest power, or a station's power in any minute of an interval (limit × "
            "connectors), above the connector's plausible maximum",
            f"registry max_power_kw × {REGISTRY_POWER_MARGIN:g}; {DEFAULT_CONNECTOR_MAX_KW:g} kW without one",
            "the operator's registry (stations.csv) with the EN 50160 +10 % supply-voltage tolerance; "
            "400 kW: the top rating of CCS (IEC 62196-3, IEC 61851-23) chargers in wide use",
        ),
        Rule(
            "energy_above_power_time",
            (Unit.SESSION,),
            Action.WITHHELD,
            "a closed session's energy above what its connector can deliver while connected",
            f"connector maximum × (plug_out − plug_in) + {ENERGY_MARGIN_WH / 1000:g} kWh",
            "the connector maximum above; 1 kWh for whole-Wh registers and sample timing",
        ),
        Rule(
            "register_backwards",
            (Unit.SESSION,),
            Action.FLAGGED,
            "a session's energy register drops without the reset signature (a drop to less than half "
            "and to what could have been delivered since the previous sample)",
            "any drop below the running maximum that is not a reset",
            "register rules of docs/pipeline.md; energy uses the running maximum, so it is never "
            "overcounted: published, flagged",
        ),
        Rule(
            "overlapping_sessions",
            (Unit.SESSION,),
            Action.WITHHELD,
            "a session plugged in on a connector before the previous session there was unplugged "
            "(the later session is withheld)",
            f"overlap > {OVERLAP_TOLERANCE_MINUTES} min",
            "one connector holds one vehicle; the tolerance is the default rounding step of published "
            "times (status and transaction messages are stamped separately)",
        ),
        Rule(
            "timestamp_after_build",
            (Unit.SESSION, Unit.INTERVAL),
            Action.WITHHELD,
            "a time of the record later than the release's build time",
            f"> build time + {FUTURE_TOLERANCE_MINUTES} min",
            "nothing can have happened after it was processed; the tolerance is the raw reader's "
            "clock-skew setting (default 5 min)",
        ),
        Rule(
            "timestamp_ahead_of_receipt",
            (Unit.SESSION,),
            Action.FLAGGED,
            "a charger timestamp ahead of its receipt time, replaced by the receipt time (clock_corrected)",
            "> receipt time + clock_skew_minutes (default 5 min)",
            "raw contract (docs/pipeline.md, event time): the receipt time is a sound substitute, so "
            "the session is published, flagged",
        ),
        Rule(
            "timestamp_before_first_boot",
            (Unit.SESSION, Unit.INTERVAL),
            Action.WITHHELD,
            "a time of the record before any charger could have booted (a clock reset to its epoch)",
            f"< {CLOCK_RESET_BEFORE}",
            "OCPP 1.6 was published on 2015-10-08; records received late (imports, long offline "
            "replays) are legitimate, so the station's first connection is no bound",
        ),
        Rule(
            "duplicate_transaction_id",
            (Unit.SESSION,),
            Action.FLAGGED,
            "the same transaction id at two or more stations",
            "> 1 station per transaction id",
            "OCPP 1.6 §4.8: the Central System assigns transactionId (unique network-wide); OCPP "
            "2.0.1 ids are the station's own; sessions are keyed by station and id, so none is "
            "merged: published, flagged",
        ),
    )
}


def markdown_table() -> str:
    """The rules as the table in docs/pipeline.md."""
    lines = ["| rule | acts on | action | threshold | source |", "|---|---|---|---|---|"]
    for r in RULES.values():
        units = ", ".join(u.value for u in r.units)
        lines.append(f"| `{r.id}` | {units} | {r.action.value} | {r.threshold} | {r.source} |")
    return "\n".join(lines)
