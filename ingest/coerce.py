"""Tolerant reading of JSON values from charger payloads: the wrong type gives None, never an error.

Shared by the answers (on the ack path) and the row derivation (at roll time), so both read a payload
the same way.
"""

from __future__ import annotations

from typing import Any

import orjson


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**31) <= value < 2**31 else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
