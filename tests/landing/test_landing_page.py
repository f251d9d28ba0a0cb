"""The landing page in headless Chromium, over a real release served by a real API server."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.api.conftest import ApiServer
from tests.api.published_data import registry, table
from tests.landing.conftest import ARTIFACTS, Visit, visit


def test_the_page_loads_without_console_errors_failed_requests_or_any_off_loopback_request(
    landing: Visit,
) -> None:
    assert landing.state() == "ready", landing.page.inner_text("#status")
    assert landing.console_errors == []
    assert landing.page_errors == []
    assert landing.failed == []
    assert landing.off_loopback == []
    # The page really fetched the API and its own assets (so the lists above had something to watch).
    paths = {u.removeprefix(landing.base_url).split("?")[0] for u in landing.requests}
    assert {"/", "/health", "/static/landing.js", "/static/landing.css", "/static/favicon.svg"} <= paths
    assert any(p.endswith("/usage") for p in paths) and any(p.endswith("/stations") for p in paths)
    assert (ARTIFACTS / "landing.png").stat().st_size > 10_000


def test_every_dataset_is_listed_with_the_row_count_and_licence_of_the_catalogue(
    landing: Visit, client: httpx.Client
) -> None:
    catalogue = client.get("/v1/datasets").json()
    rows = landing.page.locator("#dataset-table tbody tr")
    shown = {
        r.get_attribute("data-dataset"): (
            int(r.locator("td.rows").get_attribute("data-rows") or "-1"),
            r.locator("td").nth(3).inner_text(),
        )
        for r in rows.all()
    }
    expected = {
        d["name"]: (d["rows"], ", ".join(lic["name"] for lic in d["licenses"])) for d in catalogue["datasets"]
    }
    assert shown == expected
    # A clean demo release withholds nothing, so only the quality report may be empty.
    assert all(count > 0 for name, (count, _) in shown.items() if name != "quality_issues")


def test_every_dataset_links_parquet_and_csv_downloads_that_work(
    landing: Visit, client: httpx.Client
) -> None:
    for row in landing.page.locator("#dataset-table tbody tr").all():
        name = row.get_attribute("data-dataset")
        parquet = row.locator("a[data-format=parquet]").get_attribute("href")
        csv = row.locator("a[data-format=csv]").get_attribute("href")
        assert (parquet, csv) == (
            f"/v1/datasets/{name}/download.parquet",
            f"/v1/datasets/{name}/download.csv",
        )
        head = client.get(parquet, headers={"Range": "bytes=0-3"})
        assert head.status_code == 206 and head.content == b"PAR1", parquet
        first_column = client.get(f"/v1/datasets/{name}").json()["schema"]["fields"][0]["name"]
        assert client.get(csv).text.split(",")[0].strip('"\ufeff') == first_column, csv


def test_the_chart_has_one_bar_and_one_point_per_published_day_with_its_energy_and_sessions(
    landing: Visit, release_dir: Path
) -> None:
    energy: dict[str, float] = defaultdict(float)
    sessions: dict[str, int] = defaultdict(int)
    for row in table(release_dir, "area_usage_daily").to_pylist():
        energy[row["date"].isoformat()] += row["energy_kwh"]
        sessions[row["date"].isoformat()] += row["sessions"]
    assert len(energy) >= 2, "the release covers several days"
    bars = landing.page.locator("#chart svg rect.bar-energy").all()
    points = landing.page.locator("#chart svg circle.point-sessions").all()
    assert [b.get_attribute("data-day") for b in bars] == sorted(energy)
    assert [p.get_attribute("data-day") for p in points] == sorted(sessions)
    for bar in bars:
        day = bar.get_attribute("data-day") or ""
        assert math.isclose(float(bar.get_attribute("data-energy-kwh") or "nan"), energy[day], abs_tol=1e-6)
    assert {
        p.get_attribute("data-day"): int(p.get_attribute("data-sessions") or -1) for p in points
    } == sessions
    # The busiest day's bar is the tallest one.
    heights = {b.get_attribute("data-day"): float(b.get_attribute("height") or 0) for b in bars}
    assert max(heights, key=lambda d: heights[d]) == max(energy, key=lambda d: energy[d])


def test_the_station_table_and_map_show_every_public_station_and_no_private_one(
    landing: Visit, api: ApiServer
) -> None:
    stations = registry(api.data_dir)
    public = {s["id"] for s in stations if s["access"] == "public"}
    private = [s for s in stations if s["access"] != "public"]
    assert private, "the simulated city has non-public stations"
    served = {s["station_id"] for s in httpx.get(api.url + "/v1/stations").json()["stations"]}
    in_table = {
        r.get_attribute("data-station-id") for r in landing.page.locator("#station-table tbody tr").all()
    }
    on_map = {
        c.get_attribute("data-station-id") for c in landing.page.locator("#map circle.station-dot").all()
    }
    assert in_table == served and on_map == served
    assert served and served <= public
    html = landing.page.content()
    for station in private:
        assert station["id"] not in html, station["id"]


def test_each_station_shows_its_utilisation_over_the_whole_release(landing: Visit, release_dir: Path) -> None:
    occupied: dict[str, float] = defaultdict(float)
    open_minutes: dict[str, float] = defaultdict(float)
    for row in table(release_dir, "station_availability_hourly").to_pylist():
        occupied[row["station_id"]] += row["occupied_minutes"]
        open_minutes[row["station_id"]] += (
            row["available_minutes"] + row["occupied_minutes"] + row["reserved_minutes"]
        )
    shown = {
        r.get_attribute("data-station-id"): r.locator("td.utilisation").get_attribute("data-utilisation")
        for r in landing.page.locator("#station-table tbody tr").all()
    }
    assert shown.keys() == occupied.keys()
    for station_id, value in shown.items():
        expected = occupied[station_id] / open_minutes[station_id]
        assert value is not None and math.isclose(float(value), expected, rel_tol=1e-9, abs_tol=1e-12)
    assert any(float(v or 0) > 0 for v in shown.values()), "some station was used"


def test_the_code_examples_carry_the_page_origin_and_a_real_station(landing: Visit, api: ApiServer) -> None:
    origins = landing.page.locator(".origin").all_inner_texts()
    assert len(origins) >= 5 and set(origins) == {api.url}
    snippet = landing.page.locator("#planners pre").inner_text()
    first = landing.page.locator("#station-table tbody tr").first.get_attribute("data-station-id")
    assert f"station_id={first}&" in snippet
    csv_example = snippet.split('curl "')[2].split('"')[0]
    answer = httpx.get(csv_example)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert answer.status_code == 200 and rows and {r["station_id"] for r in rows} == {first}, csv_example


def test_the_page_fits_a_phone_screen_without_sideways_scrolling(browser: Browser, api: ApiServer) -> None:
    phone = visit(browser, api.url, width=375)
    try:
        assert phone.state() == "ready"
        overflow = phone.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        assert phone.console_errors == [] and phone.failed == []
    finally:
        phone.page.close()


def test_before_the_first_release_the_page_says_so_without_any_error(
    browser: Browser, empty_api: ApiServer
) -> None:
    assert httpx.get(empty_api.url + "/v1/datasets").status_code == 503
    seen = visit(browser, empty_api.url)
    try:
        assert seen.state() == "no-release"
        assert "No release has been published yet" in seen.page.inner_text("#status")
        assert seen.page.locator("#chart svg").count() == 0
        assert seen.console_errors == [] and seen.page_errors == [] and seen.failed == []
        assert seen.off_loopback == []
    finally:
        seen.page.close()


@pytest.mark.parametrize(
    "name", ["page.html", "__init__.py", "..%2Fpage.html", "landing.js.map", "LANDING.JS"]
)
def test_the_static_route_serves_nothing_outside_its_allowlist(client: httpx.Client, name: str) -> None:
    answer = client.get(f"/static/{name}")
    assert answer.status_code == 404
    assert "landing.js" in answer.json()["error"] or "no such resource" in answer.json()["error"]


def test_static_files_have_their_media_types_and_the_page_links_their_current_versions(
    client: httpx.Client,
) -> None:
    html = client.get("/").text
    for name, media in (
        ("landing.js", "text/javascript"),
        ("landing.css", "text/css"),
        ("favicon.svg", "svg"),
    ):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200 and media in answer.headers["content-type"]
        assert (
            answer.headers["x-content-type-options"] == "nosniff"
            and "max-age" in answer.headers["cache-control"]
        )
        version = html.split(f"/static/{name}?v=")[1][:12]
        assert answer.content == (Path("api/landing/static") / name).read_bytes()
        assert version and client.get(f"/static/{name}?v={version}").content == answer.content


AUDIT = """() => {
  const problems = [];
  const name = (node) => (node.getAttribute("aria-labelledby") || "").split(" ").filter(Boolean)
      .map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").trim()
    || (node.getAttribute("aria-label") || "").trim();
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  let level = 0;
  for (const h of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const next = Number(h.tagName[1]);
    if (next > level + 1) problems.push(`heading jumps to ${h.tagName}: ${h.textContent}`);
    level = next;
  }
  for (const landmark of ["header", "nav", "main", "footer"]) {
    if (!document.querySelector(landmark)) problems.push(`no <${landmark}>`);
  }
  for (const svg of document.querySelectorAll("svg[role=img]")) {
    if (!name(svg)) problems.push("a drawing without an accessible name");
  }
  for (const table of document.querySelectorAll("table")) {
    if (!(table.caption && table.caption.textContent.trim())) problems.push("a table without a caption");
    for (const th of table.querySelectorAll("thead th")) {
      if (!th.getAttribute("scope")) problems.push(`header cell without scope: ${th.textContent}`);
    }
  }
  for (const a of document.querySelectorAll("a")) {
    if (!a.textContent.trim() && !a.querySelector("title")) problems.push(`a link without text: ${a.href}`);
  }
  for (const region of document.querySelectorAll("[role=region]")) {
    if (!name(region)) problems.push("a region without a name");
  }
  const first = document.querySelector("a, button, [tabindex]");
  if (!(first && first.getAttribute("href") === "#main")) problems.push("no skip link comes first");
  return problems;
}"""


def test_the_page_has_landmarks_ordered_headings_and_named_tables_and_drawings(landing: Visit) -> None:
    assert landing.page.locator("svg[role=img]").count() >= 2
    assert landing.page.evaluate(AUDIT) == []


def test_the_page_says_how_many_records_this_release_withholds_and_links_the_quality_report(
    landing: Visit, release_dir: Path, client: httpx.Client
) -> None:
    issues = [r for r in table(release_dir, "quality_issues").to_pylist() if r["action"] == "withheld"]
    # Distinct records: a record has a row per dataset it is missing from; area-only rows count one each.
    expected = len({r["record_id"] for r in issues if r["record_id"]}) + sum(
        1 for r in issues if not r["record_id"]
    )
    assert expected >= 1, "the fixture's impossible session is withheld"
    note = landing.page.locator("#quality-note")
    assert note.is_visible()
    link = note.locator("a#quality-link")
    assert link.get_attribute("href") == "/v1/quality"
    assert int(link.get_attribute("data-withheld") or -1) == expected
    word = "record" if expected == 1 else "records"
    assert link.inner_text() == f"{expected} {word} withheld in this release"


def test_the_reliability_chart_has_one_bar_per_district_and_month_with_the_uk_reg7_share(
    landing: Visit, release_dir: Path
) -> None:
    total: dict[tuple[str, str], float] = defaultdict(float)
    down: dict[tuple[str, str], float] = defaultdict(float)
    for row in table(release_dir, "network_reliability_monthly").to_pylist():
        key = (row["date"].isoformat(), row["area"])
        total[key] += row["total_minutes"]
        down[key] += row["not_working_minutes"]
    expected = {k: (total[k] - down[k]) / total[k] * 100 for k in total if total[k] > 0}
    districts = {k: v for k, v in expected.items() if k[1] != "(network)"}
    assert len({area for _, area in districts}) >= 2, "the city has several districts"
    bars = landing.page.locator("#reliability-chart svg rect.bar-reliability").all()
    shown = {
        (b.get_attribute("data-month"), b.get_attribute("data-area")): float(
            b.get_attribute("data-reliability-pct") or "nan"
        )
        for b in bars
    }
    assert len(bars) == len(districts) and shown.keys() == districts.keys()
    for key, value in shown.items():
        assert math.isclose(value, districts[key], rel_tol=1e-9), key
    network = landing.page.locator("#reliability-chart svg line.line-network").all()
    assert {
        n.get_attribute("data-month"): float(n.get_attribute("data-reliability-pct") or 0) for n in network
    } == {month: pytest.approx(v) for (month, area), v in expected.items() if area == "(network)"}
    assert any(v < 100 for v in districts.values()), "the simulated faults cost some reliability"
    # The lowest bar is the least reliable district-month.
    tops = {
        (b.get_attribute("data-month"), b.get_attribute("data-area")): float(b.get_attribute("y") or 0)
        for b in bars
    }
    assert max(tops, key=lambda k: tops[k]) == min(districts, key=lambda k: districts[k])


def test_the_worst_ports_of_the_latest_month_are_listed_lowest_uptime_first(
    landing: Visit, release_dir: Path
) -> None:
    months = table(release_dir, "port_uptime_monthly").to_pylist()
    latest = max(r["date"] for r in months)
    ranked = sorted(
        (r for r in months if r["date"] == latest and r["uptime_pct"] is not None),
        key=lambda r: (r["uptime_pct"], -r["outage_minutes"], r["station_id"], r["connector_id"]),
    )[:5]
    assert ranked and ranked[0]["uptime_pct"] < 100, "some port had an outage"
    rows = landing.page.locator("#worst-ports tbody tr").all()
    shown = [
        (r.get_attribute("data-station-id"), int(r.get_attribute("data-connector") or -1),
         float(r.get_attribute("data-uptime-pct") or "nan"))
        for r in rows
    ]  # fmt: skip
    assert shown == [(r["station_id"], r["connector_id"], pytest.approx(r["uptime_pct"])) for r in ranked]
    assert landing.page.inner_text("#worst-caption") == f"Worst ports of {latest.strftime('%b %Y')}"
    public = {s["id"] for s in registry(Path(release_dir).parents[2]) if s["access"] == "public"}
    assert {station for station, _, _ in shown} <= public
