"""HTTP behaviour: read-only methods, CORS, gzip, release-tied caching, health and metrics."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.api.published_data import first

IMMUTABLE = "public, max-age=31536000, immutable"


def test_only_get_and_head_are_allowed(client: httpx.Client) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE", "TRACE"):
        for path in ("/v1/datasets", "/v1/sql?q=select%201", "/nowhere"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert "read-only" in r.json()["error"] and r.headers["allow"] == "GET, HEAD"
    assert client.head("/v1/datasets").status_code == 200


def test_cors_is_open_for_get_and_preflights_allow_only_reads(client: httpx.Client) -> None:
    r = client.get("/v1/datasets", headers={"Origin": "https://example.org"})
    assert r.headers["access-control-allow-origin"] == "*"
    pre = client.options(
        "/v1/datasets", headers={"Origin": "https://example.org", "Access-Control-Request-Method": "GET"}
    )
    assert pre.status_code == 200 and "GET" in pre.headers["access-control-allow-methods"]
    assert "POST" not in pre.headers["access-control-allow-methods"]


def test_answers_are_gzipped_when_the_client_accepts_it(client: httpx.Client) -> None:
    url = "/v1/datasets/station_availability_hourly/rows?limit=300"
    r = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and r.json()["returned"] == 300
    assert len(r.content) > int(r.headers["content-length"])


def test_answers_carry_release_tied_etags_and_revalidate_to_304(
    client: httpx.Client, release_dir: Path
) -> None:
    url = f"/v1/usage?period=day&station_id={first(release_dir, 'station_usage_daily', 'station_id')}"
    answer = client.get(url)
    assert answer.headers["x-release"] == release_dir.name
    assert answer.headers["cache-control"].startswith("public, max-age=")
    again = client.get(url, headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(url).content == answer.content


def test_health_and_metrics_report_the_release_and_counters(client: httpx.Client, release_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok", "release": release_dir.name}
    client.get("/v1/datasets")
    client.get("/v1/datasets")
    text = client.get("/metrics").text
    assert f'api_release_info{{release="{release_dir.name}"}} 1' in text
    assert 'route="/v1/datasets",status="200"' in text
    assert 'api_cache_total{outcome="hit"}' in text


def test_the_landing_page_and_openapi_document_are_served(client: httpx.Client) -> None:
    assert "<html" in client.get("/").text
    paths = client.get("/openapi.json").json()["paths"]
    expected = [
        "/v1/datasets",
        "/v1/datasets/{name}/rows",
        "/v1/sql",
        "/v1/usage",
        "/v1/availability",
        "/v1/stations",
        "/v1/releases",
        "/v1/releases/{release_id}/datasets/{name}/download.parquet",
    ]
    for path in expected:
        assert path in paths, path


def _cache_hits(client: httpx.Client) -> int:
    found = re.search(r'^api_cache_total\{outcome="hit"\} (\d+)', client.get("/metrics").text, re.M)
    return int(found.group(1)) if found else 0


def test_a_routes_own_cache_control_wins_over_the_release_default_even_from_the_cache(
    client: httpx.Client,
) -> None:
    url = re.search(r"/static/landing\.css\?v=[0-9a-f]+", client.get("/").text).group(0)  # type: ignore[union-attr]
    computed = client.get(url)
    hits = _cache_hits(client)
    cached = client.get(url)
    assert _cache_hits(client) == hits + 1, "the second answer should come from the answer cache"
    for answer in (computed, cached):
        assert answer.headers["cache-control"] == IMMUTABLE
    revalidated = client.get(url, headers={"If-None-Match": cached.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.headers["cache-control"] == IMMUTABLE
    # A URL without the current content hash may change content: it keeps the release default.
    for other in ("/static/landing.css", "/static/landing.css?v=000000000000", "/v1/datasets"):
        policy = client.get(other).headers["cache-control"]
        assert policy.startswith("public, max-age=") and "immutable" not in policy, other
