"""Extreme dates in `from`/`to` (issue 20, item 7): a 400 with a message or an answer, never a 500."""

from __future__ import annotations

import datetime as dt

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROUTES = (
    "/v1/datasets/station_energy_15min/rows",
    "/v1/datasets/station_usage_daily/rows",
    "/v1/usage?period=month",
    "/v1/usage?period=week",
    "/v1/availability?period=week",
    "/v1/availability?period=month",
)


def test_the_reported_overflowing_dates_get_400_with_a_message(client: httpx.Client) -> None:
    for path, params in (
        ("/v1/datasets/station_energy_15min/rows", {"from": "0001-01-01"}),
        ("/v1/usage", {"period": "month", "to": "9999-12-31"}),
        ("/v1/availability", {"period": "week", "to": "9999-12-31"}),
        ("/v1/usage", {"period": "hour", "from": "0001-01-01T00:00:00+14:00"}),
    ):
        r = client.get(path, params=params)
        assert r.status_code == 400, (path, params, r.status_code, r.text[:300])
        assert "date" in r.json()["error"], r.json()


extreme_days = st.one_of(
    st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(1, 1, 14)),
    st.dates(min_value=dt.date(9999, 12, 1), max_value=dt.date(9999, 12, 31)),
    st.dates(),
)
instants = st.one_of(
    extreme_days.map(dt.date.isoformat),
    st.builds(
        lambda d, h, off: f"{d.isoformat()}T{h:02d}:00:00{off}",
        extreme_days,
        st.integers(0, 23),
        st.sampled_from(["", "Z", "+14:00", "-12:00", "+05:30"]),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES), start=st.one_of(st.none(), instants), end=st.one_of(st.none(), instants)
)
def test_no_date_however_extreme_gets_a_500(
    client: httpx.Client, route: str, start: str | None, end: str | None
) -> None:
    params = {k: v for k, v in (("from", start), ("to", end)) if v is not None}
    r = client.get(route, params=params)
    assert r.status_code in (200, 400), (route, params, r.status_code, r.text[:300])
    if r.status_code == 400:
        assert r.json()["error"]
