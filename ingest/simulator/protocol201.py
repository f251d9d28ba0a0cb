"""OCPP 2.0.1 payloads a charging station sends.

Each EVSE has one connector (connectorId 1); the simulator's "connector n" is EVSE n. Values are
JSON numbers in Wh/W, in kWh/kW for the `kwh` model, or scaled by unitOfMeasure.multiplier 3 for the
`multiplier` model (value × 10³ = Wh).
"""

from __future__ import annotations

from ingest.simulator.sample import Payload, Sample, iso, kilo

PHASES = ("L1", "L2", "L3")


def boot(vendor: str, model: str, serial: str, firmware: str, reason: str = "PowerUp") -> Payload:
    return {
        "reason": reason,
        "chargingStation": {
            "model": model,
            "vendorName": vendor,
            "serialNumber": serial,
            "firmwareVersion": firmware,
        },
    }


def status(evse: int, state: str, t: int) -> Payload:
    return {"timestamp": iso(t), "connectorStatus": state, "evseId": evse, "connectorId": 1}


def transaction_event(
    event_type: str,
    t: int,
    trigger: str,
    seq_no: int,
    transaction_id: str,
    *,
    charging_state: str | None = None,
    stopped_reason: str | None = None,
    id_token: tuple[str, str] | None = None,
    evse: int | None = None,
    meter_value: Payload | None = None,
    offline: bool = False,
) -> Payload:
    info: Payload = {"transactionId": transaction_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    payload: Payload = {
        "eventType": event_type,
        "timestamp": iso(t),
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
    }
    if offline:
        payload["offline"] = True
    if id_token is not None:
        payload["idToken"] = {"idToken": id_token[0], "type": id_token[1]}
    if evse is not None:
        payload["evse"] = {"id": evse, "connectorId": 1}
    if meter_value is not None:
        payload["meterValue"] = [meter_value]
    return payload


def meter_value(t: int, sampled: list[Payload]) -> Payload:
    return {"timestamp": iso(t), "sampledValue": sampled}


def _scaled(value: float, unit: str, fmt: str) -> tuple[float, Payload]:
    """Energy/power value and unitOfMeasure for the charger's model."""
    if fmt == "kwh":
        return kilo(value), {"unit": "k" + unit}
    if fmt == "multiplier":
        return kilo(value), {"unit": unit, "multiplier": 3}
    return round(value), {"unit": unit}


def energy(register_wh: int, fmt: str, context: str) -> Payload:
    value, unit = _scaled(register_wh, "Wh", fmt)
    return {
        "value": value,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unitOfMeasure": unit,
    }


def sampled_values(s: Sample, fmt: str) -> list[Payload]:
    ctx = "Sample.Periodic"
    out = [energy(s.energy_wh, fmt, ctx)]
    power, unit = _scaled(s.power_w, "W", fmt)
    out.append(_sv(power, ctx, "Power.Active.Import", None, unit))
    if s.dc:
        out.append(_sv(round(s.currents_a[0], 1), ctx, "Current.Import", None, {"unit": "A"}))
        out.append(_sv(round(s.voltages_v[0], 1), ctx, "Voltage", None, {"unit": "V"}))
    else:
        for phase, amps in zip(PHASES, s.currents_a, strict=True):
            out.append(_sv(round(amps, 1), ctx, "Current.Import", phase, {"unit": "A"}))
        for phase, volts in zip(PHASES, s.voltages_v, strict=True):
            out.append(_sv(round(volts, 1), ctx, "Voltage", f"{phase}-N", {"unit": "V"}))
    if s.soc_percent is not None:
        soc = _sv(round(s.soc_percent), ctx, "SoC", None, {"unit": "Percent"})
        soc["location"] = "EV"
        out.append(soc)
    return out


def _sv(value: float, context: str, measurand: str, phase: str | None, unit: Payload) -> Payload:
    sv: Payload = {"value": value, "context": context, "measurand": measurand}
    if phase is not None:
        sv["phase"] = phase
    sv["location"] = "Outlet"
    sv["unitOfMeasure"] = unit
    return sv
