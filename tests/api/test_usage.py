"""/v1/usage, /v1/availability and /v1/stations against the published tables they are built from."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.api.conftest import TIMEZONE
from tests.api.published_data import first, rows


def test_daily_usage_per_station_is_the_published_daily_table(
    client: httpx.Client, release_dir: Path
) -> None:
    station = first(release_dir, "station_usage_daily", "station_id")
    daily = [r for r in rows(release_dir, "station_usage_daily") if r["station_id"] == station]
    body = client.get("/v1/usage", params={"station_id": station, "period": "day"}).json()
    assert [
        (r["period_start"], r["sessions"], r["energy_kwh"], r["distinct_users"]) for r in body["rows"]
    ] == [(r["date"].isoformat(), r["sessions"], r["energy_kwh"], r["distinct_users"]) for r in daily]
    for got, published in zip(body["rows"], daily, strict=True):
        assert (got["distinct_users_note"] is not None) == published["distinct_users_suppressed"]


def test_weekly_usage_sums_the_days_of_each_iso_week_and_withholds_distinct_users(
    client: httpx.Client, release_dir: Path
) -> None:
    area = first(release_dir, "area_usage_daily", "area")
    sums: dict[dt.date, float] = defaultdict(float)
    for r in rows(release_dir, "area_usage_daily"):
        if r["area"] == area:
            sums[r["date"] - dt.timedelta(days=r["date"].weekday())] += r["energy_kwh"]
    body = client.get("/v1/usage", params={"group_by": "area", "area": area, "period": "week"}).json()
    assert {r["period_start"]: r["energy_kwh"] for r in body["rows"]} == pytest.approx(
        {k.isoformat(): v for k, v in sums.items()}
    )
    assert (
        all(r["distinct_users"] is None for r in body["rows"])
        and "per day and month" in body["distinct_users_note"]
    )


def test_hourly_usage_uses_local_hours_and_states_why_distinct_users_are_null(
    client: httpx.Client, release_dir: Path
) -> None:
    station = first(release_dir, "station_energy_15min", "station_id")
    day = first(release_dir, "station_energy_15min", "date")
    energy = sum(
        r["energy_kwh"]
        for r in rows(release_dir, "station_energy_15min")
        if r["station_id"] == station and r["date"] == day
    )
    tz = ZoneInfo(TIMEZONE)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    body = client.get(
        "/v1/usage",
        params={
            "station_id": station,
            "period": "hour",
            "from": day.isoformat(),
            "to": end.date().isoformat(),
        },
    ).json()
    starts = [dt.datetime.fromisoformat(r["period_start"]) for r in body["rows"]]
    assert starts and all(start <= s < end for s in starts) and len(set(starts)) == len(starts)
    assert len(starts) <= (end - start) / dt.timedelta(hours=1)
    assert sum(r["energy_kwh"] for r in body["rows"]) == pytest.approx(energy)
    assert all(r["distinct_users"] is None for r in body["rows"])


def test_monthly_usage_per_station_comes_from_the_monthly_table(
    client: httpx.Client, release_dir: Path
) -> None:
    station = first(release_dir, "station_usage_monthly", "station_id")
    monthly = {
        r["date"].isoformat(): (r["sessions"], r["distinct_users"])
        for r in rows(release_dir, "station_usage_monthly")
        if r["station_id"] == station
    }
    body = client.get("/v1/usage", params={"station_id": station, "period": "month"}).json()
    assert {r["period_start"]: (r["sessions"], r["distinct_users"]) for r in body["rows"]} == monthly


def test_availability_sums_status_minutes_and_computes_uptime(
    client: httpx.Client, release_dir: Path
) -> None:
    station = first(release_dir, "station_availability_hourly", "station_id")
    day = first(release_dir, "station_availability_hourly", "date")
    hours = [
        r
        for r in rows(release_dir, "station_availability_hourly")
        if r["station_id"] == station and r["date"] == day
    ]
    body = client.get(
        "/v1/availability",
        params={
            "station_id": station,
            "from": day.isoformat(),
            "to": (day + dt.timedelta(days=1)).isoformat(),
        },
    ).json()
    (row,) = body["rows"]
    assert row["occupied_minutes"] == pytest.approx(sum(r["occupied_minutes"] for r in hours))
    up = sum(r["available_minutes"] + r["occupied_minutes"] + r["reserved_minutes"] for r in hours)
    statuses = ("available", "occupied", "reserved", "unavailable", "faulted", "offline", "unknown")
    total = sum(r[f"{s}_minutes"] for r in hours for s in statuses)
    assert row["uptime"] == pytest.approx(up / total)


def test_usage_rejects_parameters_that_do_not_apply(client: httpx.Client) -> None:
    assert "group_by=station" in client.get("/v1/usage?group_by=area&station_id=x").json()["error"]
    assert client.get("/v1/usage?period=fortnight").status_code == 400
    assert "vendor" in client.get("/v1/availability?vendor=acme").json()["error"]


def test_stations_come_as_json_and_geojson(client: httpx.Client, release_dir: Path) -> None:
    published = rows(release_dir, "stations")
    body = client.get("/v1/stations").json()
    assert [s["station_id"] for s in body["stations"]] == [s["station_id"] for s in published]
    geo = client.get("/v1/stations", params={"format": "geojson"}).json()
    assert geo["features"][0]["geometry"] == {
        "type": "Point",
        "coordinates": [published[0]["longitude"], published[0]["latitude"]],
    }
