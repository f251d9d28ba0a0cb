"""OCPP 1.6-J payloads a charge point sends.

Values are strings as the 1.6 schema demands, unless the charger's model sends JSON numbers or
kWh/kW (value formats `json_numbers` and `kwh`, see fleet.MODELS): both are imperfections real
chargers have. meterStart/meterStop are integers in Wh whatever the model.
"""

from __future__ import annotations

from ingest.simulator.sample import Payload, Sample, iso, kilo

PHASES = ("L1", "L2", "L3")


def boot(vendor: str, model: str, serial: str, firmware: str) -> Payload:
    return {
        "chargePointVendor": vendor,
        "chargePointModel": model,
        "chargePointSerialNumber": serial,
        "firmwareVersion": firmware,
        "meterType": f"{model} MID meter"[:25],
        "meterSerialNumber": f"M-{serial}",
    }


def status(
    connector: int, state: str, t: int, error_code: str = "NoError", vendor_code: str | None = None
) -> Payload:
    payload: Payload = {
        "connectorId": connector,
        "errorCode": error_code,
        "status": state,
        "timestamp": iso(t),
    }
    if vendor_code is not None:
        payload["vendorErrorCode"] = vendor_code
        payload["vendorId"] = "com.example.sim"
    return payload


def start_transaction(connector: int, id_tag: str, meter_start: int, t: int) -> Payload:
    return {"connectorId": connector, "idTag": id_tag, "meterStart": meter_start, "timestamp": iso(t)}


def stop_transaction(
    meter_stop: int, t: int, reason: str, id_tag: str | None, begin: Payload, end: Payload
) -> Payload:
    """The driver adds the transactionId the listener gave at the start."""
    payload: Payload = {"meterStop": meter_stop, "timestamp": iso(t), "reason": reason}
    if id_tag is not None:
        payload["idTag"] = id_tag
    payload["transactionData"] = [begin, end]
    return payload


def meter_values(connector: int, meter_value: Payload) -> Payload:
    """The driver adds the transactionId."""
    return {"connectorId": connector, "meterValue": [meter_value]}


def meter_value(t: int, sampled: list[Payload]) -> Payload:
    return {"timestamp": iso(t), "sampledValue": sampled}


def _value(x: float, fmt: str, decimals: int) -> object:
    if fmt == "json_numbers":
        return round(x) if decimals == 0 else round(x, decimals)
    return f"{x:.{decimals}f}"


def energy(register_wh: int, fmt: str, context: str) -> Payload:
    if fmt == "kwh":
        value: object = f"{register_wh / 1000:.3f}"
        unit = "kWh"
    else:
        value, unit = _value(register_wh, fmt, 0), "Wh"
    return {
        "value": value,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "location": "Outlet",
        "unit": unit,
    }


def sampled_values(s: Sample, fmt: str) -> list[Payload]:
    """A full periodic sample: register, power, current and voltage per phase, SoC on DC."""
    ctx = "Sample.Periodic"
    out = [energy(s.energy_wh, fmt, ctx)]
    if fmt == "kwh":
        power: Payload = {"value": f"{kilo(s.power_w):.3f}", "unit": "kW"}
    else:
        power = {"value": _value(s.power_w, fmt, 0), "unit": "W"}
    out.append({**power, "context": ctx, "measurand": "Power.Active.Import", "location": "Outlet"})
    if s.dc:
        out.append(_sv(_value(s.currents_a[0], fmt, 1), ctx, "Current.Import", None, "A"))
        out.append(_sv(_value(s.voltages_v[0], fmt, 1), ctx, "Voltage", None, "V"))
    else:
        for phase, amps in zip(PHASES, s.currents_a, strict=True):
            out.append(_sv(_value(amps, fmt, 1), ctx, "Current.Import", phase, "A"))
        for phase, volts in zip(PHASES, s.voltages_v, strict=True):
            out.append(_sv(_value(volts, fmt, 1), ctx, "Voltage", f"{phase}-N", "V"))
    if s.soc_percent is not None:
        soc = _sv(_value(s.soc_percent, fmt, 0), ctx, "SoC", None, "Percent")
        soc["location"] = "EV"
        out.append(soc)
    return out


def _sv(value: object, context: str, measurand: str, phase: str | None, unit: str) -> Payload:
    sv: Payload = {"value": value, "context": context, "measurand": measurand}
    if phase is not None:
        sv["phase"] = phase
    sv["location"] = "Outlet"
    sv["unit"] = unit
    return sv
