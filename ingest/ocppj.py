"""OCPP-J framing: reading frames leniently and writing CallResult / CallError frames.

OCPP-J (OCPP 1.6 JSON spec §4, OCPP 2.0.1 part 4 §4) frames are JSON arrays: CALL
`[2, id, action, payload]`, CALLRESULT `[3, id, payload]`, CALLERROR `[4, id, code, description, details]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_MESSAGE_ID_LENGTH = 36  # both specifications: "maximum of 36 characters"

# Error codes differ by version: 1.6 spells "FormationViolation" and "OccurenceConstraintViolation"
# (sic), 2.0.1 corrected them to "FormatViolation" and "OccurrenceConstraintViolation".
FORMAT_VIOLATION = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}
OCCURRENCE_VIOLATION = {"1.6": "OccurenceConstraintViolation", "2.0.1": "OccurrenceConstraintViolation"}

# A CALL's message id can often be read from a frame too broken (or too large) to parse, and the
# charger needs it to match our CallError to its request.
_ID_PREFIX = re.compile(r'^\s*\[\s*[234]\s*,\s*"((?:[^"\\]|\\.){1,128})"(?:\s*,\s*"([A-Za-z0-9]{1,64})")?')


@dataclass(frozen=True, slots=True)
class Frame:
    """What could be read of one inbound frame; `problem` says why it is not a usable CALL."""

    message_type: int | None
    message_id: str | None
    action: str | None
    payload: Any
    problem: str | None = None  # quarantine reason: invalid_json, not_ocpp_j
    detail: str | None = None


def peek_ids(text: str) -> tuple[str | None, str | None]:
    """Message id and action from the start of a frame that cannot be parsed whole."""
    match = _ID_PREFIX.match(text[:512])
    if not match:
        return None, None
    return match.group(1), match.group(2)


def read_frame(text: str) -> Frame:
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        mid, action = peek_ids(text)
        return Frame(None, mid, action, None, "invalid_json", str(exc)[:200])
    if not isinstance(msg, list) or not msg or msg[0] not in (CALL, CALLRESULT, CALLERROR):
        return Frame(None, None, None, None, "not_ocpp_j", "not an array starting with 2, 3 or 4")
    kind = msg[0]
    mid = msg[1] if len(msg) > 1 else None
    if isinstance(mid, int | float) and not isinstance(mid, bool):
        mid = orjson.dumps(mid).decode()  # tolerated: a numeric id is answered as a string
    if not isinstance(mid, str):
        return Frame(kind, None, None, None, "not_ocpp_j", "message id is missing or not a string")
    if kind == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            action = msg[2] if len(msg) > 2 and isinstance(msg[2], str) else None
            return Frame(
                kind, mid, action, None, "not_ocpp_j", "a CALL has 4 elements: 2, id, action, payload"
            )
        return Frame(kind, mid, msg[2], msg[3])
    if kind == CALLRESULT:
        return Frame(kind, mid, None, msg[2] if len(msg) > 2 else None)
    return Frame(kind, mid, None, msg[2:] if len(msg) > 2 else None)


def call_result(message_id: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALLRESULT, message_id, payload]).decode()


def call_error(
    message_id: str | None, code: str, description: str, details: dict[str, Any] | None = None
) -> str:
    # OCPP-J: when no message id can be read, the CallError carries "-1".
    return orjson.dumps([CALLERROR, message_id or "-1", code, description[:255], details or {}]).decode()
