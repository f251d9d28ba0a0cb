"""/v1/quality: what the quality rules withheld from, flagged in or let through (overrides) this release.

Rows of the published `quality_issues` dataset (rules, thresholds and their sources: docs/pipeline.md,
"Quality rules"), filtered by dataset, local date (one `date`, or `from`/`to`), station and rule, as
JSON with distinct-record counts, or as CSV.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.errors import ApiError
from api.formats import page_rows, page_total
from api.query import Where, time_filters
from api.release import Release
from api.routes.common import TableFormat, csv_answer, json_answer, tz_of
from pipelines.published_schema import DATASETS
from pipelines.quality.rules import RULES

TABLE = "quality_issues"
MAX_LIMIT = 10_000
MAX_VALUES = 100
PARAMS = frozenset(
    {"dataset", "date", "from", "to", "station", "station_id", "rule", "action", "limit", "offset", "format"}
)
ACTIONS = ("withheld", "flagged", "overridden")


def _in(where: Where, column: str, values: list[str]) -> None:
    if len(values) > MAX_VALUES:
        raise ApiError(400, f"at most {MAX_VALUES} values of {column!r} at once")
    where.clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
    where.params.extend(values)


def _checked(name: str, values: list[str], allowed: Any) -> list[str]:
    """Values of a closed vocabulary: a typo is a 400 naming the choices, not an empty answer."""
    for v in values:
        if v not in allowed:
            raise ApiError(400, f"unknown {name} {v[:60]!r}; one of: {', '.join(allowed)}")
    return values


def _date(raw: str) -> dt.date:
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise ApiError(400, f"date must be a local date YYYY-MM-DD, not {raw[:40]!r}") from exc


def quality_where(rel: Release, items: list[tuple[str, str]]) -> Where:
    """The WHERE clause of `items` (all query parameters) over quality_issues; 400 on anything unknown."""
    ds = rel.dataset(TABLE)  # 404 for a release published before the quality report existed
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name not in PARAMS:
            raise ApiError(
                400,
                f"{name[:60]!r} is not a parameter of /v1/quality; filters: dataset, date, from, to, "
                "station, rule, action",
            )
        values.setdefault("station" if name == "station_id" else name, []).append(value)
    for name in ("date", "from", "to"):
        if len(values.get(name, [])) > 1:
            raise ApiError(400, f"{name!r} may be given once")
    where = Where()
    if "dataset" in values:
        _in(where, "dataset", _checked("dataset", values["dataset"], DATASETS))
    if "rule" in values:
        _in(where, "rule", _checked("rule", values["rule"], RULES))
    if "action" in values:
        _in(where, "action", _checked("action", values["action"], ACTIONS))
    if "station" in values:
        _in(where, "station_id", values["station"])
    if "date" in values:
        if "from" in values or "to" in values:
            raise ApiError(400, "give either 'date' or 'from'/'to', not both")
        where.clauses.append("date = ?")
        where.params.append(_date(values["date"][0]))
    start, end = values.get("from", [None])[0], values.get("to", [None])[0]
    time_filters(ds, start, end, tz_of(rel), where)
    return where


def record_counts(cur: Any, source: str, params: list[Any]) -> dict[str, int]:
    """Distinct records per action, counted as the manifest counts them
    (`pipelines.quality.report.record_keys`): a record has a row per dataset it affects."""
    counts = dict.fromkeys(ACTIONS, 0)
    for action, n in cur.execute(
        f"""SELECT action, count(DISTINCT record_id) + count(*) FILTER (WHERE record_id IS NULL)
            {source} GROUP BY action""",
        params,
    ).fetchall():
        counts[action] = int(n)
    return counts


def quality_answer(
    rel: Release, items: list[tuple[str, str]], limit: int, offset: int, fmt: TableFormat
) -> Response:
    where = quality_where(rel, items)
    source = f"FROM {TABLE}{where.sql}"
    order = ", ".join(f"{k} ASC NULLS LAST" for k in rel.dataset(TABLE).sort_keys)
    page_sql = f"SELECT * {source} ORDER BY {order}, action LIMIT ? OFFSET ?"
    page_params = [*where.params, limit, offset]
    with rel.cursor() as cur:
        if fmt is TableFormat.csv:
            table = cur.sql(page_sql, params=page_params).to_arrow_table()
            returned = table.num_rows
        else:
            records = page_rows(cur, page_sql, page_params)
            returned = len(records)
            counts = record_counts(cur, source, where.params)
        total = page_total(cur, source, where.params, returned, limit, offset)
    truncated = offset + returned < total
    headers = {"X-Total-Count": str(total), "X-Truncated": "true" if truncated else "false"}
    if fmt is TableFormat.csv:
        return csv_answer(rel, table, "quality.csv", headers)
    body = {
        "release": rel.id,
        "time_zone": rel.timezone,
        "records": counts,
        "total": total,
        "offset": offset,
        "returned": returned,
        "truncated": truncated,
        "rows": records,
    }
    return json_answer(rel, body, headers)


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]
    Many = Annotated[list[str] | None, Query()]

    @router.get(
        "/quality",
        summary="Records the quality rules withheld, flagged or let through by override in this release",
        description="Rows of the quality_issues dataset, one per affected dataset and record. Filters "
        "(repeatable, any value matches): `dataset`, `station` (public stations only), `rule` (ids in "
        "docs/pipeline.md, Quality rules), `action` (withheld, flagged, overridden); `date` is one local "
        "date, `from` (inclusive) and `to` (exclusive) a range of them. `records` counts distinct "
        "records per action over all filtered rows.",
    )
    def quality(
        request: Request,
        rel: Rel,
        dataset: Many = None,
        date: Annotated[str | None, Query(description="One local date, YYYY-MM-DD.")] = None,
        start: Annotated[str | None, Query(alias="from", description="Inclusive local date.")] = None,
        end: Annotated[str | None, Query(alias="to", description="Exclusive local date.")] = None,
        station: Many = None,
        rule: Many = None,
        action: Many = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")] = 1000,
        offset: Annotated[int, Query(ge=0, le=10**9, description="Rows to skip.")] = 0,
        format: Annotated[TableFormat, Query(description="json or csv.")] = TableFormat.json,
    ) -> Response:
        return quality_answer(rel, request.query_params.multi_items(), limit, offset, format)
