"""/v1/stations: the public stations, as JSON or GeoJSON."""

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from api.catalog import quote
from api.errors import ApiError
from api.formats import geojson_features, page_rows
from api.query import Where, equality_filters
from api.release import Release
from api.routes.common import geojson_answer, json_answer

STATION_PARAMS = frozenset({"format"})


class StationsFormat(StrEnum):
    json = "json"
    geojson = "geojson"


def register(router: APIRouter, release: Any) -> None:
    Rel = Annotated[Release, Depends(release)]

    @router.get("/stations", summary="Public charging stations (JSON or GeoJSON)")
    def stations(
        request: Request,
        rel: Rel,
        format: Annotated[StationsFormat, Query(description="json or geojson.")] = StationsFormat.json,
        area: Annotated[str | None, Query(description="Only this area (repeatable).")] = None,
        station_id: Annotated[str | None, Query(description="Only this station (repeatable).")] = None,
    ) -> Response:
        ds = rel.dataset("stations")
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in STATION_PARAMS]
        where = Where()
        equality_filters(ds, params, where)
        order = ", ".join(quote(k) for k in ds.sort_keys)
        with rel.cursor() as cur:
            records = page_rows(cur, f"SELECT * FROM stations{where.sql} ORDER BY {order}", where.params)
        if format is StationsFormat.geojson:
            return geojson_answer(
                rel, {"type": "FeatureCollection", "release": rel.id, "features": geojson_features(records)}
            )
        if not records and params and any(k == "station_id" for k, _ in params):
            raise ApiError(404, "no public station with that id in this release")
        return json_answer(rel, {"release": rel.id, "count": len(records), "stations": records})
