"""Operator calls: a CSMS-initiated CALL sent over the charger's own connection, and its answer.

The CALL is written to the WAL (`frames`, direction 'out', like proxy mode's relayed CALLs) and made
durable before it is sent; the charger's CallResult or CallError arrives in the connection's own read
loop (ingest/server.py), which stores it like every inbound frame, tags it with the action it answers,
and only then hands it here. So whatever the operator is told is already in the raw zone.

Which actions exist: every request schema the official OCPP schemas ship (the `ocpp` package) that a
charger does not send itself, plus DataTransfer (both ways). For 1.6 that is the core, firmware, local
auth list, reservation, remote trigger and smart charging profiles and the security whitepaper's
messages; for 2.0.1 every CSMS → charging station message of part 2.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson

from ingest.actions import CHARGER_ACTIONS, schema_dir, validation_error
from ingest.ocppj import CALL, CALLERROR, CALLRESULT, Frame

BOTH_WAYS = frozenset({"DataTransfer"})


@cache
def csms_actions(version: str) -> frozenset[str]:
    """The CSMS-initiated actions of `version`, from the shipped official schemas."""
    suffix = ".json" if version == "1.6" else "Request.json"
    names = {
        p.name[: -len(suffix)]
        for p in schema_dir(version).glob("*" + suffix)
        if not p.name.endswith("Response.json")
    }
    return frozenset(n for n in names if n not in CHARGER_ACTIONS[version] or n in BOTH_WAYS)


class CallRefused(Exception):
    """The call is not sent: `status` (HTTP) and a message that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_call(version: str, action: str, payload: Any) -> None:
    """Refuse an action the version does not have (404) or a payload its schema rejects (422)."""
    if action not in csms_actions(version):
        raise CallRefused(404, f"{action!r} is not a CSMS-initiated action of OCPP {version}")
    if not isinstance(payload, dict):
        raise CallRefused(422, f"the payload of {action} must be a JSON object")
    problem = validation_error(version, action, payload)
    if problem is not None:
        raise CallRefused(422, f"the payload does not validate against the official OCPP {version} "
                               f"{action} schema: {problem}")  # fmt: skip


@dataclass
class CallAnswer:
    """What the charger answered: a CallResult payload, or a CallError's three parts."""

    result: Any = None
    error_code: str | None = None
    error_description: str | None = None
    error_details: Any = None

    @property
    def is_error(self) -> bool:
        return self.error_code is not None


def answer_of(frame: Frame) -> CallAnswer:
    if frame.message_type == CALLRESULT:
        return CallAnswer(result=frame.payload)
    parts = list(frame.payload or [])
    code, description, details = [*parts, None, None, None][:3]
    return CallAnswer(
        error_code=str(code) if code is not None else "GenericError",
        error_description=str(description or ""),
        error_details=details if details is not None else {},
    )


class ChargerGone(Exception):
    """The charger's connection closed before it answered."""


@dataclass
class Pending:
    action: str
    future: asyncio.Future[CallAnswer] = field(repr=False)


def new_message_id() -> str:
    # Distinct from chargers' own ids and from the proxy's; an operator call is findable in `frames`.
    return "op-" + secrets.token_hex(8)


def call_text(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALL, message_id, action, payload]).decode()


class PendingCalls:
    """Calls sent on one connection and not answered yet, by message id."""

    def __init__(self) -> None:
        self._calls: dict[str, Pending] = {}

    def add(self, message_id: str, action: str) -> asyncio.Future[CallAnswer]:
        future: asyncio.Future[CallAnswer] = asyncio.get_running_loop().create_future()
        self._calls[message_id] = Pending(action, future)
        return future

    def action_answered_by(self, frame: Frame | None) -> str | None:
        """The action of ours that an inbound CallResult/CallError answers, or None."""
        if frame is None or frame.message_type not in (CALLRESULT, CALLERROR):
            return None
        pending = self._calls.get(frame.message_id or "")
        return pending.action if pending else None

    def resolve(self, frame: Frame) -> None:
        """Hand a stored answer to the waiting operator request (a late answer has nobody waiting)."""
        pending = self._calls.pop(frame.message_id or "", None)
        if pending is not None and not pending.future.done():
            pending.future.set_result(answer_of(frame))

    def forget(self, message_id: str) -> None:
        self._calls.pop(message_id, None)

    def fail_all(self) -> None:
        for pending in self._calls.values():
            if not pending.future.done():
                pending.future.set_exception(ChargerGone())
        self._calls.clear()
