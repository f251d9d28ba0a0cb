"""/v1/datasets/{name}/rows: filters, time range, order, stable paging, totals, formats, bad input."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pyarrow.compute as pc

from tests.api.conftest import TIMEZONE, ApiServer
from tests.api.published_data import first, rows, table


def test_equality_and_time_filters_select_exactly_the_matching_rows(
    client: httpx.Client, release_dir: Path
) -> None:
    sessions = table(release_dir, "charging_sessions")
    station = first(release_dir, "charging_sessions", "station_id")
    plug_ins = sorted(sessions.column("plug_in").to_pylist())
    lo, hi = plug_ins[len(plug_ins) // 4], plug_ins[3 * len(plug_ins) // 4]
    mask = pc.and_(
        pc.and_(pc.equal(sessions["station_id"], station), pc.greater_equal(sessions["plug_in"], lo)),
        pc.less(sessions["plug_in"], hi),
    )
    expected = sorted(sessions.filter(mask).column("session_id").to_pylist())
    local_hi = hi.astimezone(ZoneInfo(TIMEZONE)).replace(tzinfo=None).isoformat()  # no offset: local time
    r = client.get(
        "/v1/datasets/charging_sessions/rows",
        params={"station_id": station, "from": lo.isoformat(), "to": local_hi, "limit": 10000},
    )
    body = r.json()
    assert expected and sorted(row["session_id"] for row in body["rows"]) == expected
    assert body["total"] == len(expected) and body["truncated"] is False
    assert r.headers["x-total-count"] == str(len(expected))


def test_a_local_date_range_uses_the_configured_time_zone(client: httpx.Client, release_dir: Path) -> None:
    name = "station_availability_hourly"
    station = first(release_dir, name, "station_id")
    day = max(r["date"] for r in rows(release_dir, name))
    expected = [r for r in rows(release_dir, name) if r["station_id"] == station and r["date"] == day]
    got = client.get(
        f"/v1/datasets/{name}/rows",
        params={"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat(), "station_id": station},
    ).json()["rows"]
    assert len(got) == len(expected) > 0 and {r["date"] for r in got} == {day.isoformat()}
    tz = ZoneInfo(TIMEZONE)
    midnight, next_midnight = (datetime.combine(d, time(), tz) for d in (day, day + timedelta(days=1)))
    assert all(midnight <= datetime.fromisoformat(r["hour_start"]) < next_midnight for r in got)


def test_paging_is_stable_and_complete_and_states_truncation(client: httpx.Client, release_dir: Path) -> None:
    name = "station_availability_hourly"
    full = client.get(f"/v1/datasets/{name}/rows", params={"limit": 10000, "order_by": "-occupied_minutes"})
    pages, url = [], f"/v1/datasets/{name}/rows?limit=100&order_by=-occupied_minutes"
    while url:
        r = client.get(url)
        body = r.json()
        pages.extend(body["rows"])
        assert r.headers["x-truncated"] == ("true" if body["next"] else "false")
        assert body["truncated"] == bool(body["next"])
        url = body["next"]
    assert len(pages) == table(release_dir, name).num_rows > 100
    assert pages == full.json()["rows"]
    occupied = [row["occupied_minutes"] for row in pages]
    assert occupied == sorted(occupied, reverse=True)


def test_csv_and_geojson_formats_carry_the_same_rows(client: httpx.Client, release_dir: Path) -> None:
    area = first(release_dir, "stations", "area")
    as_json = client.get("/v1/datasets/stations/rows", params={"area": area}).json()["rows"]
    as_csv = client.get("/v1/datasets/stations/rows", params={"area": area, "format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert [r["station_id"] for r in csv.DictReader(io.StringIO(as_csv.text))] == [
        r["station_id"] for r in as_json
    ]
    geo = client.get("/v1/datasets/stations/rows", params={"area": area, "format": "geojson"}).json()
    assert geo["type"] == "FeatureCollection" and geo["features"]
    assert [f["geometry"]["coordinates"] for f in geo["features"]] == [
        [r["longitude"], r["latitude"]] for r in as_json
    ]


def test_bad_row_requests_get_400_naming_the_problem(client: httpx.Client, api: ApiServer) -> None:
    cases = {
        "/v1/datasets/stations/rows?colour=red": "colour",
        "/v1/datasets/stations/rows?from=2026-01-01": "no time column",
        "/v1/datasets/charging_sessions/rows?from=yesterday": "from",
        "/v1/datasets/charging_sessions/rows?order_by=secret": "secret",
        "/v1/datasets/charging_sessions/rows?format=geojson": "coordinates",
        "/v1/datasets/charging_sessions/rows?limit=10001": "limit",
        "/v1/datasets/charging_sessions/rows?connector_id=one": "integer",
        "/v1/datasets/charging_sessions/rows?from=2026-10-30&to=2026-10-29": "later",
    }
    for path, word in cases.items():
        r = client.get(path)
        assert r.status_code == 400, path
        assert word in r.json()["error"], (path, r.json())
        assert str(api.data_dir) not in r.text
