"""/v1/usage and /v1/availability: grouped by station or area and local hour, day, week or month."""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.errors import ApiError
from api.formats import page_rows, page_total
from api.query import Where, as_local_date, equality_filters, out_of_range, parse_instant, time_filters
from api.release import Release
from api.routes.common import TableFormat, csv_answer, json_answer, tz_of
from api.usage import GroupBy, Period, Plan, availability_plan, usage_plan

MAX_LIMIT = 10_000
GROUP_PARAMS = frozenset({"group_by", "period", "from", "to", "limit", "offset", "format"})


def _widen(period: Period, raw: str | None, is_end: bool, rel: Release) -> str | None:
    """Whole periods: `from` moves back to its period's first day, `to` forward to the next period's."""
    if raw is None or period is Period.hour:
        return raw
    name = "to" if is_end else "from"
    day = as_local_date(parse_instant(name, raw, tz_of(rel)), tz_of(rel), name)
    try:
        if period is Period.week:
            first = day - dt.timedelta(days=day.weekday())
            nxt = first + dt.timedelta(days=7)
        elif period is Period.month:
            first = day.replace(day=1)
            nxt = (first + dt.timedelta(days=32)).replace(day=1)
        else:
            return day.isoformat()
    except OverflowError as exc:  # the period after 9999-12 (issue 20, item 7)
        raise out_of_range(name) from exc
    return (first if not is_end or day == first else nxt).isoformat()


def grouped_answer(
    items: list[tuple[str, str]],
    rel: Release,
    kind: str,
    group_by: GroupBy,
    period: Period,
    start: str | None,
    end: str | None,
    limit: int,
    offset: int,
    fmt: TableFormat,
) -> Response:
    """/v1/usage or /v1/availability (`kind`); `items` are all query parameters."""
    filters = [(k, v) for k, v in items if k not in GROUP_PARAMS]
    for name, _ in filters:
        if name not in ("station_id", "area"):
            raise ApiError(400, f"{name[:60]!r} is not a parameter of /v1/{kind}; filters: station_id, area")
    if group_by is GroupBy.area and any(name == "station_id" for name, _ in filters):
        raise ApiError(400, "station_id filters need group_by=station")
    tz = tz_of(rel)
    lo, hi = _widen(period, start, False, rel), _widen(period, end, True, rel)

    def where_for(table: str, column: str) -> Where:
        ds = rel.dataset(table)
        where = Where()
        equality_filters(ds, filters, where)
        time_filters(ds, lo, hi, tz, where, column)
        return where

    plan: Plan = (usage_plan if kind == "usage" else availability_plan)(group_by, period, where_for)
    key = "station_id" if group_by is GroupBy.station else "area"
    page_sql = f"SELECT * FROM ({plan.sql}) ORDER BY {key} NULLS LAST, period_start LIMIT ? OFFSET ?"
    page_params = [*plan.params, limit, offset]
    with rel.cursor() as cur:
        if fmt is TableFormat.csv:
            table = cur.sql(page_sql, params=page_params).to_arrow_table()
            returned = table.num_rows
        else:
            records = page_rows(cur, page_sql, page_params)
            returned = len(records)
        total = page_total(cur, f"FROM ({plan.sql})", plan.params, returned, limit, offset)
    truncated = offset + returned < total
    headers = {"X-Total-Count": str(total), "X-Truncated": "true" if truncated else "false"}
    if fmt is TableFormat.csv:
        return csv_answer(rel, table, f"{kind}.csv", headers)
    body: dict[str, Any] = {
        "release": rel.id,
        "group_by": group_by.value,
        "period": period.value,
        "time_zone": rel.timezone,
        "from": lo,
        "to": hi,
        "total": total,
        "offset": offset,
        "returned": returned,
        "truncated": truncated,
        "rows": records,
    }
    if plan.note:
        body["distinct_users_note"] = plan.note
    return json_answer(rel, body, headers)


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]
    Group = Annotated[GroupBy, Query(description="Group by station or area.")]
    Per = Annotated[Period, Query(description="Local hour, day, ISO week (Monday) or calendar month.")]
    From = Annotated[
        str | None,
        Query(alias="from", description="Inclusive start (date or time), widened to whole periods."),
    ]
    To = Annotated[
        str | None, Query(alias="to", description="Exclusive end (date or time), widened to whole periods.")
    ]
    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
    Offset = Annotated[int, Query(ge=0, le=10**9, description="Rows to skip.")]
    Fmt = Annotated[TableFormat, Query(description="json or csv.")]
    Station = Annotated[str | None, Query(description="Only this station (repeatable).")]
    Area = Annotated[str | None, Query(description="Only this area (repeatable).")]

    @router.get(
        "/usage",
        summary="Energy, sessions, utilisation and all-busy minutes per station or area and period",
        description="Distinct users come only from the published, privacy-suppressed daily and monthly "
        "tables; for hours and weeks (and areas per month) they are null and `distinct_users_note` says why.",
    )
    def usage(
        request: Request,
        rel: Rel,
        group_by: Group = GroupBy.station,
        period: Per = Period.day,
        start: From = None,
        end: To = None,
        limit: Limit = 1000,
        offset: Offset = 0,
        format: Fmt = TableFormat.json,
        station_id: Station = None,
        area: Area = None,
    ) -> Response:
        items = request.query_params.multi_items()
        return grouped_answer(items, rel, "usage", group_by, period, start, end, limit, offset, format)

    @router.get("/availability", summary="Minutes per status and uptime per station or area and period")
    def availability(
        request: Request,
        rel: Rel,
        group_by: Group = GroupBy.station,
        period: Per = Period.day,
        start: From = None,
        end: To = None,
        limit: Limit = 1000,
        offset: Offset = 0,
        format: Fmt = TableFormat.json,
        station_id: Station = None,
        area: Area = None,
    ) -> Response:
        items = request.query_params.multi_items()
        return grouped_answer(items, rel, "availability", group_by, period, start, end, limit, offset, format)
