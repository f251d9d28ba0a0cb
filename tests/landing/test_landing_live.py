"""The landing page's live status: a real listener and a real charger change a connector's status, and the
open page shows it in its station table and on its map without being reloaded."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.api.conftest import ApiServer
from tests.landing.conftest import visit
from tests.landing.sync_charger import sync_charger
from tests.support.listener import RunningListener, make_listener

SHOWN_WITHIN_MS = 20_000  # generous for a loaded CI machine; the latency itself is in benchmarks/live.py


@pytest.fixture
def live_listener(published: tuple[Path, str]) -> Iterator[RunningListener]:
    """A real listener writing live snapshots into the data root the landing page's API serves."""
    data_dir, _ = published
    running = make_listener(data_dir, log_name="landing-live-listener.log").start()
    try:
        yield running
    finally:
        running.stop()


def a_public_16_station(data_dir: Path, api: ApiServer) -> tuple[str, int]:
    """A public OCPP 1.6 station of the release with its connector count."""
    served = {s["station_id"] for s in httpx.get(api.url + "/v1/stations").json()["stations"]}
    with (data_dir / "stations.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["id"] in served and row["ocpp_version"] == "1.6" and int(row["connectors"] or 0) >= 2:
                return row["id"], int(row["connectors"])
    raise AssertionError("the simulated city has a public 1.6 station with two connectors")


def test_a_real_chargers_status_change_shows_in_the_table_and_on_the_map_without_a_reload(
    browser: Browser, api: ApiServer, published: tuple[Path, str], live_listener: RunningListener
) -> None:
    station, connectors = a_public_16_station(published[0], api)
    seen = visit(browser, api.url)
    page = seen.page
    try:
        assert seen.state() == "ready"
        # A mark on this document: a reload or navigation would lose it.
        page.evaluate("window.__sameDocument = 'yes'")
        chip = f'#station-table tr[data-station-id="{station}"] .live-chip[data-connector="%d"]'
        ring = f'#map circle.live-ring[data-station-id="{station}"]'
        with sync_charger(live_listener.url, station) as cp:
            for n in range(1, connectors + 1):
                cp.status(n, "Faulted", "GroundFailure")
            for n in range(1, connectors + 1):
                page.wait_for_selector(chip % n + '[data-live-status="OUTOFORDER"]', timeout=SHOWN_WITHIN_MS)
            page.wait_for_selector(ring + '[data-live-status="OUTOFORDER"]', timeout=SHOWN_WITHIN_MS)
            assert "Out of order" in page.inner_text(chip % 1)

            cp.status(1, "Charging")
            page.wait_for_selector(chip % 1 + '[data-live-status="CHARGING"]', timeout=SHOWN_WITHIN_MS)
            # One connector charging, the others faulted: the ring shows the station's best state.
            page.wait_for_selector(ring + '[data-live-status="CHARGING"]', timeout=SHOWN_WITHIN_MS)
            assert page.get_attribute(chip % 2, "data-live-status") == "OUTOFORDER"
            cp.status(2, "Available")
            page.wait_for_selector(ring + '[data-live-status="AVAILABLE"]', timeout=SHOWN_WITHIN_MS)
            assert page.inner_text(chip % 2).endswith("Available")
        assert page.evaluate("window.__sameDocument") == "yes"
        assert "Live connector status" in page.inner_text("#live-note")
        polls = [u for u in seen.requests if u.removeprefix(api.url).startswith("/v1/live/status")]
        assert len(polls) >= 2, "the page polled the live feed"
        assert seen.console_errors == [] and seen.page_errors == [] and seen.failed == []
        assert seen.off_loopback == []
    finally:
        page.close()
