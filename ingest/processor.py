"""One inbound frame → the answer to send and the WAL record that must be durable first.

Leniency (docs/leniency.md): a CALL that breaks its schema but still means something is answered
with a CallResult and stored with its validation error; only frames that cannot be understood get
a CallError, and those go to quarantine. Either way the frame itself is always stored.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from ingest.actions import NOT_YET_VALIDATED, resolve_action, validation_error
from ingest.answers import Responder, Unintelligible
from ingest.metrics import Metrics
from ingest.ocppj import (
    CALL,
    FORMAT_VIOLATION,
    MAX_MESSAGE_ID_LENGTH,
    Frame,
    call_error,
    call_result,
    peek_ids,
    read_frame,
)
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.processor")


@dataclass
class ConnectionContext:
    charge_point_id: str
    connection_id: str
    version: str
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class Outcome:
    record: dict[str, Any]
    reply: str | None
    frame: Frame | None = None  # the parsed frame, when it could be read (live state, operator calls)


def now_us() -> int:
    return time.time_ns() // 1000


def _violation_code(version: str, message: str) -> str:
    """The OCPP-J error code that best names a schema violation (OCPP-J §4.2.3)."""
    if "must contain" in message or "required" in message:
        return "ProtocolError"
    if "must be one of" in message or "must be longer" in message or "must be shorter" in message:
        return "PropertyConstraintViolation"
    if "must be" in message:
        return "TypeConstraintViolation"
    return FORMAT_VIOLATION[version]


class FrameProcessor:
    def __init__(self, responder: Responder, metrics: Metrics, *, max_frame_bytes: int, strict: bool) -> None:
        self.responder = responder
        self.metrics = metrics
        self.max_frame_bytes = max_frame_bytes
        self.strict = strict

    async def process(self, ctx: ConnectionContext, message: str | bytes) -> Outcome:
        received = now_us()
        seq = ctx.next_seq()
        if isinstance(message, bytes):
            text = base64.b64encode(message[: self.max_frame_bytes]).decode()
            return self._quarantined(
                ctx, seq, received, text, len(message), hashlib.sha256(message).hexdigest(),
                "binary_frame", "OCPP-J uses text frames; stored base64-encoded", None, None,
            )  # fmt: skip
        length = len(message) if message.isascii() else len(message.encode())  # bytes, cheaply
        if length > self.max_frame_bytes:
            mid, action = peek_ids(message)
            encoded = message.encode()
            truncated = encoded[: self.max_frame_bytes].decode(errors="ignore")
            return self._quarantined(
                ctx, seq, received, truncated, length, hashlib.sha256(encoded).hexdigest(), "oversized",
                f"frame of {length} bytes exceeds the {self.max_frame_bytes}-byte limit", mid, action,
            )  # fmt: skip

        frame = read_frame(message)
        record: dict[str, Any] = {
            "k": "x",
            "cp": ctx.charge_point_id,
            "conn": ctx.connection_id,
            "v": ctx.version,
            "in": [seq, received, message, length, None, None, None, None],
            "out": None,
        }
        if frame.problem is not None:
            record["in"][5:8] = [frame.problem, frame.detail, hashlib.sha256(message.encode()).hexdigest()]
            self.metrics.quarantined[frame.problem] += 1
            self.metrics.frames[("in", frame.action or "")] += 1
            if frame.message_type in (3, 4):
                return Outcome(record, None)  # a result is never answered, even a broken one
            reply = call_error(frame.message_id, FORMAT_VIOLATION[ctx.version], frame.detail or frame.problem)
            return self._answer(ctx, record, reply)
        if frame.message_type != CALL:
            # A CallResult/CallError to a request of ours: stored, nothing to answer.
            self.metrics.frames[("in", "")] += 1
            return Outcome(record, None, frame)
        outcome = await self._call(
            ctx, record, frame.message_id or "-1", frame.action or "", frame.payload, message
        )
        outcome.frame = frame
        return outcome

    def capture(self, ctx: ConnectionContext, message: str | bytes) -> tuple[dict[str, Any], Frame] | None:
        """The WAL record of a well-formed inbound frame that proxy mode relays instead of answering.

        None when the frame is unreadable, oversized or binary: `process` answers those locally,
        exactly as in standalone mode, and they never reach the CSMS. The CSMS, not the listener,
        decides about a schema-invalid CALL, so it is relayed unvalidated: the record says
        NOT_YET_VALIDATED and the segment's roll records the validation error. That keeps schema
        validation (~40 µs per MeterValues, a sixth of the proxy's CPU per exchange) off the relay path.
        """
        if isinstance(message, bytes):
            return None
        length = len(message) if message.isascii() else len(message.encode())
        if length > self.max_frame_bytes:
            return None
        frame = read_frame(message)
        if frame.problem is not None:
            return None
        record: dict[str, Any] = {
            "k": "x",
            "cp": ctx.charge_point_id,
            "conn": ctx.connection_id,
            "v": ctx.version,
            "in": [ctx.next_seq(), now_us(), message, length, None, None, None, None],
            "out": None,
        }
        action = frame.action or ""
        if frame.message_type == CALL:
            action_version = resolve_action(ctx.version, action)
            if action_version is None:
                record["in"][4] = f"{action!r} is not an OCPP 1.6 or 2.0.1 action"
            else:
                if action_version != ctx.version:
                    record["av"] = action_version
                record["in"][4] = NOT_YET_VALIDATED
        self.metrics.frames[("in", action)] += 1
        return record, frame

    async def _call(
        self, ctx: ConnectionContext, record: dict[str, Any], mid: str, action: str, payload: Any, text: str
    ) -> Outcome:
        self.metrics.frames[("in", action)] += 1
        action_version = resolve_action(ctx.version, action)
        if action_version is None:
            self._quarantine(record, text, "unknown_action", f"{action!r} is not an OCPP 1.6 or 2.0.1 action")
            return self._answer(ctx, record, call_error(mid, "NotImplemented", f"unknown action {action!r}"))
        if action_version != ctx.version:
            record["av"] = action_version
        problems = []
        error = validation_error(action_version, action, payload)
        if error is not None:
            if self.strict:
                self._quarantine(record, text, "strict_validation", error)
                record["in"][4] = error
                return self._answer(ctx, record, call_error(mid, _violation_code(ctx.version, error), error))
            problems.append(error)
        if len(mid) > MAX_MESSAGE_ID_LENGTH:
            problems.append(f"message id longer than {MAX_MESSAGE_ID_LENGTH} characters")
        if problems:
            record["in"][4] = "; ".join(problems)
        try:
            answer = await self.responder.answer(ctx.charge_point_id, action_version, action, payload)
        except Unintelligible as exc:
            self._quarantine(record, text, "unintelligible", exc.description)
            return self._answer(ctx, record, call_error(mid, exc.code, exc.description))
        except Exception:
            # A bug of ours must not cost the charger its data: store, answer, keep the socket.
            log.exception(
                "answering a CALL failed", extra=fields(action=action, connection=ctx.connection_id)
            )
            self._quarantine(record, text, "internal_error", "the listener failed to answer this frame")
            return self._answer(ctx, record, call_error(mid, "InternalError", "internal error; frame stored"))
        if answer.facts:
            record["f"] = answer.facts
        return self._answer(ctx, record, call_result(mid, answer.payload), action)

    def _quarantine(self, record: dict[str, Any], text: str, reason: str, detail: str) -> None:
        record["in"][5:8] = [reason, detail[:500], hashlib.sha256(text.encode()).hexdigest()]
        self.metrics.quarantined[reason] += 1

    def _quarantined(
        self, ctx: ConnectionContext, seq: int, received: int, text: str, length: int, sha: str,
        reason: str, detail: str, mid: str | None, action: str | None,
    ) -> Outcome:  # fmt: skip
        self.metrics.quarantined[reason] += 1
        self.metrics.frames[("in", action or "")] += 1
        record = {
            "k": "x",
            "cp": ctx.charge_point_id,
            "conn": ctx.connection_id,
            "v": ctx.version,
            "in": [seq, received, text, length, None, reason, detail, sha],
            "out": None,
            "mid": mid,
            "act": action,
        }
        return self._answer(ctx, record, call_error(mid, FORMAT_VIOLATION[ctx.version], detail))

    def _answer(
        self, ctx: ConnectionContext, record: dict[str, Any], reply: str, action: str = ""
    ) -> Outcome:
        record["out"] = [ctx.next_seq(), now_us(), reply]
        self.metrics.frames[("out", action)] += 1
        return Outcome(record, reply)
