"""The interactive docs work offline: every file /docs needs comes from this server.

The browser fixtures are the landing-page tests' (Debian's chromium through playwright's driver).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.api.conftest import ApiServer
from tests.landing.conftest import ARTIFACTS, LOOPBACK, browser, playwright  # noqa: F401 - fixtures

# What a docs page links: stylesheets, scripts, icons, and the OpenAPI document it renders.
LINKS = re.compile(r"""(?:\bsrc|\bhref)="([^"]+)"|\burl: '([^']+)'""")
MEDIA_BY_SUFFIX = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


def linked_urls(html: str) -> list[str]:
    return [a or b for a, b in LINKS.findall(html)]


def operations(client: httpx.Client) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return [(method, path) for path, item in paths.items() for method in item if method in METHODS]


def test_the_docs_page_links_only_files_this_server_answers_with_their_media_types(
    client: httpx.Client,
) -> None:
    html = client.get("/docs").text
    urls = linked_urls(html)
    assert len(urls) >= 3
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert not re.search(r"https?://", html), "the docs page names an outside host"
    for url in urls:
        answer = client.get(url)
        suffix = Path(urlsplit(url).path).suffix
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith(MEDIA_BY_SUFFIX[suffix]), url
        assert len(answer.content) > 100, url


def test_the_docs_files_are_the_packaged_swagger_ui_and_kept_for_ever_under_their_hashed_urls(
    client: httpx.Client,
) -> None:
    html = client.get("/docs").text
    script = next(u for u in linked_urls(html) if "swagger-ui-bundle.js" in u)
    first = client.get(script)
    assert b"SwaggerUIBundle" in first.content
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    # The second answer comes from the answer cache, and keeps the route's own policy.
    again = client.get(script)
    assert again.content == first.content and again.headers["cache-control"] == first.headers["cache-control"]
    unversioned = client.get(urlsplit(script).path)
    assert unversioned.status_code == 200 and "immutable" not in unversioned.headers["cache-control"]
    other = client.get("/docs/assets/core.py")
    assert other.status_code == 404 and "swagger-ui-bundle.js" in other.json()["error"]
    assert client.get("/docs/assets/..%2Fcore.py").status_code == 404


@dataclass
class Load:
    page: Page
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def off_loopback(self) -> list[str]:
        # blob: and data: URLs (ReDoc's search worker, inline icons) never leave the browser.
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme in ("http", "https", "ws", "wss") and urlsplit(u).hostname not in LOOPBACK
        ]


def load(browser: Browser, url: str, ready: str) -> Load:  # noqa: F811 - the fixture is passed in
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = Load(page)
    page.on("request", lambda request: seen.requests.append(request.url))
    page.on("console", lambda m: seen.problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: seen.problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: seen.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    page.wait_for_selector(ready, timeout=20_000)
    page.wait_for_load_state("networkidle")
    return seen


@pytest.fixture(scope="module")
def swagger(browser: Browser, api: ApiServer) -> Iterator[Load]:  # noqa: F811
    seen = load(browser, api.url + "/docs", ".opblock")
    ARTIFACTS.mkdir(exist_ok=True)
    seen.page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
    try:
        yield seen
    finally:
        seen.page.close()


def test_swagger_ui_renders_every_operation_offline_without_errors(
    swagger: Load, client: httpx.Client
) -> None:
    shown = swagger.page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.toLowerCase(),"
        " b.querySelector('.opblock-summary-path').getAttribute('data-path')])",
    )
    assert sorted(map(tuple, shown)) == sorted(operations(client))
    assert swagger.problems == [] and swagger.off_loopback == []
    assert any("/docs/assets/swagger-ui-bundle.js" in u for u in swagger.requests)


def test_there_is_no_redoc_page_since_its_bundle_loads_a_logo_from_outside(client: httpx.Client) -> None:
    assert client.get("/redoc").status_code == 404
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 404
