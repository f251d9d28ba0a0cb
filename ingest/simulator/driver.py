"""Plays the plan over real WebSockets: one asyncio task per charger, one CALL in flight each.

Each charger sends its next CALL only after the answer to the previous one (the OCPP-J rule),
answers CALLs from the central system with CallError NotImplemented, and follows the simulated
clock: with --speed X its message at simulated time T leaves at t0 + (T - start) / X, never earlier,
so a timestamp is never ahead of the real clock (skewed chargers aside, on purpose).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ingest.simulator.fleet import Charger, FleetPlan
from ingest.simulator.options import SimulationError
from ingest.simulator.sample import Payload
from ingest.simulator.timeline import Call, Marker, boot_calls, charger_events
from ocpp_opendata.logs import fields

log = logging.getLogger(__name__)

SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
RECONNECT_DELAYS = (0.1, 0.3, 1.0, 2.0, 4.0)
MAX_HANDSHAKES = 64  # at once: a thousand chargers should not all knock in the same millisecond


@dataclass
class Stats:
    """Counters the progress display and the result read; single-threaded, so plain ints."""

    chargers: int
    frames_sent: int = 0  # CALL frames, including retries and replays
    answers: int = 0
    sessions_done: int = 0
    retries: int = 0
    replayed: int = 0
    reconnects: int = 0
    unexpected_disconnects: int = 0
    csms_calls: int = 0
    not_accepted: Counter[str] = field(default_factory=Counter)  # Boot/authorization answers
    call_errors: Counter[str] = field(default_factory=Counter)  # "Action: errorCode"
    transaction_id_mismatches: int = 0
    skipped_without_transaction_id: int = 0
    positions: list[int] = field(default_factory=list)  # each charger's simulated time
    connected: int = 0


class Link:
    """One charger's WebSocket to the listener."""

    def __init__(
        self, url: str, charger: Charger, stats: Stats, timeout: float, gate: asyncio.Semaphore
    ) -> None:
        self.url = f"{url.rstrip('/')}/{charger.charge_point_id}"
        self.cp = charger.charge_point_id
        self.subprotocol = SUBPROTOCOL[charger.ocpp_version]
        self.stats = stats
        self.timeout = timeout
        self.gate = gate
        self.ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._prefix = f"{os.urandom(3).hex()}-"  # message ids differ between runs of the same seed

    async def open(self) -> None:
        async with self.gate:
            try:
                ws = await connect(
                    self.url,
                    subprotocols=[self.subprotocol],  # type: ignore[list-item]
                    compression=None,
                    open_timeout=10,
                    max_size=2**20,
                )
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = exc.response.body.decode(errors="replace").strip()[:200] if exc.response.body else ""
                detail = f"HTTP {status} {body}".rstrip()
                raise SimulationError(
                    f"the listener refused charge point {self.cp} at {self.url}: {detail}"
                ) from None
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                raise SimulationError(f"the listener at {self.url} is unreachable: {exc}") from None
        if ws.subprotocol != self.subprotocol:
            await ws.close()
            raise SimulationError(
                f"the listener at {self.url} did not accept subprotocol {self.subprotocol} "
                f"(it chose {ws.subprotocol!r})"
            )
        self.ws = ws
        self.stats.connected += 1

    async def reopen(self) -> None:
        """Reconnect after a drop, trying a few times before giving up."""
        await self.drop()
        for delay in RECONNECT_DELAYS:
            try:
                await self.open()
                self.stats.reconnects += 1
                return
            except SimulationError:
                await asyncio.sleep(delay)
        await self.open()
        self.stats.reconnects += 1

    async def drop(self) -> None:
        """Lose the connection the way a network does: no closing handshake."""
        if self.ws is not None:
            self.ws.transport.abort()
            await self.ws.wait_closed()
            self.ws = None
            self.stats.connected -= 1

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
            self.stats.connected -= 1

    async def call(self, action: str, payload: Payload) -> list[Any]:
        """Send a CALL and return its CALLRESULT/CALLERROR; a lost connection is reopened and the
        CALL sent again (as a charger does with a message it got no answer to)."""
        for _attempt in range(3):
            if self.ws is None:
                await self.reopen()
            assert self.ws is not None
            message_id = f"{self._prefix}{next(self._ids)}"
            frame = orjson.dumps([2, message_id, action, payload])
            try:
                await self.ws.send(frame, text=True)
                self.stats.frames_sent += 1
                return await self._answer(message_id, action)
            except ConnectionClosed:
                self.stats.unexpected_disconnects += 1
                log.warning(
                    "connection lost while waiting for an answer", extra=fields(cp=self.cp, action=action)
                )
                await self.reopen()
        raise SimulationError(
            f"{self.cp}: the listener closed the connection on {action} three times in a row"
        )

    async def _answer(self, message_id: str, action: str) -> list[Any]:
        assert self.ws is not None
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    raw = await self.ws.recv()
                    try:
                        msg = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        log.warning("unparsable frame from the listener", extra=fields(cp=self.cp))
                        continue
                    if not isinstance(msg, list) or len(msg) < 3:
                        log.warning("non-OCPP-J frame from the listener", extra=fields(cp=self.cp))
                        continue
                    if msg[0] == 2:
                        await self._not_implemented(msg[1])
                        continue
                    if msg[1] == message_id:
                        self.stats.answers += 1
                        return msg
        except TimeoutError:
            raise SimulationError(
                f"{self.cp}: no answer to {action} within {self.timeout:g} s (--answer-timeout)"
            ) from None

    async def _not_implemented(self, message_id: object) -> None:
        """The simulated chargers implement no CSMS-initiated action."""
        assert self.ws is not None
        self.stats.csms_calls += 1
        error = [
            4,
            message_id,
            "NotImplemented",
            "the simulated charger implements no CSMS-initiated action",
            {},
        ]
        await self.ws.send(orjson.dumps(error), text=True)


class ChargerRunner:
    def __init__(
        self, plan: FleetPlan, charger: Charger, stats: Stats, clock: Clock, gate: asyncio.Semaphore
    ) -> None:
        self.plan = plan
        self.charger = charger
        self.stats = stats
        self.clock = clock
        self.link = Link(plan.options.url, charger, stats, plan.options.answer_timeout, gate)
        self.online = True
        self.queue: list[tuple[Call, Payload]] = []
        self.tx_ids: dict[str, int] = {}
        self.tx_rows: list[dict[str, object]] = []

    async def connect(self) -> None:
        await self.link.open()

    async def run(self) -> None:
        """Boot, then play every event; the link is closed whatever happens."""
        try:
            for call in boot_calls(self.charger, self.plan.window.start):
                await self.send(call, call.build())
            for event in charger_events(self.plan, self.charger):
                await self.clock.wait_for(event.t)
                self.stats.positions[self.charger.index] = event.t
                if isinstance(event, Marker):
                    await self.marker(event)
                    continue
                payload = event.build()
                if self.online:
                    await self.send(event, payload)
                else:
                    self.queue.append((event, payload))
            # Stay connected to the end of the window: a paced run's last close is observed as the
            # window's end, not as the last message's time.
            await self.clock.wait_for(self.plan.window.end)
            self.stats.positions[self.charger.index] = self.plan.window.end
            await self.link.close()
        finally:
            await self.link.drop()

    async def marker(self, event: Marker) -> None:
        if event.kind == "heartbeat":
            if self.online:
                await self.link.call("Heartbeat", {})
        elif event.kind == "offline_start":
            await self.link.drop()
            self.online = False
        elif event.kind == "offline_end":
            await self.link.reopen()
            self.online = True
            queued, self.queue = self.queue, []
            for call, payload in queued:
                await self.send(call, payload)
                self.stats.replayed += 1
        elif event.kind == "reboot":
            await self.link.reopen()
            for call in boot_calls(self.charger, event.t):
                await self.send(call, call.build())

    async def send(self, call: Call, payload: Payload) -> None:
        if call.tx_ref is not None and self.charger.ocpp_version == "1.6":
            tx = self.tx_ids.get(call.tx_ref)
            if tx is None:
                self.stats.skipped_without_transaction_id += 1
                return
            payload = {"transactionId": tx, **payload}
        answer = await self.link.call(call.action, payload)
        first = answer
        if call.retry:
            # The answer is "lost": a real charger cannot tell, so it resends on a new connection.
            await self.link.reopen()
            answer = await self.link.call(call.action, payload)
            self.stats.retries += 1
        self.check(call, answer)
        if call.opens_tx is not None:
            self.bind_transaction(call, first, answer)
        if call.ends_session:
            self.stats.sessions_done += 1

    def check(self, call: Call, answer: list[Any]) -> None:
        if answer[0] == 4:
            code = answer[2] if len(answer) > 2 else "?"
            self.stats.call_errors[f"{call.action}: {code}"] += 1
            return
        result = answer[2] if isinstance(answer[2], dict) else {}
        status = result.get("status") if call.action == "BootNotification" else None
        info = result.get("idTagInfo") or result.get("idTokenInfo")
        if isinstance(info, dict):
            status = info.get("status")
        if status is not None and status != "Accepted":
            # The simulated driver keeps charging: the truth does not depend on the answer.
            self.stats.not_accepted[f"{call.action}: {status}"] += 1

    def bind_transaction(self, call: Call, first: list[Any], answer: list[Any]) -> None:
        sid = call.opens_tx
        assert sid is not None
        tx, first_tx = _transaction_id(answer), _transaction_id(first)
        if call.retry and first_tx != tx:
            self.stats.transaction_id_mismatches += 1
            log.warning(
                "the listener answered a retried StartTransaction with another transactionId",
                extra=fields(cp=self.charger.charge_point_id, first=first_tx, second=tx),
            )
        if tx is not None:
            self.tx_ids[sid] = tx
        info = answer[2].get("idTagInfo", {}) if answer[0] == 3 and isinstance(answer[2], dict) else {}
        connector = int(sid.rsplit("-", 2)[1])
        self.tx_rows.append(
            {
                "session_id": sid,
                "charge_point_id": self.charger.charge_point_id,
                "connector_id": connector,
                "transaction_id": None
                if (first_tx if call.retry else tx) is None
                else str(first_tx if call.retry else tx),
                "retry_transaction_id": str(tx) if call.retry and tx is not None else None,
                "id_tag_status": info.get("status") if isinstance(info, dict) else None,
            }
        )


def _transaction_id(answer: list[Any]) -> int | None:
    if answer[0] != 3 or not isinstance(answer[2], dict):
        return None
    tx = answer[2].get("transactionId")
    return tx if isinstance(tx, int) else None


class Clock:
    """Maps simulated time to the moment a message may leave (speed 0: immediately)."""

    def __init__(self, start: int, speed: float) -> None:
        self.start = start
        self.speed = speed
        self.t0 = 0.0

    def begin(self) -> None:
        self.t0 = asyncio.get_running_loop().time()

    async def wait_for(self, t: int) -> None:
        if self.speed <= 0:
            return
        delay = self.t0 + (t - self.start) / self.speed - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


def _allow_open_files(wanted: int) -> None:
    """One socket per charger: lift the soft open-file limit towards the hard one if needed."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def play(plan: FleetPlan, stats: Stats) -> list[dict[str, object]]:
    """Connect every charger, then play; returns the 1.6 transaction ids the listener assigned."""
    _allow_open_files(len(plan.chargers) + 256)
    clock = Clock(plan.window.start, plan.options.speed)
    gate = asyncio.Semaphore(MAX_HANDSHAKES)
    runners = [ChargerRunner(plan, c, stats, clock, gate) for c in plan.chargers]
    stats.positions = [plan.window.start] * len(runners)
    try:
        async with asyncio.TaskGroup() as tg:
            for r in runners:
                tg.create_task(r.connect())
    except* SimulationError as group:
        await asyncio.gather(*(r.link.drop() for r in runners), return_exceptions=True)
        raise group.exceptions[0] from None
    clock.begin()
    try:
        async with asyncio.TaskGroup() as tg:
            for r in runners:
                tg.create_task(r.run())
    except* SimulationError as group:
        raise group.exceptions[0] from None
    return [row for r in runners for row in r.tx_rows]
