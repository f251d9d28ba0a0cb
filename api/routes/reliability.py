"""/v1/reliability: the regulatory summary of one local month, for one area or the whole network.

From the published reliability datasets only (definitions: docs/reliability.md): NEVI network
uptime μ over the public ports (Σ(T − (T_outage − T_excluded)) / ΣT), the share of ports above
97 %, and the UK reg. 7 reliability per power class (rapid ≥ 50 kW, other).
"""

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from api.errors import ApiError
from api.release import Release
from api.routes.common import json_answer

MONTH = re.compile(r"^\d{4}-\d{2}$")
NETWORK = "(network)"
NEVI_PCT = 97.0


def _month(raw: str | None, cur: Any) -> dt.date | None:
    if raw is None:
        latest = cur.execute("SELECT max(date) FROM port_uptime_monthly").fetchone()[0]
        return latest
    if not MONTH.match(raw):
        raise ApiError(400, f"month must be YYYY-MM, not {raw[:20]!r}")
    try:
        return dt.date(int(raw[:4]), int(raw[5:]), 1)
    except ValueError as exc:
        raise ApiError(400, f"month must be YYYY-MM, not {raw[:20]!r}") from exc


def summary(rel: Release, area: str | None, month_raw: str | None) -> dict[str, Any]:
    rel.dataset("port_uptime_monthly")  # 404 for a release published before the reliability datasets
    rel.dataset("network_reliability_monthly")
    with rel.cursor() as cur:
        month = _month(month_raw, cur)
        where, params = "date = ?", [month]
        if area is not None:
            where, params = where + " AND area = ?", [*params, area]
        t, o, x, ports, above = cur.execute(
            f"""SELECT sum(period_minutes), sum(outage_minutes), sum(excluded_minutes), count(*),
                       count(*) FILTER (WHERE uptime_pct > {NEVI_PCT})
                FROM port_uptime_monthly WHERE {where}""",
            params,
        ).fetchone()
        uk = cur.execute(
            """SELECT power_class, stations, reliability_pct, meets_uk_reg7, not_working_minutes,
                      total_minutes
               FROM network_reliability_monthly WHERE date = ? AND area = ? ORDER BY power_class""",
            [month, area if area is not None else NETWORK],
        ).fetchall()
    return {
        "release": rel.id,
        "month": month.isoformat()[:7] if month else None,
        "area": area if area is not None else NETWORK,
        "ports": ports,
        "network_uptime_pct": 100.0 * (t - (o - x)) / t if t else None,
        "ports_above_97_pct_share": above / ports if ports else None,
        "uk_reg7": {
            pc: {
                "stations": n,
                "reliability_pct": pct,
                "meets_uk_reg7": meets,
                "not_working_minutes": nw,
                "total_minutes": tot,
            }
            for pc, n, pct, meets, nw, tot in uk
        },
    }


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]
    Area = Annotated[str | None, Query(description="One area; omitted: the whole network.")]
    Month = Annotated[str | None, Query(description="Local month YYYY-MM; omitted: the latest published.")]

    @router.get(
        "/reliability",
        summary="Regulatory reliability summary of a month: NEVI uptime, ports above 97 %, UK reg. 7",
        description="From port_uptime_monthly and network_reliability_monthly (docs/reliability.md). "
        "`uk_reg7.rapid` is the figure regulation 7 asks >= 99 % of (per calendar year).",
    )
    def reliability(rel: Rel, area: Area = None, month: Month = None) -> Response:
        return json_answer(rel, summary(rel, area, month))
