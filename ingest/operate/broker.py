"""Calls across listener processes, through Redis pub/sub (`--operator-broker redis://...`).

Several listeners (`--reuse-port` on one machine, or machines sharing an object store) are one system:
the process whose operator API gets a call for a charger it does not hold publishes the request on
REQUESTS; the process holding the charger's connection answers "accepted" at once on the request's own
reply channel, makes the call (and its raw rows) like a local one, and publishes the outcome there. No
acceptance within ACCEPT_SECONDS means no process holds the charger: 404, recorded like a local miss.
Redis is an existing engine every operator stack has; the protocol on top is two JSON messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import orjson

from ingest.operate.control import CallOutcome, Control
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.operate.broker")

REQUESTS = "ocpp-opendata:operator-calls"
REPLY_PREFIX = "ocpp-opendata:operator-reply:"
ACCEPT_SECONDS = 2.0


class CallBroker:
    def __init__(self, url: str, control: Control) -> None:
        self.url = url
        self.control = control
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        import redis.asyncio as aioredis  # only a listener with --operator-broker needs the client

        self._redis = aioredis.from_url(self.url, socket_connect_timeout=3)
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(REQUESTS)
        self._task = asyncio.create_task(self._serve(pubsub), name="operator-broker")

    async def close(self) -> None:
        for task in [self._task, *self._calls]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _serve(self, pubsub: Any) -> None:
        """Answer the requests for chargers this process holds; ignore the others."""
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: reconnect and go on
                log.warning("operator broker lost", extra=fields(error=str(exc)))
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    pubsub = self._redis.pubsub()
                    await pubsub.subscribe(REQUESTS)
                continue
            if message is None:
                continue
            try:
                request = orjson.loads(message["data"])
            except (orjson.JSONDecodeError, TypeError):
                continue
            if not self.control.holds(request.get("cp", "")):
                continue
            task = asyncio.create_task(self._run(request))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _run(self, request: dict[str, Any]) -> None:
        reply = REPLY_PREFIX + request["id"]
        await self._redis.publish(reply, orjson.dumps({"accepted": self.control.instance}))
        outcome = await self.control.call(
            request["operator"],
            request["cp"],
            request["action"],
            request["payload"],
            float(request["timeout"]),
        )
        body = {"status": outcome.status, "body": outcome.body, "outcome": outcome.outcome}
        await self._redis.publish(reply, orjson.dumps(body))

    async def call(self, operator: str, cp_id: str, action: str, payload: Any, timeout: float) -> CallOutcome:
        """The call made by whichever process holds `cp_id`; a local 404 when none does."""
        request_id = secrets.token_hex(12)
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(REPLY_PREFIX + request_id)
            request = {"id": request_id, "operator": operator, "cp": cp_id, "action": action,
                       "payload": payload, "timeout": timeout}  # fmt: skip
            await self._redis.publish(REQUESTS, orjson.dumps(request))
            accepted = await self._next(pubsub, ACCEPT_SECONDS)
            if accepted is None or "accepted" not in accepted:
                return await self.control.call(operator, cp_id, action, payload, timeout)
            answer = await self._next(pubsub, timeout + 5.0)
            if answer is None:
                return CallOutcome(
                    504, {"error": "the listener holding the charger did not answer"}, "timeout"
                )
            return CallOutcome(int(answer["status"]), answer["body"], str(answer.get("outcome", "")))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

    @staticmethod
    async def _next(pubsub: Any, timeout: float) -> dict[str, Any] | None:
        deadline = asyncio.get_running_loop().time() + timeout
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(left, 1.0))
            if message is not None:
                return orjson.loads(message["data"])  # type: ignore[no-any-return]
        return None
