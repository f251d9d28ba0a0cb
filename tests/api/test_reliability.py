"""/v1/reliability over a real HTTP server, against a release the real pipeline published from the
reliability scenario of tests/pipelines/test_reliability.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ocpp_opendata.settings import Settings
from tests.api.conftest import start_api
from tests.pipelines.conftest import data_dir, raw, settings  # noqa: F401 - the pipeline fixtures
from tests.pipelines.helpers import run_days, write_registry
from tests.pipelines.rawdata import RawZone
from tests.pipelines.test_reliability import D1, D2, REGISTRY, fleet


@pytest.fixture
def client(settings: Settings, raw: RawZone) -> Iterator[httpx.Client]:  # noqa: F811
    write_registry(settings.data_dir, REGISTRY)
    fleet(raw)
    release_id = run_days(settings, D1, D2)
    assert release_id
    server = start_api(settings.data_dir)
    try:
        server.wait_for_release(release_id, timeout=30)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            yield c
    finally:
        server.stop()


def test_the_reliability_summary_gives_network_uptime_share_above_97_and_uk_reliability(
    client: httpx.Client,
) -> None:
    body = client.get("/v1/reliability").json()
    assert (body["month"], body["area"], body["ports"]) == ("2026-03", "(network)", 2)
    # Two ports of 2880 observed minutes, 300 + 120 outage minutes (no exclusions declared here).
    assert body["network_uptime_pct"] == pytest.approx(100 * (5760 - 420) / 5760)
    assert body["ports_above_97_pct_share"] == 0.0
    rapid = body["uk_reg7"]["rapid"]
    assert rapid["stations"] == 1 and rapid["meets_uk_reg7"] is False
    # UK reg. 7 counts Faulted and Unavailable minutes only (300 + 90), not the failed session.
    assert rapid["reliability_pct"] == pytest.approx(100 * (5760 - 390) / 5760)
    assert client.get("/v1/reliability", params={"area": "north", "month": "2026-03"}).json()["ports"] == 2
    assert client.get("/v1/reliability", params={"area": "south"}).json()["ports"] == 0


def test_a_malformed_month_is_a_400_with_a_message(client: httpx.Client) -> None:
    r = client.get("/v1/reliability", params={"month": "March"})
    assert r.status_code == 400 and "YYYY-MM" in r.text
