"""One charger connection relayed to the CSMS: both directions captured, the CSMS's answers decide.

Order of events for a charger CALL: WAL commit of the CALL, send upstream, CSMS answer, WAL commit
of the answer, answer relayed to the charger. Frames go out as the original text. A CSMS CALL is
committed, then relayed; the charger's answer is committed, then relayed back.

When the CSMS goes away (refused connection, closed socket, answer timeout):
- refuse: the charger's connection is closed (or its handshake refused), so it keeps its own queue;
- store-and-forward: the listener answers locally (docs/leniency.md answers, local 1.6 ids), queues
  the CALL durably, and a supervisor reconnects and forwards the queue in order before relaying live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from picows.websockets import ClientConnection
from picows.websockets.exceptions import ConnectionClosed as UpstreamClosed
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed as ChargerClosed

from ingest.actions import resolve_action, settled_validation_error
from ingest.ocppj import CALL, call_result, read_frame
from ingest.processor import ConnectionContext, now_us
from ingest.proxy.facts import (
    ANSWER_DECIDES,
    CARRIES_TRANSACTION_ID,
    csms_call_for_charger,
    facts_from_answer,
    local_transaction_id,
    with_transaction_id,
)
from ingest.proxy.hub import ProxyHub, UpstreamUnavailable
from ingest.proxy.queue import Queued
from ingest.store import StoreUnavailable
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.proxy")

# The charger side runs on `websockets`, the CSMS side on picows (see hub.py): either may close.
ConnectionClosed = (ChargerClosed, UpstreamClosed)
CLOSE_UPSTREAM_LOST = 1013  # "try again later": the charger reconnects, and keeps its queue meanwhile


@dataclass
class PendingCall:
    action: str
    action_version: str | None
    received_at: int
    text: str  # as forwarded
    validation_error: str | bool | None  # bool: NOT_YET_VALIDATED
    derive_here: bool
    seq: int
    deadline: float = 0.0  # loop time by which the CSMS must have answered


class Relay:
    def __init__(
        self, hub: ProxyHub, ws: ServerConnection, ctx: ConnectionContext, upstream: ClientConnection | None
    ) -> None:
        self.hub = hub
        self.ws = ws
        self.ctx = ctx
        self.cp = ctx.charge_point_id
        self.upstream = upstream
        self.online = upstream is not None
        self.pending: dict[str, PendingCall] = {}
        self.csms_calls: dict[str, str] = {}
        self.forwarded: dict[str, asyncio.Future[str]] = {}
        self.lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def run(self, limiter: Any) -> None:
        if self.upstream is not None:
            self._reader = asyncio.create_task(self._read_upstream(self.upstream))
        if self.hub.store_and_forward and (self.upstream is None or await self.hub.queue.pending(self.cp)):
            self.online = False
            self._start_supervisor()
        try:
            async for message in self.ws:
                await limiter.take()
                await self._from_charger(message)
        finally:
            # The charger left: the upstream connection ends with it, which is no "upstream lost"
            # (the reader's cleanup would otherwise log it and apply the offline mode).
            upstream, self.upstream = self.upstream, None
            for task in (self._supervisor, self._reader):
                if task is not None:
                    task.cancel()
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            if upstream is not None:
                with contextlib.suppress(Exception):
                    await upstream.close()

    def _start_supervisor(self) -> None:
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise())

    # --- charger → CSMS --------------------------------------------------------------------------

    async def _from_charger(self, message: str | bytes) -> None:
        if not self.online:
            await self._answer_locally(message)
            return
        captured = self.hub.processor.capture(self.ctx, message)
        if captured is None:
            await self._answer_locally(message, queue=False)  # unreadable: a local CallError, as standalone
            return
        record, frame = captured
        if self.hub.live is not None:
            self.hub.live.frame(self.cp, frame.action, frame.payload, self.ctx.version)
        if frame.message_type == CALL:
            await self._relay_call(record, frame, message)  # type: ignore[arg-type]
            return
        action = self.csms_calls.pop(frame.message_id or "", None)
        if action is not None:
            record["act"] = action
        with contextlib.suppress(StoreUnavailable):
            await self.hub.store.commit(record)
        if self.upstream is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.upstream.send(message)

    def _needs_answer_record(self, action_version: str | None, action: str, payload: Any) -> bool:
        """Whether the CALL's typed rows wait for the record holding the CSMS's answer."""
        if action_version is None:
            return False
        if (action_version, action) in ANSWER_DECIDES:
            return True
        return (
            action_version == "1.6"
            and action in CARRIES_TRANSACTION_ID
            and self.hub.queue is not None
            and local_transaction_id(self.hub.queue, self.cp, payload) is not None
        )

    def _for_csms(self, version: str | None, action: str, payload: Any, text: str) -> str:
        """The text to send upstream: the original, unless it carries a locally answered 1.6 id."""
        if version != "1.6" or action not in CARRIES_TRANSACTION_ID or self.hub.queue is None:
            return text
        local = local_transaction_id(self.hub.queue, self.cp, payload)
        csms = None if local is None else self.hub.queue.csms_id(self.cp, local)
        return text if csms is None else with_transaction_id(text, csms)

    async def _relay_call(self, record: dict[str, Any], frame: Any, text: str) -> None:
        action = frame.action or ""
        action_version = resolve_action(self.ctx.version, action)
        derive_here = self._needs_answer_record(action_version, action, frame.payload)
        if derive_here:
            record["defer"] = True
        try:
            await self.hub.store.commit(record)
        except StoreUnavailable as exc:
            # Unanswered, the charger keeps the message and retries: nothing is lost.
            self.hub.metrics.not_acknowledged += 1
            log.warning("not acknowledged", extra=fields(connection=self.ctx.connection_id, why=str(exc)))
            return
        forward = self._for_csms(action_version, action, frame.payload, text)
        mid = frame.message_id or ""
        pending = PendingCall(
            action, action_version, record["in"][1], forward, record["in"][4], derive_here, record["in"][0]
        )
        pending.deadline = asyncio.get_running_loop().time() + self.hub.settings.upstream_answer_timeout
        self.pending[mid] = pending
        if self._deadline_timer is None:
            self._arm_deadline_timer(pending.deadline)
        upstream = self.upstream
        if upstream is None:
            await self._upstream_lost("no upstream connection")
            return
        try:
            await upstream.send(forward)
        except ConnectionClosed:
            await self._upstream_lost("upstream connection closed")

    def _arm_deadline_timer(self, when: float) -> None:
        # One timer per connection, not one per CALL: it is re-armed only when it fires, so an
        # exchange costs no timer of its own (a TimerHandle plus its cancel was ~3 % of the CPU).
        self._deadline_timer = asyncio.get_running_loop().call_at(when, self._check_deadlines)

    def _check_deadlines(self) -> None:
        self._deadline_timer = None
        if not self.pending:
            return
        now = asyncio.get_running_loop().time()
        late = [mid for mid, call in self.pending.items() if call.deadline <= now]
        if late:
            if self.upstream is not None:
                log.warning(
                    "CSMS did not answer in time", extra=fields(charge_point=self.cp, message_id=late[0])
                )
                # Closing ends the upstream reader, which applies the offline mode to every pending CALL.
                task = asyncio.create_task(self.upstream.close(1011, "no answer in time"))
                self.hub.keep(task)
            return
        self._arm_deadline_timer(min(call.deadline for call in self.pending.values()))

    async def _answer_locally(self, message: str | bytes, *, queue: bool = True) -> None:
        outcome = await self.hub.local.process(self.ctx, message)
        frame = read_frame(message) if isinstance(message, str) else None
        queued = (
            queue
            and frame is not None
            and frame.problem is None
            and frame.message_type == CALL
            and outcome.record["in"][5] is None
        )
        if queued:
            assert frame is not None
            action_version = outcome.record.get("av") or self.ctx.version
            if self._needs_answer_record(action_version, frame.action or "", frame.payload):
                outcome.record["defer"] = True
        try:
            await self.hub.store.commit(outcome.record)
        except StoreUnavailable:
            self.hub.metrics.not_acknowledged += 1
            return
        if self.hub.live is not None and outcome.frame is not None:
            self.hub.live.frame(self.cp, outcome.frame.action, outcome.frame.payload, self.ctx.version)
        if queued:
            assert frame is not None
            local_id = outcome.record.get("f", {}).get("transaction_id")
            seq, received_at, text, _, verr, *_ = outcome.record["in"]
            await self.hub.queue.put(
                Queued(0, self.cp, self.ctx.connection_id, self.ctx.version, seq, received_at,
                       frame.action or "", text, verr, None if local_id is None else int(local_id))
            )  # fmt: skip
        if outcome.reply is not None:
            await self.ws.send(outcome.reply)

    # --- CSMS → charger --------------------------------------------------------------------------

    async def _read_upstream(self, upstream: ClientConnection) -> None:
        try:
            async for text in upstream:
                if isinstance(text, bytes):
                    text = text.decode(errors="replace")
                await self._from_csms(text)
        except ConnectionClosed:
            pass
        finally:
            if self.upstream is upstream:
                await self._upstream_lost(f"upstream closed ({upstream.close_code})")

    async def _from_csms(self, text: str) -> None:
        frame = read_frame(text)
        mid = frame.message_id or ""
        if frame.message_type in (3, 4) and mid in self.forwarded:
            future = self.forwarded.pop(mid)
            if not future.done():
                future.set_result(text)
            return
        pending = self.pending.pop(mid, None) if frame.message_type in (3, 4) else None
        record: dict[str, Any] = {
            "k": "o", "cp": self.cp, "conn": self.ctx.connection_id, "v": self.ctx.version, "d": "out",
            "seq": self.ctx.next_seq(), "at": now_us(), "text": text,
        }  # fmt: skip
        if pending is not None:
            record["act"] = pending.action
            if pending.derive_here:
                record["call"] = [pending.received_at, pending.text, pending.validation_error, mid,
                                  pending.action_version]  # fmt: skip
                record["f"] = facts_from_answer(pending.action_version or "", pending.action, text)
        elif frame.message_type == CALL:
            self.csms_calls[mid] = frame.action or ""
            if self.hub.queue is not None:
                text = record["text"] = csms_call_for_charger(self.hub.queue, self.cp, text)
        elif frame.message_type in (3, 4):
            record["d"] = "down"  # an answer that came too late: already answered locally
        if pending is not None and not pending.derive_here:
            # The charger's CALL is durable already and this answer decides no typed row, so a second
            # fsync before relaying would only add latency (issue #9: < 5 ms added at p99). The record
            # joins the next group commit: only a kill -9 within those few milliseconds can lose this
            # answer's frame, never the charger's data (docs/proxy.md, "Durability").
            self.hub.store.log(record)
            self.hub.metrics.frames[("out", record.get("act") or frame.action or "")] += 1
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(text)
            return
        try:
            await self.hub.store.commit(record)
        except StoreUnavailable:
            self.hub.metrics.not_acknowledged += 1
            return  # not durable, so not relayed: the charger retries its CALL, the CSMS its own
        if record["d"] == "out":
            self.hub.metrics.frames[("out", record.get("act") or frame.action or "")] += 1
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(text)

    # --- the CSMS is away ------------------------------------------------------------------------

    async def _upstream_lost(self, why: str) -> None:
        if self.upstream is None and not self.pending:
            return
        log.warning("upstream lost", extra=fields(charge_point=self.cp, why=why))
        upstream, self.upstream = self.upstream, None
        self.online = False
        for future in self.forwarded.values():
            if not future.done():
                future.set_exception(UpstreamUnavailable(why))
        self.forwarded.clear()
        if upstream is not None:
            task = asyncio.create_task(upstream.close())
            self.hub.keep(task)
        if not self.hub.store_and_forward:
            # Refuse mode: the charger keeps what we did not answer and resends it after reconnecting.
            await self.ws.close(CLOSE_UPSTREAM_LOST, "upstream CSMS unavailable")
            return
        pending, self.pending = self.pending, {}
        for mid, call in pending.items():
            await self._answer_pending_locally(mid, call)
        self._start_supervisor()

    async def _answer_pending_locally(self, mid: str, call: PendingCall) -> None:
        """A relayed CALL the CSMS did not answer: answer it locally and queue it (store-and-forward)."""
        frame = read_frame(call.text)
        if not isinstance(frame.payload, dict) or call.action_version is None:
            return
        try:
            answer = await self.hub.local.responder.answer(
                self.cp, call.action_version, call.action, frame.payload
            )
        except Exception:
            return  # unanswerable locally: the charger's retry will reach a CSMS later
        reply = call_result(mid, answer.payload)
        record = {
            "k": "o", "cp": self.cp, "conn": self.ctx.connection_id, "v": self.ctx.version, "d": "out",
            "seq": self.ctx.next_seq(), "at": now_us(), "text": reply, "act": call.action,
        }  # fmt: skip
        try:
            await self.hub.store.commit(record)
        except StoreUnavailable:
            return
        local_id = answer.facts.get("transaction_id")
        # The queue keeps error texts only; the CSMS is away, so validating now delays no relay.
        verr = settled_validation_error(call.validation_error, self.ctx.version, call.action, frame.payload)
        await self.hub.queue.put(
            Queued(0, self.cp, self.ctx.connection_id, self.ctx.version, call.seq, call.received_at,
                   call.action, call.text, verr, None if local_id is None else int(local_id))
        )  # fmt: skip
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(reply)

    async def _supervise(self) -> None:
        """Store-and-forward: reconnect to the CSMS, forward the queue in order, then relay live."""
        while True:
            if self.upstream is None:
                try:
                    upstream = await self.hub.connect(
                        self.cp, [self.ws.subprotocol or "ocpp1.6"], self.ws.request
                    )
                except UpstreamUnavailable as exc:
                    log.info("CSMS still unavailable", extra=fields(charge_point=self.cp, why=str(exc)))
                    await asyncio.sleep(self.hub.settings.upstream_retry_seconds)
                    continue
                self.upstream = upstream
                self._reader = asyncio.create_task(self._read_upstream(upstream))
            if await self._drain():
                return
            await asyncio.sleep(self.hub.settings.upstream_retry_seconds)

    async def _drain(self) -> bool:
        queue = self.hub.queue
        while True:
            async with self.lock:
                item = await queue.head(self.cp)
                if item is None:
                    self.online = self.upstream is not None
                    if self.online:
                        log.info("store-and-forward queue drained", extra=fields(charge_point=self.cp))
                    return self.online
            if not await self._forward(item):
                return False

    async def _forward(self, item: Queued) -> bool:
        upstream = self.upstream
        if upstream is None:
            return False
        frame = read_frame(item.text)
        action_version = resolve_action(item.version, item.action)
        text = self._for_csms(action_version, item.action, frame.payload, item.text)
        mid = frame.message_id or ""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.forwarded[mid] = future
        sent_at = now_us()
        try:
            await upstream.send(text)
            answer = await asyncio.wait_for(future, self.hub.settings.upstream_answer_timeout)
        except (ConnectionClosed, UpstreamUnavailable, TimeoutError):
            self.forwarded.pop(mid, None)
            if self.upstream is upstream:
                await self._upstream_lost("forwarding failed")
            return False
        facts = facts_from_answer(action_version or item.version, item.action, answer)
        csms_id = facts.get("transaction_id")
        if item.local_id is not None and csms_id is not None:
            await self.hub.queue.map(self.cp, item.local_id, int(csms_id))
        record: dict[str, Any] = {
            "k": "u", "cp": item.charge_point_id, "conn": item.connection_id, "v": item.version,
            "seq": item.seq, "up": [sent_at, text], "down": [now_us(), answer], "act": item.action,
            "f": facts,
        }  # fmt: skip
        if self._needs_answer_record(action_version, item.action, frame.payload):
            record["call"] = [item.received_at, text, item.validation_error, mid, action_version]
        try:
            await self.hub.store.commit(record)
        except StoreUnavailable:
            return False
        await self.hub.queue.done(item.id)
        return True
