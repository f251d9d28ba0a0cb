"""ASGI layers around the routes: read-only method guard, release-tied answer cache and ETags, gzip.

Order (outermost first): MethodGuard → CORS → AnswerCache → SelectiveGZip → FastLane → routes.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.conditional import NOT_MODIFIED, PRECONDITION_FAILED, decoded, evaluate
from api.errors import error_response
from api.metrics import Metrics

READ_METHODS = ("GET", "HEAD")
PINNED_PREFIX = "/v1/releases/"
# Answers that are streamed or must never be stored: files, live status.
UNCACHED_SUFFIXES = (".parquet", ".csv")
UNCACHED_PATHS = ("/health", "/metrics", "/ping", "/docs", "/openapi.json")
# The live feeds change by the second, not by release, and set their own validators and policy.
UNCACHED_PREFIXES = ("/ocpi/", "/datex2/", "/v1/live/")
MAX_ENTRY_BYTES = 4 * 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"


class MethodGuard:
    """Only GET and HEAD (and CORS preflights) reach the app; HEAD is routed as GET without a body."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        started = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        inner = scope
        if method == "HEAD":
            # A copy: the server keeps seeing HEAD (and sends no body), the routes see GET.
            inner = dict(scope, method="GET")
            inner["api.head"] = True
        if method in READ_METHODS or (method == "OPTIONS" and _is_preflight(scope)):
            await self.app(inner, receive, send_status)
        else:
            answer = error_response(
                405,
                f"method {method[:20]} is not allowed: this API is read-only (GET and HEAD)",
                {"Allow": "GET, HEAD"},
            )
            await answer(scope, receive, send_status)
        self.metrics.observe(method, _route_label(inner), status, time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    """The route template (bounded label cardinality), with the prefix its router was included under."""
    template = getattr(scope.get("route"), "path", None)
    if template is None:
        return "cached" if scope.get("api.cached") else "unmatched"
    path = scope["path"]
    if path.startswith(PINNED_PREFIX) and not template.startswith("/v1"):
        return "/v1/releases/{release_id}" + template
    if path.startswith("/v1/") and not template.startswith("/v1"):
        return "/v1" + template
    return str(template)


def _is_preflight(scope: Scope) -> bool:
    names = {k for k, _ in scope["headers"]}
    return b"origin" in names and b"access-control-request-method" in names


class SelectiveGZip:
    """gzip for everything except Parquet files, whose byte ranges must stay byte ranges."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".parquet"):
            await self.app(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


@dataclass
class Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes


class AnswerCache:
    """ETag and Cache-Control on every answer, and a byte-bounded LRU of the current release's answers.

    Cache-Control is a default: tied to the release (`max_age` on current routes, immutable on pinned
    ones, `no-store` on errors) unless the route set its own, which is kept.

    Keys carry the release id, so a swap makes every stored answer unreachable at once (and frees it).
    Routes name the release they answered from in `X-Release`; an answer computed from a release other
    than the one the key names (a swap happened meanwhile) is sent but not stored. Answers a route itself
    calls immutable (content-addressed files) are the same under every release and are stored too.
    """

    def __init__(
        self,
        app: ASGIApp,
        current_id: Callable[[], str | None],
        metrics: Metrics,
        max_bytes: int,
        max_age: int,
    ) -> None:
        self.app = app
        self.current_id = current_id
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._entries: OrderedDict[tuple[object, ...], Entry] = OrderedDict()
        self._bytes = 0
        self._release: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or _uncached(path):
            await self.app(scope, receive, send)
            return
        request = decoded(scope["headers"])
        gz = "gzip" in request.get("accept-encoding", "")
        rid = self.current_id()
        if rid != self._release:
            self._entries.clear()
            self._bytes = 0
            self._release = rid
        key = (rid, path, scope.get("query_string", b""), gz)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.metrics.cache["hit"] += 1
            scope["api.cached"] = True
            await self._send(send, entry, request)
            return
        self.metrics.cache["miss"] += 1
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    assert start is not None
                    timeless = _immutable(_header(start.get("headers", []), b"cache-control"))
                    body = b"".join(chunks)
                    entry = self._finish(start, body, path, _known_hash(scope, body))
                    answered = _header(entry.headers, b"x-release") or b"-"
                    same = answered == (rid or "").encode() or path.startswith(
                        PINNED_PREFIX + answered.decode()
                    )
                    # A route that calls its answer immutable (a content-addressed file) answers the
                    # same under every release, so it may be kept without naming one.
                    if entry.status == 200 and (same or timeless):
                        self._store(key, entry)
                    await self._send(send, entry, request)

        await self.app(scope, receive, capture)

    def _finish(self, start: Message, body: bytes, path: str, digest: bytes | None = None) -> Entry:
        status = start["status"]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"etag"]
        etag = b""
        if status == 200:
            etag = b'W/"' + (digest or body_hash(body)) + b'"'
            headers.append((b"etag", etag))
        # A route that chose its own policy (content-addressed assets, live status) knows better than
        # the default, which only ties the answer to the release it came from.
        if _header(headers, b"cache-control") is None:
            headers.append((b"cache-control", self._default_policy(status, path)))
        return Entry(status, headers, body, etag)

    def _default_policy(self, status: int, path: str) -> bytes:
        if status != 200:
            return b"no-store"
        if path.startswith(PINNED_PREFIX):
            return IMMUTABLE.encode()
        return f"public, max-age={self.max_age}".encode()

    def _store(self, key: tuple[object, ...], entry: Entry) -> None:
        size = len(entry.body) + 512
        if self.max_bytes <= 0 or size > min(MAX_ENTRY_BYTES, self.max_bytes):
            return
        self._entries[key] = entry
        self._bytes += size
        while self._bytes > self.max_bytes and self._entries:
            _, old = self._entries.popitem(last=False)
            self._bytes -= len(old.body) + 512

    @staticmethod
    async def _send(send: Send, entry: Entry, request: dict[str, str]) -> None:
        condition = None
        if entry.status == 200:
            modified = _header(entry.headers, b"last-modified")
            condition = evaluate(
                request, entry.etag.decode("latin-1"), _seconds(modified) if modified else None
            )
        if condition == PRECONDITION_FAILED:
            answer = error_response(
                412,
                "precondition failed: this answer is not the one If-Match or If-Unmodified-Since names "
                "(its ETag is weak: only If-Match: * matches it; pin a release with /v1/releases/{id}/...)",
                {"ETag": entry.etag.decode("latin-1")},
            )
            await answer({"type": "http"}, _no_receive, send)
            return
        if condition == NOT_MODIFIED:
            headers = [
                (k, v) for k, v in entry.headers if k.lower() not in (b"content-length", b"content-type")
            ]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": entry.status, "headers": entry.headers})
        await send({"type": "http.response.body", "body": entry.body})


# hashlib lets go of the GIL for inputs of 2 KiB or more; on the event loop that is harmful, as getting
# it back means waiting for a worker thread in the middle of converting a query result.
GIL_FREE_CHUNK = 2047


def body_hash(body: bytes) -> bytes:
    """blake2b of `body` (the same digest as one call), fed in chunks small enough to keep the GIL."""
    h = hashlib.blake2b(digest_size=12)
    view = memoryview(body)
    for start in range(0, len(view), GIL_FREE_CHUNK):
        h.update(view[start : start + GIL_FREE_CHUNK])
    return h.hexdigest().encode()


# Set by the fast lane: (body, digest) of its answer, hashed on its worker thread, where hashlib lets go
# of the GIL and runs beside the event loop. Used only for exactly that body (not, say, a gzipped one).
BODY_HASH_KEY = "api.body_hash"


def hash_off_loop(body: bytes) -> bytes:
    """The digest of `body_hash`, in one call: for worker threads, not the event loop."""
    return hashlib.blake2b(body, digest_size=12).hexdigest().encode()


def _known_hash(scope: Scope, body: bytes) -> bytes | None:
    known = scope.get(BODY_HASH_KEY)
    if known is not None and known[0] is body:
        return known[1]  # type: ignore[no-any-return]
    return None


def _uncached(path: str) -> bool:
    return path.endswith(UNCACHED_SUFFIXES) or path in UNCACHED_PATHS or path.startswith(UNCACHED_PREFIXES)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _immutable(policy: bytes | None) -> bool:
    return policy is not None and b"immutable" in policy.lower()


def _seconds(http_date: bytes) -> float | None:
    try:
        return parsedate_to_datetime(http_date.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
