"""Lenient reading of one sampledValue into a `meter_values` row.

Every coercion leaves a flag in `quality` (the list is in docs/leniency.md). `value` is converted
to the measurand's canonical unit (Wh, W, A, V, ...) so that downstream sums never mix kWh and Wh;
`value_raw`, `unit_raw` and `multiplier` keep what was sent.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

# OCPP 1.6 §7.31 / 2.0.1 SampledValueType defaults.
DEFAULT_MEASURAND = "Energy.Active.Import.Register"
DEFAULT_CONTEXT = "Sample.Periodic"
DEFAULT_LOCATION = "Outlet"
DEFAULT_FORMAT = "Raw"

MEASURANDS = frozenset(
    {
        "Current.Export", "Current.Import", "Current.Offered",
        "Energy.Active.Export.Register", "Energy.Active.Import.Register",
        "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
        "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
        "Energy.Active.Net", "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
        "Energy.Reactive.Net", "Energy.Apparent.Net", "Energy.Apparent.Import", "Energy.Apparent.Export",
        "Frequency", "Power.Active.Export", "Power.Active.Import", "Power.Factor", "Power.Offered",
        "Power.Reactive.Export", "Power.Reactive.Import", "RPM", "SoC", "Temperature", "Voltage",
    }
)  # fmt: skip
CONTEXTS = frozenset(
    {
        "Interruption.Begin", "Interruption.End", "Other", "Sample.Clock", "Sample.Periodic",
        "Transaction.Begin", "Transaction.End", "Trigger",
    }
)  # fmt: skip

# Canonical unit per lower-cased unit as sent, with the factor into it. "k" prefixes are scaled.
UNITS: dict[str, tuple[str, float]] = {
    "wh": ("Wh", 1.0), "kwh": ("Wh", 1000.0), "w": ("W", 1.0), "kw": ("W", 1000.0),
    "varh": ("varh", 1.0), "kvarh": ("varh", 1000.0), "var": ("var", 1.0), "kvar": ("var", 1000.0),
    "vah": ("VAh", 1.0), "kvah": ("VAh", 1000.0), "va": ("VA", 1.0), "kva": ("VA", 1000.0),
    "a": ("A", 1.0), "v": ("V", 1.0), "celsius": ("Celsius", 1.0), "fahrenheit": ("Fahrenheit", 1.0),
    "k": ("K", 1.0), "percent": ("Percent", 1.0), "hz": ("Hz", 1.0), "asu": ("ASU", 1.0),
    "b": ("B", 1.0), "db": ("dB", 1.0), "dbm": ("dBm", 1.0), "deg": ("Deg", 1.0), "lx": ("lx", 1.0),
    "m": ("m", 1.0), "ms2": ("ms2", 1.0), "n": ("N", 1.0), "ohm": ("ohm", 1.0), "kpa": ("kPa", 1.0),
    "rh": ("RH", 1.0), "rpm": ("RPM", 1.0), "s": ("s", 1.0),
}  # fmt: skip
# The unit a measurand is in when none is sent (OCPP 1.6 §7.45: energy in Wh, ...).
DEFAULT_UNIT = {
    "Energy": "Wh", "Power.Active": "W", "Power.Offered": "W", "Power.Reactive": "var", "Current": "A",
    "Voltage": "V", "SoC": "Percent", "Temperature": "Celsius", "Frequency": "Hz", "Power.Factor": "",
    "RPM": "RPM",
}  # fmt: skip


def _default_unit(measurand: str) -> str:
    for prefix, unit in DEFAULT_UNIT.items():
        if measurand.startswith(prefix):
            return "varh" if measurand.startswith("Energy.Reactive") else unit
    return ""


def _parse_number(raw: str, flags: list[str]) -> float | None:
    text = raw.strip()
    if not text:
        flags.append("value_empty")
        return None
    try:
        return float(text)
    except ValueError:
        pass
    if text.count(",") == 1 and "." not in text:
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            pass
        else:
            flags.append("value_decimal_comma")
            return value
    flags.append("value_unparsable")
    return None


@lru_cache(maxsize=4096)
def _described(
    version: str,
    measurand: Any,
    context: Any,
    location: Any,
    fmt: Any,
    phase: Any,
    unit_raw: Any,
    multiplier: Any,
    signed: bool,
) -> tuple[dict[str, Any], float, list[str]]:
    """Everything about a sampled value except its value: the same few combinations repeat millions
    of times, so this is computed once per combination (the roll into Parquet is CPU-bound)."""
    flags: list[str] = []
    measurand = measurand or DEFAULT_MEASURAND
    if not isinstance(measurand, str):
        measurand = str(measurand)
    if measurand not in MEASURANDS:
        flags.append("measurand_nonstandard")
    context = context or DEFAULT_CONTEXT
    if context not in CONTEXTS:
        flags.append("context_nonstandard")
    location = location or DEFAULT_LOCATION
    fmt = fmt or DEFAULT_FORMAT
    if signed:
        flags.append("signed_meter_value")
    if fmt == "SignedData":
        # The value is a signed blob, not a number; it is kept verbatim in value_raw.
        flags.append("signed_data")
    if not isinstance(multiplier, int) or isinstance(multiplier, bool) or not -30 <= multiplier <= 30:
        if multiplier is not None:
            flags.append("multiplier_invalid")
        multiplier = None
    if unit_raw is None:
        unit, factor = _default_unit(measurand), 1.0
    else:
        known = UNITS.get(str(unit_raw).lower())
        if known is None:
            flags.append("unit_nonstandard")
            unit, factor = str(unit_raw), 1.0
        else:
            unit, factor = known
            if factor != 1.0:
                flags.append("unit_scaled")
            elif str(unit_raw) != unit:
                flags.append("unit_case")
    if multiplier:
        factor *= 10.0**multiplier
    columns = {
        "measurand": measurand,
        "phase": phase if isinstance(phase, str) else None,
        "location": location if isinstance(location, str) else str(location),
        "context": context if isinstance(context, str) else str(context),
        "format": fmt if isinstance(fmt, str) else str(fmt),
        "unit": unit,
        "unit_raw": None if unit_raw is None else str(unit_raw),
        "multiplier": multiplier,
    }
    return columns, factor, flags


def read_sampled_value(sv: Any, version: str) -> dict[str, Any]:
    """Columns of one meter_values row (without the context columns)."""
    flags: list[str] = []
    if not isinstance(sv, dict):
        flags.append("sampled_value_not_object")
        sv = {"value": sv}
    if version == "2.0.1" or "unitOfMeasure" in sv:
        uom = sv.get("unitOfMeasure")
        uom = uom if isinstance(uom, dict) else {}
        unit_raw, multiplier = uom.get("unit"), uom.get("multiplier")
    else:
        unit_raw, multiplier = sv.get("unit"), None
    described = (
        version, sv.get("measurand"), sv.get("context"), sv.get("location"), sv.get("format"),
        sv.get("phase"), unit_raw, multiplier, "signedMeterValue" in sv,
    )  # fmt: skip
    try:
        columns, factor, static_flags = _described(*described)
    except TypeError:  # an unhashable field (a list where a string belongs): describe it uncached
        columns, factor, static_flags = _described.__wrapped__(*described)

    # 1.6 sends values as strings, 2.0.1 as JSON numbers; each version's other form is tolerated.
    value = sv.get("value")
    if value is None:
        flags.append("value_missing")
        value_raw = ""
    elif isinstance(value, str):
        value_raw = value
        if version == "2.0.1":
            flags.append("value_string")
    else:
        if version == "1.6":
            flags.append("value_not_string")
        value_raw = orjson.dumps(value).decode()

    number: float | None
    if columns["format"] == "SignedData":
        number = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        number = _parse_number(value_raw, flags)
    if number is not None and factor != 1.0:
        number *= factor
    return {**columns, "value": number, "value_raw": value_raw, "quality": flags + static_flags}
