"""A fast lane for the hottest read routes (`/rows`, `/usage`, `/availability`), in front of FastAPI.

FastAPI's per-request machinery (matching ~40 routes, solving dependencies, validating ten query
parameters one Pydantic field at a time, a thread-pool hop through anyio) costs about 0.4 ms of the
event loop per request, as much as the DuckDB query of a 100-row page. This layer recognises plainly
valid requests of those routes, parses their few parameters itself and calls the very same answer
functions the routes call (`rows_answer`, `grouped_answer`), running them on a small thread pool of its
own. Anything it is not sure about (an unknown dataset, a malformed number, a repeated parameter, HEAD,
a kept release that is not open yet) goes to FastAPI unchanged, so validation errors, the OpenAPI
document and every other behaviour stay FastAPI's.

Few threads on purpose: the answers are CPU-bound and the GIL is shared, so more threads than cores only
add contention (DuckDB takes the GIL back to check for signals while it runs a query). The threads are the
lane's own (`LanePool`) rather than an executor's: `run_in_executor` wraps every call in a
concurrent.futures.Future with its own condition variable and chains it to an asyncio future through two
callbacks, all on the GIL that the answers need.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import re
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, error_response
from api.middleware import BODY_HASH_KEY, hash_off_loop
from api.release import Release, ReleaseManager
from api.routes.common import RELEASE_ID_REGEX, RowsFormat, TableFormat
from api.routes.datasets import MAX_LIMIT as ROWS_MAX_LIMIT
from api.routes.datasets import rows_answer
from api.routes.usage import MAX_LIMIT as GROUP_MAX_LIMIT
from api.routes.usage import grouped_answer
from api.usage import GroupBy, Period

_PREFIX = r"^/v1(?:/releases/(?P<release>[^/]+))?"
ROWS_PATH = re.compile(_PREFIX + r"/datasets/(?P<name>[^/]+)/rows$")
GROUPED_PATH = re.compile(_PREFIX + r"/(?P<kind>usage|availability)$")
RELEASE_ID = re.compile(RELEASE_ID_REGEX)
DIGITS = re.compile(r"^[0-9]{1,10}$")
MAX_OFFSET = 10**9
MAX_ORDER_BY_CHARS = 500
LANE_THREADS = 2


class NotForTheLane(Exception):
    """The request needs FastAPI's own handling (validation, errors, opening a kept release)."""


def _scalars(items: list[tuple[str, str]], names: frozenset[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in items:
        if key in names:
            if key in found:
                raise NotForTheLane
            found[key] = value
    return found


def _int(raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not DIGITS.match(raw):
        raise NotForTheLane
    value = int(raw)
    if not low <= value <= high:
        raise NotForTheLane
    return value


def _choice(raw: str | None, kind: Any, default: Any) -> Any:
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise NotForTheLane from None


ROWS_SCALARS = frozenset({"from", "to", "order_by", "limit", "offset", "format"})
GROUP_SCALARS = frozenset({"group_by", "period", "from", "to", "limit", "offset", "format"})


def rows_call(rel: Release, name: str, items: list[tuple[str, str]]) -> Callable[[], Response]:
    if name not in rel.datasets:
        raise NotForTheLane
    p = _scalars(items, ROWS_SCALARS)
    order_by = p.get("order_by")
    if order_by is not None and len(order_by) > MAX_ORDER_BY_CHARS:
        raise NotForTheLane
    return functools.partial(
        rows_answer,
        rel,
        name,
        items,
        p.get("from"),
        p.get("to"),
        order_by,
        _int(p.get("limit"), 100, 1, ROWS_MAX_LIMIT),
        _int(p.get("offset"), 0, 0, MAX_OFFSET),
        _choice(p.get("format"), RowsFormat, RowsFormat.json),
    )


def grouped_call(rel: Release, kind: str, items: list[tuple[str, str]]) -> Callable[[], Response]:
    p = _scalars(items, GROUP_SCALARS)
    return functools.partial(
        grouped_answer,
        items,
        rel,
        kind,
        _choice(p.get("group_by"), GroupBy, GroupBy.station),
        _choice(p.get("period"), Period, Period.day),
        p.get("from"),
        p.get("to"),
        _int(p.get("limit"), 1000, 1, GROUP_MAX_LIMIT),
        _int(p.get("offset"), 0, 0, MAX_OFFSET),
        _choice(p.get("format"), TableFormat, TableFormat.json),
    )


class FastLane:
    """Answers plainly valid GETs of the hot routes itself; passes everything else to `app`."""

    def __init__(self, app: ASGIApp, releases: ReleaseManager, pool: LanePool) -> None:
        self.app = app
        self.releases = releases
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("api.head"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        rows = ROWS_PATH.match(path)
        match = rows or GROUPED_PATH.match(path)
        release_id = match.group("release") if match else None
        if match is None or (release_id is not None and not RELEASE_ID.match(release_id)):
            await self.app(scope, receive, send)
            return
        try:
            rel = self.releases.acquire_open(release_id)
        except ApiError:
            rel = None  # no release yet: FastAPI says so
        if rel is None:
            await self.app(scope, receive, send)
            return
        items = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        try:
            if rows is not None:
                call = rows_call(rel, match.group("name"), items)
            else:
                call = grouped_call(rel, match.group("kind"), items)
        except NotForTheLane:
            rel.release()
            await self.app(scope, receive, send)
            return
        scope["route"] = SimpleNamespace(path=_template(rows is not None, path, release_id))
        try:
            answer = await self.pool.run(rel, functools.partial(_hashed, call, scope))
        except ApiError as exc:
            answer = error_response(exc.status, exc.message, exc.headers)
        await answer(scope, receive, send)


Job = tuple[Release, Callable[[], Response], asyncio.AbstractEventLoop, "asyncio.Future[Response]"]


class LanePool:
    """The lane's worker threads: each call runs on one of them and settles an asyncio future with a
    single `call_soon_threadsafe`.

    A call always ends the release's lease in the worker, even when the request was cancelled meanwhile:
    the release stays open until its query is done.
    """

    def __init__(self, threads: int = LANE_THREADS) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"api-lane_{i}", daemon=True) for i in range(threads)
        ]
        for t in self._threads:
            t.start()

    def run(self, rel: Release, call: Callable[[], Response]) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self._jobs.put((rel, call, loop, future))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            rel, call, loop, future = job
            try:
                result, error = call(), None
            except BaseException as exc:  # handed to the awaiting request, as an executor would
                result, error = None, exc
            finally:
                rel.release()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for the answer any more
                loop.call_soon_threadsafe(_settle, future, result, error)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stops the workers after the calls queued so far (or, with `cancel_futures`, after the ones
        running now; the others are cancelled and their leases ended)."""
        if cancel_futures:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    rel, _, loop, future = job
                    rel.release()
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(future.cancel)
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for t in self._threads:
                t.join()


def _hashed(call: Callable[[], Response], scope: Scope) -> Response:
    """`call`'s answer, with the hash of its body for the ETag (see `middleware.BODY_HASH_KEY`)."""
    answer = call()
    body = answer.body
    if isinstance(body, bytes):
        scope[BODY_HASH_KEY] = (body, hash_off_loop(body))
    return answer


def _settle(future: asyncio.Future[Response], result: Response | None, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away; the answer is dropped
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def new_pool() -> LanePool:
    return LanePool(LANE_THREADS)


def _template(is_rows: bool, path: str, release_id: str | None) -> str:
    """The route template FastAPI would have matched, for the metrics' route label."""
    tail = "/datasets/{name}/rows" if is_rows else path[path.rindex("/") :]
    return ("/v1/releases/{release_id}" if release_id is not None else "/v1") + tail
