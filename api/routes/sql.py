"""/v1/sql: one read-only SELECT over the published tables, on the release's locked-down SQL instance."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.errors import ApiError
from api.formats import rows_of
from api.release import Release
from api.routes.common import TableFormat, csv_answer, json_answer
from api.sql_guard import MAX_QUERY_CHARS


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]

    @router.get(
        "/sql",
        summary="One read-only SELECT over the published tables",
        description="Exactly one SELECT statement (DuckDB SQL) over the published tables. No file, network "
        "or "
        "extension access; a time limit (default 5 s) and a row cap (default 10,000; `truncated` says when "
        "it cut the answer); at most 2 queries run at once (429 with Retry-After beyond that).",
    )
    def sql(
        request: Request,
        rel: Rel,
        q: Annotated[str, Query(description="The SELECT statement.", max_length=MAX_QUERY_CHARS)],
        format: Annotated[TableFormat, Query(description="json or csv.")] = TableFormat.json,
    ) -> Response:
        metrics = request.app.state.metrics
        try:
            result = rel.sql.run(q)
        except ApiError as exc:
            metrics.sql["rejected" if exc.status != 429 else "busy"] += 1
            raise
        metrics.sql["truncated" if result.truncated else "ok"] += 1
        cap = rel.sql.limits.row_cap
        headers = {"X-Truncated": "true" if result.truncated else "false", "X-Row-Cap": str(cap)}
        if format is TableFormat.csv:
            return csv_answer(rel, result.table, "query.csv", headers)
        body = {
            "release": rel.id,
            "columns": [{"name": f.name, "type": str(f.type)} for f in result.table.schema],
            "rows": rows_of(result.table),
            "row_count": result.table.num_rows,
            "truncated": result.truncated,
            "row_cap": cap,
            "elapsed_ms": round(result.elapsed * 1000, 1),
        }
        return json_answer(rel, body, headers)
