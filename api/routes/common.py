"""What every route shares: the release it answers from, answer helpers, parameter types."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.formats import CSV_MEDIA, GEOJSON_MEDIA, JSON_MEDIA, csv_bytes, dumps
from api.release import Release
from pipelines.published_schema import DATASETS

RELEASE_ID_REGEX = r"^\d{8}T\d{6}Z-[0-9a-f]{6}$"

# An enum, so that the OpenAPI document lists the names and generated requests reach real datasets.
Dataset = StrEnum("Dataset", {name: name for name in DATASETS})  # type: ignore[misc]
DatasetName = Annotated[Dataset, Path(description="Dataset name, as listed by /v1/datasets.")]


class TableFormat(StrEnum):
    json = "json"
    csv = "csv"


class RowsFormat(StrEnum):
    json = "json"
    csv = "csv"
    geojson = "geojson"


async def current_release(request: Request) -> AsyncIterator[Release]:
    # Async, so that FastAPI runs it on the event loop: a sync generator dependency costs two thread-pool
    # hops per request (enter and exit), and leasing is a few lock operations that never block for long.
    rel = request.app.state.releases.acquire(None)
    try:
        yield rel
    finally:
        rel.release()


async def pinned_release(
    request: Request,
    release_id: Annotated[
        str, Path(description="A kept release id (see /v1/releases).", pattern=RELEASE_ID_REGEX)
    ],
) -> AsyncIterator[Release]:
    rel = await _acquire_pinned(request, release_id)
    try:
        yield rel
    finally:
        rel.release()


async def _acquire_pinned(request: Request, release_id: str) -> Release:
    """Opening a kept release that is not open yet reads files and opens DuckDB: not on the event loop."""
    releases = request.app.state.releases
    rel = releases.acquire_open(release_id)
    if rel is not None:
        return rel
    return await run_in_threadpool(releases.acquire, release_id)


def base_path(request: Request, rel: Release) -> str:
    """`/v1` for the current release, `/v1/releases/<id>` for a pinned one (links stay in that space)."""
    return f"/v1/releases/{rel.id}" if "release_id" in request.path_params else "/v1"


def pinned_base(rel: Release) -> str:
    return f"/v1/releases/{rel.id}"


def tz_of(rel: Release) -> ZoneInfo:
    return ZoneInfo(rel.timezone)


def json_answer(
    rel: Release,
    body: Any,
    headers: dict[str, str] | None = None,
    media: str = JSON_MEDIA,
    naive_utc: bool = False,
) -> Response:
    return Response(
        dumps(body, naive_utc), media_type=media, headers={"X-Release": rel.id, **(headers or {})}
    )


def geojson_answer(
    rel: Release, body: Any, headers: dict[str, str] | None = None, naive_utc: bool = False
) -> Response:
    return json_answer(rel, body, headers, GEOJSON_MEDIA, naive_utc)


def csv_answer(rel: Release, table: Any, filename: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        csv_bytes(table),
        media_type=CSV_MEDIA,
        headers={
            "X-Release": rel.id,
            "Content-Disposition": f'inline; filename="{filename}"',
            **(headers or {}),
        },
    )
