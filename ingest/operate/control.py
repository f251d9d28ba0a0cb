"""Remote control inside one listener process: which chargers it holds, and a call to one of them.

The server's connection handler attaches each charger's connection here and detaches it when it
closes (a pending call then fails at once: 'charger_gone'). A call is checked (`calls.check_call`),
made durable, sent, and answered from the connection's read loop. Every call, whatever its outcome,
leaves one `operator_calls` row, written with the next group commit (its frames are durable first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from ingest.operate.calls import (
    CallAnswer,
    CallRefused,
    ChargerGone,
    PendingCalls,
    call_text,
    check_call,
    new_message_id,
)
from ingest.processor import ConnectionContext, now_us
from ingest.store import StoreUnavailable
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.operate")


@dataclass
class Attached:
    ws: Any  # websockets ServerConnection
    ctx: ConnectionContext
    pending: PendingCalls


@dataclass
class CallOutcome:
    """The HTTP answer of a call: status and JSON body (and what the raw row records)."""

    status: int
    body: dict[str, Any]
    outcome: str
    error_code: str | None = None


def outcome_of(answer: CallAnswer) -> CallOutcome:
    if answer.is_error:
        body = {
            "error_code": answer.error_code,
            "error_description": answer.error_description,
            "error_details": answer.error_details,
        }
        return CallOutcome(502, body, "call_error", answer.error_code)
    return CallOutcome(200, {"result": answer.result}, "result")


class Control:
    def __init__(self, store: Any, instance: str, *, proxy_mode: bool) -> None:
        self.store = store
        self.instance = instance
        self.proxy_mode = proxy_mode
        self.attached: dict[str, Attached] = {}

    # --- the connection handler's side --------------------------------------------------------------

    def attach(self, ws: Any, ctx: ConnectionContext) -> PendingCalls:
        old = self.attached.get(ctx.charge_point_id)
        if old is not None:
            old.pending.fail_all()  # the newer connection replaces it: its calls cannot be answered
        pending = PendingCalls()
        self.attached[ctx.charge_point_id] = Attached(ws, ctx, pending)
        return pending

    def detach(self, ws: Any, ctx: ConnectionContext) -> None:
        current = self.attached.get(ctx.charge_point_id)
        if current is not None and current.ws is ws:
            del self.attached[ctx.charge_point_id]
            current.pending.fail_all()

    def holds(self, cp_id: str) -> bool:
        return cp_id in self.attached

    # --- the operator's side -----------------------------------------------------------------------

    async def call(self, operator: str, cp_id: str, action: str, payload: Any, timeout: float) -> CallOutcome:
        """Send `action` to `cp_id` and wait for its answer; one `operator_calls` row either way."""
        started = time.monotonic()
        received = now_us()
        attached = self.attached.get(cp_id)
        message_id: str | None = None
        try:
            if self.proxy_mode:
                raise CallRefused(409, "proxy mode: the upstream CSMS controls the chargers (docs/proxy.md)")
            if attached is None:
                raise CallRefused(404, f"charger {cp_id!r} is not connected to this listener")
            check_call(attached.ctx.version, action, payload)
            message_id = new_message_id()
            outcome = await self._send_and_wait(attached, message_id, action, payload, timeout)
        except CallRefused as exc:
            kind = {404: "not_connected", 409: "proxy_mode", 422: "invalid_payload"}.get(
                exc.status, "refused"
            )
            if exc.status == 404 and attached is not None:
                kind = "unknown_action"
            outcome = CallOutcome(exc.status, {"error": exc.message}, kind)
        except StoreUnavailable as exc:
            message_id = None  # not durable, so never sent
            outcome = CallOutcome(
                503, {"error": f"not sent: the raw zone cannot store it ({exc})"}, "refused"
            )
        await self._record(operator, cp_id, attached, action, message_id, outcome, received, started)
        return outcome

    async def _send_and_wait(
        self, attached: Attached, message_id: str, action: str, payload: dict[str, Any], timeout: float
    ) -> CallOutcome:
        ctx = attached.ctx
        text = call_text(message_id, action, payload)
        future = attached.pending.add(message_id, action)
        record = {
            "k": "o", "cp": ctx.charge_point_id, "conn": ctx.connection_id, "v": ctx.version, "d": "out",
            "seq": ctx.next_seq(), "at": now_us(), "text": text, "act": action,
        }  # fmt: skip
        try:
            await self.store.commit(record)  # durable before it is sent
            await attached.ws.send(text)
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return CallOutcome(504, {"error": f"the charger did not answer within {timeout:g} s"}, "timeout")
        except ChargerGone:
            return CallOutcome(
                504, {"error": "the charger's connection closed before it answered"}, "charger_gone"
            )
        except Exception as exc:
            if type(exc).__name__.startswith("ConnectionClosed"):
                return CallOutcome(504, {"error": "the charger's connection closed"}, "charger_gone")
            raise
        finally:
            attached.pending.forget(message_id)
        return outcome_of(answer)

    async def _record(
        self, operator: str, cp_id: str, attached: Attached | None, action: str, message_id: str | None,
        outcome: CallOutcome, received: int, started: float,
    ) -> None:  # fmt: skip
        row = {
            "received_at": received,
            "operator": operator,
            "charge_point_id": cp_id,
            "connection_id": attached.ctx.connection_id if attached and message_id else None,
            "ocpp_version": attached.ctx.version if attached else None,
            "action": action,
            "message_id": message_id,
            "outcome": outcome.outcome,
            "http_status": outcome.status,
            "latency_ms": (time.monotonic() - started) * 1000.0,
            "error_code": outcome.error_code,
            "listener_id": self.instance,
        }
        # The CALL and the charger's answer were each made durable before they went on (frames). The row
        # rides with the next group commit instead of waiting for a fsync of its own: at 100 calls/s a
        # third fsync per call measurably delayed the chargers' acknowledgements (benchmarks/operate.py).
        # A kill -9 within those milliseconds can lose this row, never a frame.
        self.store.log({"k": "p", "row": row})
        log.info(
            "operator call",
            extra=fields(operator=operator, charger=cp_id, action=action, outcome=outcome.outcome,
                         status=outcome.status),
        )  # fmt: skip
