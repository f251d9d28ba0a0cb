"""Routes of the live feeds: /ocpi/2.2.1/locations..., /datex2/v3/{table,status}, /v1/live/status and
the /v1/live/changes Server-Sent Events stream.

Every polled answer carries a strong-enough validator (a weak ETag of its bytes) and Last-Modified (the
newest last_updated it shows), answers If-None-Match / If-Modified-Since with 304, and allows caching
for at most `live_max_age` seconds. Bodies are rendered once per view and kept on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
import pyarrow as pa
from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from api.conditional import NOT_MODIFIED, PRECONDITION_FAILED, evaluate
from api.errors import error_response
from api.formats import CSV_MEDIA, GEOJSON_MEDIA, JSON_MEDIA, csv_bytes, geojson_features
from api.live import datex, ocpi
from api.live.ocpi import OcpiError, Party, etag_of
from api.live.source import LiveSource, status_rows
from api.live.view import LiveView

KEEPALIVE_S = 15.0
SSE_MEDIA = "text/event-stream"
OCPI_PARAMS = ("offset", "limit", "date_from", "date_to")


class LiveFormat(StrEnum):
    json = "json"
    csv = "csv"
    geojson = "geojson"


def _source(request: Request) -> LiveSource:
    return request.app.state.live  # type: ignore[no-any-return]


def _party(request: Request) -> Party:
    return request.app.state.live_party  # type: ignore[no-any-return]


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "").lower() not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


# Compressed bodies by ETag (the ETag names the exact bytes): a changed feed is compressed once, on the
# worker thread of the first request that wants it (zlib lets go of the GIL), not by the gzip layer
# on the event loop for every poller. A few entries: the current answers of each feed and format.
_GZIPPED: OrderedDict[str, bytes] = OrderedDict()
_GZIPPED_ENTRIES = 32
_GZIP_FROM = 1024  # bytes; smaller answers go out as they are, like the gzip layer does


def gzipped(body: bytes, etag: str) -> bytes:
    found = _GZIPPED.get(etag)
    if found is None:
        found = gzip.compress(body, compresslevel=6, mtime=0)
        _GZIPPED[etag] = found
        while len(_GZIPPED) > _GZIPPED_ENTRIES:
            with contextlib.suppress(KeyError):
                _GZIPPED.popitem(last=False)
    return found


def answer(
    request: Request,
    body: bytes,
    etag: str,
    last_modified: datetime,
    media: str,
    headers: dict[str, str] | None = None,
) -> Response:
    common = {
        "ETag": etag,
        "Last-Modified": format_datetime(last_modified.astimezone(UTC), usegmt=True),
        "Cache-Control": f"public, max-age={request.app.state.live_max_age}",
        "Vary": "Accept-Encoding",
        **(headers or {}),
    }
    condition = evaluate(dict(request.headers), etag, last_modified.timestamp())
    if condition == PRECONDITION_FAILED:
        return error_response(412, "precondition failed: If-Match or If-Unmodified-Since", {"ETag": etag})
    if condition == NOT_MODIFIED:
        return Response(status_code=304, headers=common)
    if len(body) >= _GZIP_FROM and _accepts_gzip(request):
        # The gzip layer passes an answer that already has a Content-Encoding through untouched.
        return Response(gzipped(body, etag), media_type=media, headers={**common, "Content-Encoding": "gzip"})
    return Response(body, media_type=media, headers=common)


def cached(view: LiveView, key: Any, render: Callable[[], bytes]) -> tuple[bytes, str]:
    found = view.cache.get(key)
    if found is None:
        body = render()
        found = view.cache[key] = (body, etag_of(body))
    return found  # type: ignore[no-any-return]


def ocpi_error(exc: OcpiError) -> Response:
    body = ocpi.error_body(exc.status_code, exc.message, datetime.now(UTC))
    return Response(
        body, status_code=exc.http_status, media_type=JSON_MEDIA, headers={"Cache-Control": "no-store"}
    )


def _int_param(request: Request, name: str, default: int, low: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 10 or int(raw) < low:
        raise OcpiError(400, 2001, f"{name} must be a whole number of at least {low}, not {raw[:20]!r}")
    return int(raw)


def _ready(request: Request, found: Any) -> bool:
    """True when the answer's bytes (`found`: a cached (body, etag) or Page) need no more work: the
    route can answer on the event loop without a thread-pool hop (about half the cost of a cached
    answer). Anything to render or compress goes to a worker thread instead."""
    if found is None:
        return False
    body, etag = (found.body, found.etag) if isinstance(found, ocpi.Page) else found
    return len(body) < _GZIP_FROM or etag in _GZIPPED or not _accepts_gzip(request)


async def _soon(request: Request, found: Any, make: Callable[[], Response]) -> Response:
    return make() if _ready(request, found) else await asyncio.to_thread(make)


def _ocpi_query(request: Request) -> tuple[int, int, datetime | None, datetime | None]:
    offset = _int_param(request, "offset", 0, 0)
    limit = min(_int_param(request, "limit", ocpi.MAX_LIMIT, 1), ocpi.MAX_LIMIT)
    raw_from, raw_to = request.query_params.get("date_from"), request.query_params.get("date_to")
    date_from = ocpi.parse_ocpi_time("date_from", raw_from) if raw_from else None
    date_to = ocpi.parse_ocpi_time("date_to", raw_to) if raw_to else None
    return offset, limit, date_from, date_to


def _ocpi_list(
    request: Request, view: LiveView, query: tuple[int, int, datetime | None, datetime | None]
) -> Response:
    party = _party(request)
    offset, limit, date_from, date_to = query
    result = ocpi.page(view, party, offset, limit, date_from, date_to)
    headers = {"X-Total-Count": str(result.total), "X-Limit": str(ocpi.MAX_LIMIT)}
    if result.next_offset is not None:
        query = {k: v for k, v in request.query_params.items() if k in OCPI_PARAMS}
        query.update(offset=str(result.next_offset), limit=str(limit))
        url = str(request.url.replace(query=urlencode(query)))
        headers["Link"] = f'<{url}>; rel="next"'
    return answer(request, result.body, result.etag, view.last_modified, JSON_MEDIA, headers)


def _ocpi_object(request: Request, key: tuple[str, ...], find: Callable[[LiveView, Party], Any]) -> Response:
    view = _source(request).view
    obj = find(view, _party(request))
    body, etag = cached(
        view, ("ocpi-object", *key), lambda: ocpi.envelope(orjson.dumps(obj), view.last_modified)
    )
    return answer(request, body, etag, view.last_modified, JSON_MEDIA)


def register(router: APIRouter) -> None:
    @router.get("/ocpi/2.2.1/locations", summary="OCPI 2.2.1 Locations (sender interface, paginated)")
    async def ocpi_locations(
        request: Request,
        offset: Annotated[str | None, Query(description="Index of the first Location (default 0).")] = None,
        limit: Annotated[str | None, Query(description=f"Most Locations (at most {ocpi.MAX_LIMIT}).")] = None,
        date_from: Annotated[str | None, Query(description="last_updated at or after (RFC 3339).")] = None,
        date_to: Annotated[str | None, Query(description="last_updated before (RFC 3339).")] = None,
    ) -> Response:
        try:
            query = _ocpi_query(request)
            view = _source(request).view
            found = view.cache.get(("page", *query))
            return await _soon(request, found, lambda: _ocpi_list(request, view, query))
        except OcpiError as exc:
            return ocpi_error(exc)

    @router.get("/ocpi/2.2.1/locations/{location_id}", summary="One OCPI 2.2.1 Location")
    def ocpi_location(request: Request, location_id: str) -> Response:
        try:
            return _ocpi_object(request, (location_id,), lambda v, p: ocpi.location(v, p, location_id))
        except OcpiError as exc:
            return ocpi_error(exc)

    @router.get("/ocpi/2.2.1/locations/{location_id}/{evse_uid}", summary="One OCPI 2.2.1 EVSE")
    def ocpi_evse(request: Request, location_id: str, evse_uid: str) -> Response:
        try:
            return _ocpi_object(
                request, (location_id, evse_uid), lambda v, p: ocpi.evse(v, p, location_id, evse_uid)
            )
        except OcpiError as exc:
            return ocpi_error(exc)

    @router.get(
        "/ocpi/2.2.1/locations/{location_id}/{evse_uid}/{connector_id}", summary="One OCPI 2.2.1 Connector"
    )
    def ocpi_connector(request: Request, location_id: str, evse_uid: str, connector_id: str) -> Response:
        try:
            return _ocpi_object(
                request,
                (location_id, evse_uid, connector_id),
                lambda v, p: ocpi.connector(v, p, location_id, evse_uid, connector_id),
            )
        except OcpiError as exc:
            return ocpi_error(exc)

    @router.get("/datex2/v3/table", summary="DATEX II v3.5 AFIR EnergyInfrastructureTablePublication (JSON)")
    async def datex_table(request: Request) -> Response:
        view, party = _source(request).view, _party(request)

        def make() -> Response:
            body, etag = cached(
                view, "datex-table", lambda: orjson.dumps(datex.table_publication(view, party))
            )
            return answer(request, body, etag, view.static_since, JSON_MEDIA)

        return await _soon(request, view.cache.get("datex-table"), make)

    @router.get(
        "/datex2/v3/status", summary="DATEX II v3.5 AFIR EnergyInfrastructureStatusPublication (JSON)"
    )
    async def datex_status(request: Request) -> Response:
        view, party = _source(request).view, _party(request)

        def make() -> Response:
            body, etag = cached(
                view, "datex-status", lambda: orjson.dumps(datex.status_publication(view, party))
            )
            return answer(request, body, etag, view.last_modified, JSON_MEDIA)

        return await _soon(request, view.cache.get("datex-status"), make)

    @router.get("/v1/live/status", summary="Live status of every public EVSE (JSON, CSV or GeoJSON)")
    async def live_status(
        request: Request,
        format: Annotated[LiveFormat, Query(description="json, csv or geojson.")] = LiveFormat.json,
    ) -> Response:
        view = _source(request).view
        media = {LiveFormat.json: JSON_MEDIA, LiveFormat.csv: CSV_MEDIA, LiveFormat.geojson: GEOJSON_MEDIA}

        def make() -> Response:
            body, etag = cached(view, ("status", format.value), lambda: _status_body(view, format))
            return answer(request, body, etag, view.last_modified, media[format])

        return await _soon(request, view.cache.get(("status", format.value)), make)

    @router.get(
        "/v1/live/changes",
        summary="Server-Sent Events: a snapshot, then every public status change (resumable: Last-Event-ID)",
        response_class=StreamingResponse,
    )
    async def live_changes(
        request: Request,
        last_event_id: Annotated[
            str | None,
            Query(description="Resume after this event id (for clients that cannot set the header)."),
        ] = None,
    ) -> StreamingResponse:
        source = _source(request)
        resume = request.headers.get("last-event-id") or last_event_id
        return StreamingResponse(
            _events(source, resume),
            media_type=SSE_MEDIA,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )


def _status_body(view: LiveView, format: LiveFormat) -> bytes:
    rows = status_rows(view)
    if format is LiveFormat.csv:
        return csv_bytes(pa.Table.from_pylist(rows, schema=STATUS_SCHEMA))
    generated = ocpi.ocpi_time(view.last_modified)
    if format is LiveFormat.geojson:
        return orjson.dumps(
            {"type": "FeatureCollection", "generated_at": generated, "features": geojson_features(rows)}
        )
    return orjson.dumps({"generated_at": generated, "count": len(rows), "statuses": rows})


STATUS_SCHEMA = pa.schema(
    [
        ("station_id", pa.string()),
        ("name", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("evse_uid", pa.string()),
        ("evse_id", pa.string()),
        ("connector", pa.int64()),
        ("status", pa.string()),
        ("datex_status", pa.string()),
        ("since", pa.string()),
    ]
)


async def _events(source: LiveSource, resume: str | None) -> AsyncIterator[bytes]:
    # Subscribing and computing the first frame happen with no await between them, so no change can
    # fall between the replay (or snapshot) and the queue.
    queue = source.subscribe()
    try:
        first = source.replay_since(resume)
        yield b"retry: 2000\n\n" + (first if first is not None else source.snapshot_frame())
        idle = 0.0
        while not source.closing:
            try:
                # asyncio.timeout, not wait_for: no task per wait (a thousand subscribers wake together).
                async with asyncio.timeout(1.0):
                    item = await queue.get()
            except TimeoutError:
                idle += 1.0
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield b": keep-alive\n\n"
                continue
            if item is None:
                return
            idle = 0.0
            yield item
    finally:
        source.unsubscribe(queue)
