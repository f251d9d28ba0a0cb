"""The catalogue (`/datasets`, `datapackage.json`, DCAT-AP) and dataset rows with filters and paging."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.catalog import column_docs, iso, quote
from api.errors import ApiError
from api.formats import geojson_features, page_rows, page_total
from api.query import Where, equality_filters, order_clause, select_list, time_filters
from api.release import Release
from api.routes.common import (
    DatasetName,
    RowsFormat,
    base_path,
    csv_answer,
    geojson_answer,
    json_answer,
    pinned_base,
    tz_of,
)
from pipelines.published_schema import DEFAULT_LICENSE

MAX_LIMIT = 10_000
ROWS_PARAMS = frozenset({"from", "to", "order_by", "limit", "offset", "format"})


def _licence(rel: Release) -> Any:
    return rel.datapackage.get("licenses") or [{"name": DEFAULT_LICENSE}]


def _links(base: str, name: str, partitioned: bool) -> dict[str, str]:
    links = {
        "self": f"{base}/datasets/{name}",
        "rows": f"{base}/datasets/{name}/rows",
        "parquet": f"{base}/datasets/{name}/download.parquet",
        "csv": f"{base}/datasets/{name}/download.csv",
    }
    if partitioned:
        links["parquet_partition"] = f"{base}/datasets/{name}/download.parquet?date=YYYY-MM-DD"
    return links


def _summary(rel: Release, base: str, name: str) -> dict[str, Any]:
    ds, stats, res = rel.datasets[name], rel.stats[name], rel.resource(name)
    return {
        "name": name,
        "title": ds.title,
        "description": ds.description,
        "licenses": res.get("licenses") or _licence(rel),
        "temporal_coverage": {"start": iso(stats.start), "end": iso(stats.end), "column": ds.time_column},
        "rows": stats.rows,
        "links": _links(base, name, ds.partitioned),
    }


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]

    @router.get("/datasets", summary="The catalogue of published datasets")
    def list_datasets(request: Request, rel: Rel) -> Response:
        base = base_path(request, rel)
        return json_answer(
            rel,
            {
                "release": rel.id,
                "licenses": _licence(rel),
                "datasets": [_summary(rel, base, name) for name in rel.datasets],
                "links": {"datapackage": f"{base}/datapackage.json", "dcat": f"{base}/dcat.jsonld"},
            },
        )

    @router.get("/datapackage.json", summary="Frictionless Data Package of the release")
    def datapackage(rel: Rel) -> Response:
        return json_answer(rel, rel.datapackage)

    @router.get("/dcat.jsonld", summary="DCAT-AP catalogue (JSON-LD) of the release")
    def dcat(rel: Rel) -> Response:
        return json_answer(rel, rel.dcat, media="application/ld+json")

    @router.get("/manifest.json", summary="What changed in this release since the previous one")
    def manifest(rel: Rel) -> Response:
        return json_answer(rel, rel.manifest)

    @router.get("/datasets/{name}", summary="One dataset: schema, coverage, checksums, download links")
    def dataset(request: Request, name: DatasetName, rel: Rel) -> Response:
        ds, base = rel.dataset(name), base_path(request, rel)
        stats, res = rel.stats[name], rel.resource(name)
        body = {
            **_summary(rel, base, name),
            "time_column": ds.time_column,
            "time_zone": rel.timezone,
            "sort_keys": list(ds.sort_keys),
            "filterable": list(ds.filterable),
            "has_coordinates": ds.has_coordinates,
            "partitioned": ds.partitioned,
            "partition_period": ds.partition_period if ds.partitioned else None,
            "schema": {"fields": column_docs(ds)},
            "checksums": {"bytes": res.get("bytes"), "hash": res.get("hash"), "files": res.get("files")},
            "partitions": [
                {"date": d, "parquet": f"{base}/datasets/{name}/download.parquet?date={d}"}
                for d in stats.partitions
            ],
        }
        return json_answer(rel, body)

    @router.get(
        "/datasets/{name}/rows",
        summary="Rows of a dataset: equality filters, time range, order, stable paging",
        description="Any filterable column of the dataset (see its `filterable` list) is an equality filter; "
        "repeat it to match any of several values. `from` is inclusive, `to` exclusive; dates are local "
        "calendar days, times without an offset are local time. Paging is stable: rows are always ordered "
        "by `order_by` and then the dataset's sort keys, and `next` links to the same release.",
    )
    def rows(
        request: Request,
        name: DatasetName,
        rel: Rel,
        start: Annotated[
            str | None, Query(alias="from", description="Inclusive start (date or time).")
        ] = None,
        end: Annotated[str | None, Query(alias="to", description="Exclusive end (date or time).")] = None,
        order_by: Annotated[
            str | None,
            Query(description="Columns, comma-separated; prefix '-' for descending.", max_length=500),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 100,
        offset: Annotated[int, Query(ge=0, le=10**9, description="Rows to skip.")] = 0,
        format: Annotated[RowsFormat, Query(description="json, csv or geojson.")] = RowsFormat.json,
        station_id: Annotated[str | None, Query(description="Filter (where the dataset has it).")] = None,
        area: Annotated[str | None, Query(description="Filter (where the dataset has it).")] = None,
    ) -> Response:
        return rows_answer(
            rel, name, request.query_params.multi_items(), start, end, order_by, limit, offset, format
        )


def rows_answer(
    rel: Release,
    name: str,
    items: list[tuple[str, str]],
    start: str | None,
    end: str | None,
    order_by: str | None,
    limit: int,
    offset: int,
    format: RowsFormat,
) -> Response:
    """One page of rows; `items` are all query parameters (the filters are those not in ROWS_PARAMS)."""
    name = str(name)  # a Dataset enum member from FastAPI: its repr would show in messages
    ds = rel.dataset(name)
    if format is RowsFormat.geojson and not ds.has_coordinates:
        raise ApiError(400, f"dataset {name!r} has no coordinates: use format=json or csv")
    tz = tz_of(rel)
    where = Where()
    equality_filters(ds, [(k, v) for k, v in items if k not in ROWS_PARAMS], where)
    time_filters(ds, start, end, tz, where)
    order_sql, order_shown = order_clause(ds, order_by, rel.stats[name].stored_in_order)
    source = f"FROM {quote(ds.name)}{where.sql}"
    columns, naive_utc = ("*", False) if format is RowsFormat.csv else select_list(ds)
    page_sql = f"SELECT {columns} {source}{order_sql} LIMIT ? OFFSET ?"
    page_params = [*where.params, limit, offset]
    # Unfiltered, the total is the table's row count, known since the release was opened.
    known = None if where.clauses else rel.stats[name].rows
    page: Any = None
    with rel.cursor() as cur:
        if format is RowsFormat.csv:
            page = cur.sql(page_sql, params=page_params).to_arrow_table()
            returned = page.num_rows
        else:
            records = page_rows(cur, page_sql, page_params)
            returned = len(records)
        total = page_total(cur, source, where.params, returned, limit, offset, known)
    truncated = offset + returned < total
    next_url = None
    if truncated:
        query = [(k, v) for k, v in items if k != "offset"]
        next_url = f"{pinned_base(rel)}/datasets/{name}/rows?" + urlencode(
            [*query, ("offset", offset + returned)]
        )
    headers = {"X-Total-Count": str(total), "X-Truncated": "true" if truncated else "false"}
    if next_url:
        headers["Link"] = f'<{next_url}>; rel="next"'
    meta = {
        "dataset": name,
        "release": rel.id,
        "total": total,
        "offset": offset,
        "limit": limit,
        "returned": returned,
        "truncated": truncated,
        "next": next_url,
        "order_by": order_shown,
    }
    if format is RowsFormat.csv:
        return csv_answer(rel, page, f"{name}.csv", headers)
    if format is RowsFormat.geojson:
        collection = {"type": "FeatureCollection", **meta, "features": geojson_features(records)}
        return geojson_answer(rel, collection, headers, naive_utc)
    return json_answer(rel, {**meta, "rows": records}, headers, naive_utc=naive_utc)
