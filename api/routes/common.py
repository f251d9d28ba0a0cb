"""What every route shares: the release it answers from, answer helpers, parameter types."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Path, Request
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


def current_release(request: Request) -> Iterator[Release]:
    rel = request.app.state.releases.acquire(None)
    try:
        yield rel
    finally:
        rel.release()


def pinned_release(
    request: Request,
    release_id: Annotated[
        str, Path(description="A kept release id (see /v1/releases).", pattern=RELEASE_ID_REGEX)
    ],
) -> Iterator[Release]:
    rel = request.app.state.releases.acquire(release_id)
    try:
        yield rel
    finally:
        rel.release()


def base_path(request: Request, rel: Release) -> str:
    """`/v1` for the current release, `/v1/releases/<id>` for a pinned one (links stay in that space)."""
    return f"/v1/releases/{rel.id}" if "release_id" in request.path_params else "/v1"


def pinned_base(rel: Release) -> str:
    return f"/v1/releases/{rel.id}"


def tz_of(rel: Release) -> ZoneInfo:
    return ZoneInfo(rel.timezone)


def json_answer(
    rel: Release, body: Any, headers: dict[str, str] | None = None, media: str = JSON_MEDIA
) -> Response:
    return Response(dumps(body), media_type=media, headers={"X-Release": rel.id, **(headers or {})})


def geojson_answer(rel: Release, body: Any, headers: dict[str, str] | None = None) -> Response:
    return json_answer(rel, body, headers, GEOJSON_MEDIA)


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
