"""The operator API: its own port (loopback by default), bearer tokens, JSON in and out (docs/operate.md).

- `GET /v1/chargers` (`?connected=true|false`, `?status=<OCPP status>`), `GET /v1/chargers/{id}`:
  the live state of every charger the listener processes sharing this data root know (this process's
  own state, fresh, and the others' snapshots in DATA_DIR/live or the store's live/ prefix).
- `POST /v1/chargers/{id}/calls/{Action}` with the OCPP payload as body: a CSMS-initiated CALL,
  answered 200 / 502 (CallError) / 504 (timeout) / 404 / 422 / 409 (ingest/operate/control.py).

Security: every request needs `Authorization: Bearer <token>`; a missing and a wrong token get the same
401 (the token is checked in constant time, tokens.py), failures are counted per client address and
past FAILURES_ALLOWED per FAILURE_WINDOW answered 429 without looking at the token; a `read` token on a
call gets 403. Bodies over MAX_BODY bytes get 413. No CORS headers: browsers of other origins cannot
read the answers. Every denied request is logged with its reason, never with the token.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.operate.tokens import Operator, TokenFile
from ocpp_opendata.live import ChargerState, ocpi_status
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.operate.api")

MAX_BODY = 64 * 1024
FAILURES_ALLOWED = 10
FAILURE_WINDOW = 60.0  # s

ChargerSource = Callable[[], dict[str, ChargerState]]
CallFunction = Callable[[str, str, str, Any], Awaitable[tuple[int, dict[str, Any]]]]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def charger_json(c: ChargerState) -> dict[str, Any]:
    return {
        "charge_point_id": c.charge_point_id,
        "ocpp_version": c.ocpp_version,
        "connected": c.connected,
        "connected_since": c.connected_since,
        "last_seen": c.last_seen,
        "vendor": c.vendor,
        "model": c.model,
        "firmware_version": c.firmware_version,
        "connectors": [
            {
                "evse_id": x.evse_id,
                "connector_id": x.connector_id,
                "status": x.status,
                "ocpi_status": ocpi_status(x.status, offline=not c.connected),
                "error_code": x.error_code,
                "updated_at": x.updated_at,
            }
            for x in sorted(c.connectors, key=lambda x: (x.evse_id, x.connector_id))
        ],
    }


class FailureLimiter:
    """Failed authentications per client address, in a sliding window."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, client: str) -> bool:
        q = self._failures.get(client)
        now = time.monotonic()
        while q and now - q[0] > FAILURE_WINDOW:
            q.popleft()
        return bool(q) and len(q) >= FAILURES_ALLOWED

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded: forget the oldest addresses
            self._failures.pop(next(iter(self._failures)))


def operator_app(tokens: TokenFile, chargers: ChargerSource, call: CallFunction) -> Starlette:
    limiter = FailureLimiter()

    def authenticate(request: Request) -> Operator | Response:
        client = request.client.host if request.client else "-"
        if limiter.blocked(client):
            log.warning("operator request denied", extra=fields(reason="rate_limited", client=client))
            return _json(
                429, {"error": "too many failed authentications; wait a minute"}, {"Retry-After": "60"}
            )
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        operator = tokens.operator(token.strip() if scheme.lower() == "bearer" else None)
        if operator is None:
            limiter.failed(client)
            reason = "no_token" if not header else "bad_token"
            log.warning(
                "operator request denied", extra=fields(reason=reason, client=client, path=request.url.path)
            )
            return _json(401, {"error": "a valid operator token is required"}, {"WWW-Authenticate": "Bearer"})
        return operator

    async def list_chargers(request: Request) -> Response:
        who = authenticate(request)
        if isinstance(who, Response):
            return who
        connected = request.query_params.get("connected")
        if connected not in (None, "true", "false"):
            return _json(400, {"error": "connected: true or false"})
        status = request.query_params.get("status")
        found = []
        for c in sorted(chargers().values(), key=lambda c: c.charge_point_id):
            if connected is not None and c.connected != (connected == "true"):
                continue
            if status is not None and not any(x.status == status for x in c.connectors):
                continue
            found.append(charger_json(c))
        return _json(200, {"chargers": found})

    async def one_charger(request: Request) -> Response:
        who = authenticate(request)
        if isinstance(who, Response):
            return who
        cp_id = request.path_params["charge_point_id"]
        charger = chargers().get(cp_id)
        if charger is None:
            return _json(404, {"error": f"no charger {cp_id!r} is known"})
        return _json(200, charger_json(charger))

    async def send_call(request: Request) -> Response:
        who = authenticate(request)
        if isinstance(who, Response):
            return who
        cp_id, action = request.path_params["charge_point_id"], request.path_params["action"]
        if not who.may_control:
            log.warning(
                "operator request denied",
                extra=fields(reason="read_token_on_call", operator=who.name, charger=cp_id, action=action),
            )
            return _json(
                403, {"error": f"operator {who.name!r} has a read token; calls need a control token"}
            )
        length = request.headers.get("content-length")
        too_big = length is not None and (not length.isdigit() or int(length) > MAX_BODY)
        body = b""
        if not too_big:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    too_big = True
                    break
        if too_big:
            log.warning("operator request denied", extra=fields(reason="body_too_large", operator=who.name))
            return _json(413, {"error": f"the body is limited to {MAX_BODY} bytes"})
        try:
            payload = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return _json(400, {"error": f"the body is not JSON: {exc}"})
        status, answer = await call(who.name, cp_id, action, payload)
        return _json(status, answer)

    async def not_found(request: Request, exc: Exception) -> Response:
        who = authenticate(request)
        if isinstance(who, Response):
            return who
        return _json(404, {"error": f"no such resource: {request.url.path[:200]}"})

    async def not_allowed(request: Request, exc: Exception) -> Response:
        who = authenticate(request)
        if isinstance(who, Response):
            return who
        return _json(405, {"error": "method not allowed"})

    routes = [
        Route("/v1/chargers", list_chargers, methods=["GET"]),
        Route("/v1/chargers/{charge_point_id}", one_charger, methods=["GET"]),
        Route("/v1/chargers/{charge_point_id}/calls/{action}", send_call, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
