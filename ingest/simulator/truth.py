"""Ground truth: what the fleet really did, as Parquet files a test or pipeline can compare with.

Every file is a pure function of the plan, written with fixed schemas and row order, so the same
seed and options give byte-identical files. `run_transaction_ids.parquet` is the exception: it holds
the 1.6 transaction ids the listener assigned during a run, which the plan cannot know.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.simulator.fleet import Charger, FleetPlan, Session
from ingest.simulator.timeline import offline_call_counts

TS = pa.timestamp("us", tz="UTC")
US = 1_000_000

CHARGERS = pa.schema(
    [
        ("charge_point_id", pa.string()),
        ("ocpp_version", pa.string()),
        ("site_profile", pa.string()),
        ("access", pa.string()),
        ("connectors", pa.int32()),
        ("current_type", pa.string()),
        ("max_power_kw", pa.float64()),
        ("vendor", pa.string()),
        ("model", pa.string()),
        ("serial_number", pa.string()),
        ("firmware_version", pa.string()),
        ("value_format", pa.string()),
        ("clock_skew_s", pa.int64()),
        ("initial_register_wh", pa.list_(pa.int64())),
        ("name", pa.string()),
        ("area", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
    ]
)
SESSIONS = pa.schema(
    [
        ("session_id", pa.string()),
        ("charge_point_id", pa.string()),
        ("connector_id", pa.int32()),
        ("evse_id", pa.int32()),
        ("ocpp_version", pa.string()),
        ("id_tag", pa.string()),
        ("id_token_type", pa.string()),
        ("user_id", pa.string()),
        ("plug_in", TS),
        ("charging_start", TS),
        ("charging_end", TS),
        ("transaction_stop", TS),
        ("plug_out", TS),
        ("energy_wh", pa.int64()),
        ("meter_start_wh", pa.int64()),
        ("meter_stop_wh", pa.int64()),
        ("max_power_w", pa.float64()),
        ("stop_reason", pa.string()),
        ("transaction_id", pa.string()),
        ("soc_start_percent", pa.float64()),
        ("soc_end_percent", pa.float64()),
        ("kind", pa.string()),
        ("outcome", pa.string()),
    ]
)
STATUS_INTERVALS = pa.schema(
    [
        ("charge_point_id", pa.string()),
        ("connector_id", pa.int32()),
        ("evse_id", pa.int32()),
        ("ocpp_version", pa.string()),
        ("state", pa.string()),
        ("status", pa.string()),
        ("error_code", pa.string()),
        ("vendor_error_code", pa.string()),
        ("start", TS),
        ("end", TS),
        ("session_id", pa.string()),
    ]
)
OFFLINE_PERIODS = pa.schema(
    [
        ("charge_point_id", pa.string()),
        ("start", TS),
        ("end", TS),
        ("duration_s", pa.int64()),
        ("queued_messages", pa.int64()),
    ]
)
IMPERFECTIONS = pa.schema(
    [
        ("charge_point_id", pa.string()),
        ("kind", pa.string()),
        ("at", TS),
        ("connector_id", pa.int32()),
        ("session_id", pa.string()),
        ("action", pa.string()),
        ("value", pa.float64()),
        ("detail", pa.string()),
    ]
)
PORT_OUTAGES = pa.schema(
    [
        ("charge_point_id", pa.string()),
        ("connector_id", pa.int32()),
        ("cause", pa.string()),
        ("start", TS),
        ("end", TS),
        ("minutes", pa.float64()),
        ("error_code", pa.string()),
        ("vendor_error_code", pa.string()),
        ("session_id", pa.string()),
    ]
)
SESSION_OUTCOMES_DAILY = pa.schema(
    [
        ("date", pa.date32()),
        ("charge_point_id", pa.string()),
        ("sessions", pa.int64()),
        ("successful", pa.int64()),
        ("failed_to_start", pa.int64()),
        ("ended_in_fault", pa.int64()),
        ("too_short", pa.int64()),
    ]
)
RUN_TRANSACTION_IDS = pa.schema(
    [
        ("session_id", pa.string()),
        ("charge_point_id", pa.string()),
        ("connector_id", pa.int32()),
        ("transaction_id", pa.string()),
        ("retry_transaction_id", pa.string()),
        ("id_tag_status", pa.string()),
    ]
)
TRUTH_FILES = (
    "chargers",
    "sessions",
    "status_intervals",
    "offline_periods",
    "imperfections",
    "port_outages",
    "session_outcomes_daily",
)


def _us(t: int | None) -> int | None:
    return None if t is None else t * US


def _write(rows: list[dict[str, object]], schema: pa.Schema, path: Path) -> None:
    columns = {name: [r[name] for r in rows] for name in schema.names}
    table = pa.table(
        {n: pa.array(columns[n], type=schema.field(n).type) for n in schema.names}, schema=schema
    )
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def write_truth(plan: FleetPlan, folder: Path) -> list[Path]:
    """The truth files (TRUTH_FILES); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "chargers": (chargers_rows(plan), CHARGERS),
        "sessions": (sessions_rows(plan), SESSIONS),
        "status_intervals": (status_rows(plan), STATUS_INTERVALS),
        "offline_periods": (offline_rows(plan), OFFLINE_PERIODS),
        "imperfections": (imperfection_rows(plan), IMPERFECTIONS),
        "port_outages": (outage_rows(plan), PORT_OUTAGES),
        "session_outcomes_daily": (outcome_daily_rows(plan), SESSION_OUTCOMES_DAILY),
    }
    paths = []
    for name in TRUTH_FILES:
        rows, schema = tables[name]
        path = folder / f"{name}.parquet"
        _write(rows, schema, path)
        paths.append(path)
    return paths


def write_run_transaction_ids(rows: Iterable[Mapping[str, object]], folder: Path) -> Path:
    path = folder / "run_transaction_ids.parquet"
    ordered = sorted(rows, key=lambda r: str(r["session_id"]))
    _write([dict(r) for r in ordered], RUN_TRANSACTION_IDS, path)
    return path


def chargers_rows(plan: FleetPlan) -> list[dict[str, object]]:
    return [
        {
            "charge_point_id": c.charge_point_id,
            "ocpp_version": c.ocpp_version,
            "site_profile": c.profile,
            "access": c.access,
            "connectors": c.connectors,
            "current_type": c.current,
            "max_power_kw": c.max_power_kw,
            "vendor": c.vendor,
            "model": c.model,
            "serial_number": c.serial_number,
            "firmware_version": c.firmware_version,
            "value_format": c.value_format,
            "clock_skew_s": c.clock_skew_s,
            "initial_register_wh": list(c.initial_register_wh),
            "name": c.name,
            "area": c.area,
            "latitude": c.latitude,
            "longitude": c.longitude,
        }
        for c in plan.chargers
    ]


def sessions_rows(plan: FleetPlan) -> list[dict[str, object]]:
    out = []
    outcomes = session_outcomes(plan)
    for s in plan.sessions:
        c = plan.chargers[s.charger_index]
        soc_end = s.soc_at(s.transaction_stop)
        charged = s.kind not in NEVER_CHARGED
        out.append(
            {
                "session_id": s.session_id,
                "charge_point_id": c.charge_point_id,
                "connector_id": s.connector_id,
                "evse_id": s.connector_id if c.ocpp_version == "2.0.1" else None,
                "ocpp_version": c.ocpp_version,
                "id_tag": s.user.id_tag,
                "id_token_type": s.user.token_type,
                "user_id": s.user.user_id,
                "plug_in": _us(s.plug_in),
                "charging_start": _us(s.charging_start) if charged else None,
                "charging_end": _us(s.charging_end) if charged else None,
                "transaction_stop": _us(s.transaction_stop),
                "plug_out": _us(s.plug_out),
                "energy_wh": s.energy_wh,
                "meter_start_wh": s.meter_start_wh,
                "meter_stop_wh": s.meter_stop_wh,
                "max_power_w": round(s.curve.p_max_w, 1),
                "stop_reason": s.stop_reason,
                "transaction_id": s.transaction_id,
                "soc_start_percent": None if s.soc_start is None else round(s.soc_start, 2),
                "soc_end_percent": None if soc_end is None else round(soc_end, 2),
                "kind": s.kind,
                "outcome": outcomes[s.session_id],
            }
        )
    return out


def _session_states(s: Session) -> list[tuple[str, int, int]]:
    if s.kind == "failed_start":  # the car never charged: Preparing until the driver gives up
        states = [("Preparing", s.plug_in, s.transaction_stop), ("Finishing", s.transaction_stop, s.plug_out)]
        return [(name, a, b) for name, a, b in states if b > a]
    states = [
        ("Preparing", s.plug_in, s.charging_start),
        ("Charging", s.charging_start, s.charging_end),
        ("SuspendedEV", s.charging_end, s.transaction_stop),
        ("Finishing", s.transaction_stop, s.plug_out),
    ]
    return [(name, a, b) for name, a, b in states if b > a]


def status_rows(plan: FleetPlan) -> list[dict[str, object]]:
    """Every connector's state from the window's start to its end, without gaps."""
    out: list[dict[str, object]] = []
    for c in plan.chargers:
        sessions, faults, _, _ = plan.of(c.index)
        for connector in range(1, c.connectors + 1):
            episodes: list[tuple[int, int, str, str | None, str | None, str | None]] = []
            for s in sessions:
                if s.connector_id == connector:
                    episodes += [
                        (a, b, state, None, None, s.session_id) for state, a, b in _session_states(s)
                    ]
            for f in faults:
                if f.connector_id == connector:
                    episodes.append((f.start, f.end, f.status, f.error_code, f.vendor_error_code, None))
            episodes.sort()
            cursor = plan.window.start
            for a, b, state, code, vendor_code, sid in episodes:
                if a > cursor:
                    out.append(_interval(c, connector, "Available", cursor, a))
                out.append(_interval(c, connector, state, a, b, code, vendor_code, sid))
                cursor = b
            out.append(_interval(c, connector, "Available", cursor, plan.window.end))
    return out


def _interval(
    c: Charger,
    connector: int,
    state: str,
    start: int,
    end: int,
    error_code: str | None = None,
    vendor_code: str | None = None,
    session_id: str | None = None,
) -> dict[str, object]:
    v201 = c.ocpp_version == "2.0.1"
    status = "Occupied" if v201 and state not in ("Available", "Faulted", "Unavailable") else state
    return {
        "charge_point_id": c.charge_point_id,
        "connector_id": connector,
        "evse_id": connector if v201 else None,
        "ocpp_version": c.ocpp_version,
        "state": state,
        "status": status,
        "error_code": None if v201 else (error_code or "NoError"),
        "vendor_error_code": None if v201 else vendor_code,
        "start": _us(start),
        "end": _us(end),
        "session_id": session_id,
    }


def offline_rows(plan: FleetPlan) -> list[dict[str, object]]:
    out = []
    for c in plan.chargers:
        periods = plan.of(c.index)[2]
        for p, queued in zip(periods, offline_call_counts(plan, c), strict=True):
            out.append(
                {
                    "charge_point_id": c.charge_point_id,
                    "start": _us(p.start),
                    "end": _us(p.end),
                    "duration_s": p.end - p.start,
                    "queued_messages": queued,
                }
            )
    return out


def imperfection_rows(plan: FleetPlan) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []

    def add(c: Charger, kind: str, detail: str, **kw: object) -> None:
        row: dict[str, object] = {
            "at": None,
            "connector_id": None,
            "session_id": None,
            "action": None,
            "value": None,
        }
        row.update(kw)
        out.append({"charge_point_id": c.charge_point_id, "kind": kind, "detail": detail, **row})

    for c in plan.chargers:
        sessions, _, offline, reboots = plan.of(c.index)
        if c.clock_skew_s:
            add(
                c,
                "clock_skew",
                "every timestamp the charger sends is ahead by value seconds",
                value=float(c.clock_skew_s),
            )
        if c.value_format == "json_numbers":
            add(c, "json_numbers", "meter values are JSON numbers, not strings")
        elif c.value_format == "kwh":
            add(c, "kwh_units", "energy in kWh and power in kW (three decimals)")
        elif c.value_format == "multiplier":
            add(c, "multiplier", "energy and power scaled by unitOfMeasure.multiplier 3", value=3.0)
        for p, queued in zip(offline, offline_call_counts(plan, c), strict=True):
            add(
                c,
                "offline",
                f"{queued} messages queued and replayed on reconnect",
                at=_us(p.start),
                value=float(p.end - p.start),
            )
        for r in reboots:
            for connector, before in enumerate(r.registers_before, start=1):
                add(
                    c,
                    "register_reset",
                    "reboot: register reset to 0 (value: register before, Wh)",
                    at=_us(r.at),
                    connector_id=connector,
                    value=float(before),
                )
        for s in sessions:
            v16 = c.ocpp_version == "1.6"
            if s.retry_start:
                at = s.charging_start if v16 else s.plug_in
                action = "StartTransaction" if v16 else "TransactionEvent"
                add(
                    c,
                    "retried_message",
                    "sent twice: same content, new message id, new socket",
                    at=_us(at),
                    connector_id=s.connector_id,
                    session_id=s.session_id,
                    action=action,
                )
            if s.retry_stop:
                action = "StopTransaction" if v16 else "TransactionEvent"
                add(
                    c,
                    "retried_message",
                    "sent twice: same content, new message id, new socket",
                    at=_us(s.transaction_stop),
                    connector_id=s.connector_id,
                    session_id=s.session_id,
                    action=action,
                )
    return out


# --- Outages and session outcomes, by the rules of pipelines/reliability (restated, not imported:
# the truth must not follow a change of the pipeline by itself). docs/reliability.md states them.
NEVER_CHARGED = ("failed_start", "zero_energy")
NO_POWER_MAX_WH = 1000.0  # outages.py: a session below 1 kWh ...
DC_MIN_KW, AC_MIN_KW, RAPID_KW = 150.0, 6.0, 50.0  # ... that never reached the port's minimum power
SUCCESS_MIN_WH, SUCCESS_MIN_CHARGING_S = 1000, 300  # outcomes.py
FAULT_WINDOW_S = 120  # outcomes.py: a Faulted port up to 2 minutes after the plug-out ended the session
FAULT_STOP_REASONS = frozenset(
    {"EmergencyStop", "PowerLoss", "GroundFault", "OvercurrentFault", "PowerQuality", "Reboot", "HardReset"}
)


def required_power_w(max_power_kw: float) -> float:
    """23 CFR 680.106(d) via 680.116(b)(1): 150 kW per DC port, 6 kW per AC port, or less if rated less."""
    return 1000 * min(max_power_kw, DC_MIN_KW if max_power_kw >= RAPID_KW else AC_MIN_KW)


def session_peak_w(s: Session) -> float:
    """The highest power the session drew (0 when the car never charged)."""
    return 0.0 if s.kind in NEVER_CHARGED or s.energy_wh <= 0 else s.curve.p_max_w


def _cut_out(a: int, b: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(a, b)]
    for x, y in holes:
        pieces = [p for lo, hi in pieces for p in ((lo, min(hi, x)), (max(lo, y), hi)) if p[0] < p[1]]
    return pieces


def outages(plan: FleetPlan) -> list[dict[str, object]]:
    """Every outage of every public port, in port/time order, in epoch seconds.

    - faulted: the connector Faulted (a fault on its own or one that ended a session);
    - unavailable: a maintenance window;
    - offline: the charger's offline periods, on each of its connectors; they take precedence (the
      pipeline reads a port as offline whatever its last status said), so the other causes are cut
      where the charger was offline;
    - no_power: a session that delivered < 1 kWh and never reached the port's required power, for
      its time from plug-in to plug-out (outside offline time).
    """
    out: list[dict[str, object]] = []
    for c in plan.chargers:
        if c.access != "public":
            continue
        sessions, faults, offline, _ = plan.of(c.index)
        holes = [(o.start, o.end) for o in offline]
        for connector in range(1, c.connectors + 1):
            rows: list[tuple[int, int, str, str | None, str | None, str | None]] = []
            for f in faults:
                if f.connector_id == connector:
                    cause = "faulted" if f.status == "Faulted" else "unavailable"
                    code = f.error_code if c.ocpp_version == "1.6" and cause == "faulted" else None
                    vendor = f.vendor_error_code if code else None
                    rows += [
                        (a, b, cause, code, vendor, f.session_id) for a, b in _cut_out(f.start, f.end, holes)
                    ]
            need = required_power_w(c.max_power_kw)
            for s in sessions:
                if s.connector_id == connector and s.energy_wh < NO_POWER_MAX_WH and session_peak_w(s) < need:
                    rows += [(a, b, "no_power", None, None, s.session_id)
                             for a, b in _cut_out(s.plug_in, s.plug_out, holes)]  # fmt: skip
            rows += [(o.start, o.end, "offline", None, None, None) for o in offline]
            for a, b, cause, code, vendor, sid in sorted(rows):
                out.append({
                    "charge_point_id": c.charge_point_id, "connector_id": connector, "cause": cause,
                    "start": a, "end": b, "error_code": code, "vendor_error_code": vendor, "session_id": sid,
                })  # fmt: skip
    return out


def outage_rows(plan: FleetPlan) -> list[dict[str, object]]:
    return [
        {**o, "start": _us(o["start"]), "end": _us(o["end"]), "minutes": (o["end"] - o["start"]) / 60}  # type: ignore[operator]
        for o in outages(plan)
    ]


def session_outcomes(plan: FleetPlan) -> dict[str, str]:
    """Each session's outcome by the rule of pipelines/reliability/outcomes.py, first match wins:
    1. failed_to_start: no energy and no charging period;
    2. ended_in_fault: a charger-failure stop reason, or the port went Faulted between the plug-in
       and 2 minutes after the plug-out;
    3. successful: ≥ 1 kWh, or ≥ 5 minutes of charging;
    4. too_short: the rest."""
    fault_starts: dict[tuple[str, int], list[int]] = {}
    for o in outages(plan):
        if o["cause"] == "faulted":
            fault_starts.setdefault((str(o["charge_point_id"]), int(o["connector_id"])), []).append(
                int(o["start"])
            )  # type: ignore[call-overload]
    out: dict[str, str] = {}
    for s in plan.sessions:
        c = plan.chargers[s.charger_index]
        starts = fault_starts.get((c.charge_point_id, s.connector_id), [])
        charging_s = 0 if s.kind in NEVER_CHARGED else s.charging_end - s.charging_start
        if s.energy_wh <= 0 and s.kind in NEVER_CHARGED:
            out[s.session_id] = "failed_to_start"
        elif s.stop_reason in FAULT_STOP_REASONS or any(
            s.plug_in <= t <= s.plug_out + FAULT_WINDOW_S for t in starts
        ):
            out[s.session_id] = "ended_in_fault"
        elif s.energy_wh >= SUCCESS_MIN_WH or charging_s >= SUCCESS_MIN_CHARGING_S:
            out[s.session_id] = "successful"
        else:
            out[s.session_id] = "too_short"
    return out


def outcome_daily_rows(plan: FleetPlan) -> list[dict[str, object]]:
    """Per public station and local day of plug-in: sessions and how many had each outcome."""
    outcomes = session_outcomes(plan)
    counts: dict[tuple[date, str], Counter[str]] = {}
    for s in plan.sessions:
        c = plan.chargers[s.charger_index]
        if c.access != "public":
            continue
        day = datetime.fromtimestamp(s.plug_in, plan.window.tz).date()
        counts.setdefault((day, c.charge_point_id), Counter())[outcomes[s.session_id]] += 1
    return [
        {
            "date": day,
            "charge_point_id": cp,
            "sessions": sum(n.values()),
            "successful": n["successful"],
            "failed_to_start": n["failed_to_start"],
            "ended_in_fault": n["ended_in_fault"],
            "too_short": n["too_short"],
        }
        for (day, cp), n in sorted(counts.items())
    ]
