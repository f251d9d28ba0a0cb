"""Fixtures of the landing-page tests: a real pipeline release, real API servers, headless Chromium.

The browser is Debian's `chromium` (apt), driven by the `playwright` package's bundled driver; no browser
is downloaded. Every request the page makes is recorded, so tests can check that it stays on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from dagster import DagsterInstance
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, Response, sync_playwright

from ocpp_opendata.settings import load_settings
from pipelines import runner
from tests.api.conftest import TIMEZONE, ApiServer, run_pipeline, start_api
from tests.api.published_data import registry
from tests.landing.sync_charger import sync_charger
from tests.support.listener import make_listener

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Visit:
    """One page load, with everything the browser reported while loading it."""

    page: Page
    base_url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def off_loopback(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).hostname not in LOOPBACK]

    def state(self) -> str | None:
        return self.page.eval_on_selector("body", "b => b.dataset.state || null")


def visit(browser: Browser, base_url: str, width: int = 1280) -> Visit:
    """Open `/` and wait until the script has drawn the page (or said why it could not)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    seen = Visit(page, base_url)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400:
            seen.failed.append(f"{response.status} {response.url}")

    def on_failed(request: Request) -> None:
        seen.failed.append(f"{request.failure} {request.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.goto(base_url + "/", wait_until="load")
    page.wait_for_selector("body[data-state]", timeout=15_000)
    # The favicon is requested after load; let it and any late request settle before anyone counts.
    page.wait_for_load_state("networkidle")
    return seen


def _wait_healthy(server: ApiServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.proc.poll() is not None:
            raise RuntimeError(f"API exited with {server.proc.returncode}:\n{server.log()}")
        time.sleep(0.05)
    raise RuntimeError(f"API not healthy within {timeout}s:\n{server.log()}")


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A release from a real pipeline run (simulator → listener → Dagster): (data_dir, release_id).

    One public station also reports an impossible session (60 kWh in an hour on a 22 kW charger), so the
    release withholds records and the page has a quality note to show.
    """
    data_dir, _ = run_pipeline(tmp_path_factory.mktemp("landing-real"), chargers=12, days=2)
    add_impossible_session(data_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", "api-test-pseudonym-key-0123456789")
        mp.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
        settings = load_settings({"data_dir": data_dir, "timezone": TIMEZONE})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
    assert summary.release_id, "the pipeline published nothing"
    return data_dir, summary.release_id


def add_impossible_session(data_dir: Path) -> None:
    """A real listener receives a 1.6 session whose meter says 60 kWh in one hour of simulated day one."""
    station = next(
        s
        for s in registry(data_dir)
        if s["access"] == "public" and s["ocpp_version"] == "1.6" and float(s["max_power_kw"]) <= 22
    )
    listener = make_listener(data_dir, log_name="landing-inject-listener.log").start()
    try:
        with sync_charger(listener.url, station["id"]) as cp:
            start = cp.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "LANDINGMETER1", "meterStart": 0,
                 "timestamp": "2026-03-28T10:00:00Z"},
            )  # fmt: skip
            cp.call(
                "StopTransaction",
                {"transactionId": start["transactionId"], "idTag": "LANDINGMETER1",
                 "meterStop": 60_000, "timestamp": "2026-03-28T11:00:00Z"},
            )  # fmt: skip
    finally:
        listener.stop()


@pytest.fixture(scope="session")
def release_dir(published: tuple[Path, str]) -> Path:
    data_dir, release_id = published
    return data_dir / "published" / "releases" / release_id


@pytest.fixture(scope="session")
def api(published: tuple[Path, str]) -> Iterator[ApiServer]:
    data_dir, release_id = published
    server = start_api(data_dir)
    try:
        server.wait_for_release(release_id, timeout=30)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def empty_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """An API over a data directory where nothing has been published yet."""
    data_dir = tmp_path_factory.mktemp("landing-empty") / "data"
    data_dir.mkdir()
    server = start_api(data_dir)
    try:
        _wait_healthy(server)
        yield server
    finally:
        server.stop()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread while it
# is open, and the asyncio tests of other modules cannot start theirs beside it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def landing(browser: Browser, api: ApiServer) -> Iterator[Visit]:
    """The landing page over the real release, loaded once and kept open; it is saved as a screenshot."""
    seen = visit(browser, api.url)
    ARTIFACTS.mkdir(exist_ok=True)
    seen.page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)
    try:
        yield seen
    finally:
        seen.page.close()


@pytest.fixture
def client(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as c:
        yield c
