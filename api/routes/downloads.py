"""Whole-dataset and per-partition downloads: Parquet from the published files, CSV streamed."""

import datetime as dt
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from api.catalog import quote
from api.conditional import NOT_MODIFIED, PRECONDITION_FAILED, evaluate
from api.errors import ApiError
from api.formats import CSV_MEDIA, UTF8_BOM, csv_stream
from api.ranges import FileAnswer, ServedFile, open_release_file
from api.release import Release
from api.routes.common import DatasetName
from pipelines.published_schema import (
    DOWNLOADS_DIRNAME,
    PARQUET_MEDIA_TYPE,
    PARTITION_KEY,
    Dataset,
    partition_path,
)

CSV_BATCH_ROWS = 8192

PartitionDate = Annotated[
    str | None,
    Query(
        alias="date",
        description="One partition (local date YYYY-MM-DD; for monthly datasets the month's first day).",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
    ),
]


def _partition(rel: Release, ds: Dataset, date: str | None) -> str | None:
    if date is None:
        return None
    if not ds.partitioned:
        raise ApiError(400, f"dataset {ds.name!r} is not partitioned: leave out 'date'")
    try:
        dt.date.fromisoformat(date)
    except ValueError as exc:
        raise ApiError(400, f"'date' is not a valid date: {date!r}") from exc
    if date not in rel.stats[ds.name].partitions:
        raise ApiError(404, f"dataset {ds.name!r} has no partition for {date} in release {rel.id}")
    return date


def _present(rel: Release, target: Path) -> bool:
    if rel.remote is not None:
        return rel.remote.has(PurePosixPath(target.relative_to(rel.root)))
    return target.exists()


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]

    @router.get(
        "/datasets/{name}/download.parquet",
        summary="Parquet file of the whole dataset or one partition (HEAD, Range, ETag)",
        response_class=Response,
        responses={
            200: {"content": {PARQUET_MEDIA_TYPE: {}}},
            206: {"description": "Partial content (Range)."},
            304: {"description": "Not modified (If-None-Match)."},
            416: {"description": "Range not satisfiable."},
        },
    )
    def parquet(request: Request, name: DatasetName, rel: Rel, date: PartitionDate = None) -> Response:
        ds = rel.dataset(name)
        partition = _partition(rel, ds, date)
        if partition is not None:
            target = partition_path(rel.root, name, partition)
            filename = f"{name}-{partition}.parquet"
        elif ds.partitioned:
            target = rel.root / DOWNLOADS_DIRNAME / f"{name}.parquet"
            filename = f"{name}.parquet"
        else:
            target = partition_path(rel.root, name, None)
            if not _present(rel, target):
                target = rel.root / DOWNLOADS_DIRNAME / f"{name}.parquet"
            filename = f"{name}.parquet"
        relative = PurePosixPath(target.relative_to(rel.root))
        missing = f"file of dataset {name!r} not found in release {rel.id}"
        # A remote store's files are streamed from the store (ranges as asked), never copied here first.
        opened: ServedFile = (
            open_release_file(rel.root, relative, missing)
            if rel.remote is None
            else rel.remote.open(relative, missing)
        )
        metrics = request.app.state.metrics
        cache = (
            "public, max-age=31536000, immutable"
            if "release_id" in request.path_params
            else "public, max-age=60"
        )
        return FileAnswer(
            opened,
            PARQUET_MEDIA_TYPE,
            filename,
            {"X-Release": rel.id, "Cache-Control": cache},
            on_bytes=lambda n: metrics.count_file_bytes(name, n),
        )

    @router.get(
        "/datasets/{name}/download.csv",
        summary="CSV of the whole dataset or one partition, streamed",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def csv(
        request: Request,
        name: DatasetName,
        rel: Rel,
        date: PartitionDate = None,
        excel: Annotated[
            bool, Query(description="Excel-friendly: UTF-8 byte order mark and CRLF line ends.")
        ] = False,
    ) -> Response:
        ds = rel.dataset(name)
        partition = _partition(rel, ds, date)
        suffix = f"-{partition}" if partition else ""
        headers = {
            "X-Release": rel.id,
            "Content-Disposition": f'attachment; filename="{name}{suffix}.csv"',
            "Cache-Control": "public, max-age=31536000, immutable"
            if "release_id" in request.path_params
            else "public, max-age=60",
            "ETag": f'W/"{rel.id}-{name}{suffix}-{int(excel)}"',
        }
        condition = evaluate(dict(request.headers), headers["ETag"], None)
        if condition == PRECONDITION_FAILED:
            raise ApiError(412, "precondition failed: If-Match names another file (its ETag is weak)")
        if condition == NOT_MODIFIED:
            return Response(status_code=304, headers=headers)
        if request.scope.get("api.head"):
            return _head_of_stream(CSV_MEDIA, headers)
        where, params = "", []
        if partition is not None:
            where, params = f" WHERE {quote(PARTITION_KEY)} = ?", [dt.date.fromisoformat(partition)]
        order = ", ".join(quote(k) for k in ds.sort_keys)
        sql = f"SELECT * FROM {quote(name)}{where} ORDER BY {order}"
        return StreamingResponse(_csv_body(rel, sql, params, excel), media_type=CSV_MEDIA, headers=headers)


def _head_of_stream(media_type: str, headers: dict[str, str]) -> Response:
    """The headers of a streamed answer without running its query: no Content-Length, as the GET has none.

    An empty Response would claim `Content-Length: 0`, which is false for the body a GET would stream.
    """
    answer = Response(media_type=media_type, headers=headers)
    del answer.headers["content-length"]
    return answer


def _csv_body(rel: Release, sql: str, params: list[Any], excel: bool) -> Any:
    """CSV chunks from a cursor of its own, holding a lease so a swap cannot close the release meanwhile."""
    rel.acquire()
    cur = rel.db.cursor()
    try:
        reader = cur.sql(sql, params=params).to_arrow_reader(CSV_BATCH_ROWS)
        first = True
        for chunk in csv_stream(reader, reader.schema, excel=excel):
            if first and excel and not chunk.startswith(UTF8_BOM):
                chunk = UTF8_BOM + chunk
            first = False
            yield chunk
    finally:
        cur.close()
        rel.release()
