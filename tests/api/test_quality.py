"""/v1/quality over a real HTTP server, against a release the real pipeline published from raw
Parquet with three faults: an impossible 470 kW session, overlapping sessions, an overridden rule."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ocpp_opendata.settings import Settings, load_settings
from tests.api.conftest import start_api
from tests.pipelines.conftest import TEST_KEY
from tests.pipelines.faults import D1, D2, OVERRIDES, REGISTRY, faulty_fleet
from tests.pipelines.helpers import run_days, write_registry
from tests.pipelines.rawdata import RawZone


def publish_fleet(base: Path) -> tuple[Settings, str]:
    """The faulty fleet through the real pipeline: raw Parquet → Dagster → published release."""
    data = base / "data"
    data.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("OCPP_OPENDATA_")]:
            mp.delenv(name)
        mp.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", TEST_KEY)
        mp.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
        mp.setenv("OCPP_OPENDATA_DATA_DIR", str(data))
        s = load_settings()
        write_registry(data, REGISTRY)
        (data / "quality_overrides.csv").write_text(OVERRIDES)
        faulty_fleet(RawZone(data))
        release_id = run_days(s, D1, D2)
    assert release_id
    return s, release_id


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    return publish_fleet(tmp_path_factory.mktemp("quality"))


@pytest.fixture(scope="module")
def client(fleet: tuple[Settings, str]) -> Iterator[httpx.Client]:
    s, release_id = fleet
    server = start_api(s.data_dir)
    try:
        server.wait_for_release(release_id, timeout=30)
        with httpx.Client(base_url=server.url, timeout=10) as c:
            yield c
    finally:
        server.stop()


def test_every_dataset_a_withheld_record_is_missing_from_is_listed_with_its_measure_and_limit(
    client: httpx.Client,
) -> None:
    body = client.get("/v1/quality", params={"station": "CP1"}).json()
    assert {r["dataset"] for r in body["rows"]} == {
        "charging_sessions", "station_usage_daily", "station_usage_monthly", "area_usage_daily",
        "station_energy_15min", "area_peak_15min",
    }  # fmt: skip
    assert {(r["rule"], r["action"], r["measured_value"], r["limit_value"]) for r in body["rows"]} == {
        ("power_above_connector_max", "withheld", 470.0, round(22 * 1.1, 3))
    }
    # One session and the one 15-minute interval it spans, each listed once per dataset.
    assert body["records"] == {"withheld": 2, "flagged": 0, "overridden": 0}
    assert body["total"] == len(body["rows"]) == 6


def test_filters_by_dataset_date_range_rule_and_action_narrow_the_answer(client: httpx.Client) -> None:
    day2 = client.get("/v1/quality", params={"dataset": "charging_sessions", "date": "2026-03-11"}).json()
    assert {r["date"] for r in day2["rows"]} == {"2026-03-11"}
    assert {r["dataset"] for r in day2["rows"]} == {"charging_sessions"}
    assert {(r["rule"], r["action"]) for r in day2["rows"]} == {
        ("overlapping_sessions", "withheld"),
        ("power_above_connector_max", "overridden"),
        ("energy_above_power_time", "overridden"),
    }
    ranged = client.get("/v1/quality", params={"from": "2026-03-11", "to": "2026-03-12"}).json()
    assert ranged["total"] > 0 and "CP1" not in {r["station_id"] for r in ranged["rows"]}
    overlap = client.get("/v1/quality", params={"rule": "overlapping_sessions"}).json()
    assert {(r["station_id"], r["action"]) for r in overlap["rows"]} == {("CP2", "withheld")}
    assert overlap["rows"][0]["measured_value"] == pytest.approx(61.0)  # c2-2 began 61 min early
    both = client.get(
        "/v1/quality", params=[("rule", "overlapping_sessions"), ("rule", "power_above_connector_max")]
    ).json()
    power = client.get("/v1/quality", params={"rule": "power_above_connector_max"}).json()
    assert both["total"] == overlap["total"] + power["total"]


def test_an_operator_override_is_itself_listed_with_its_reason_and_reviewer(client: httpx.Client) -> None:
    body = client.get("/v1/quality", params={"action": "overridden", "dataset": "station_usage_daily"}).json()
    assert {(r["station_id"], r["rule"]) for r in body["rows"]} == {
        ("CP3", "power_above_connector_max"),
        ("CP3", "energy_above_power_time"),
    }
    for row in body["rows"]:
        assert "registry rating outdated" in row["detail"] and "reviewed by ops, 2026-03-12" in row["detail"]
    assert body["records"] == {"withheld": 0, "flagged": 0, "overridden": 1}


def test_csv_gives_the_same_rows_as_json(client: httpx.Client) -> None:
    as_json = client.get("/v1/quality", params={"date": "2026-03-11"}).json()
    r = client.get("/v1/quality", params={"date": "2026-03-11", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == as_json["total"] == int(r.headers["X-Total-Count"])
    assert [(x["dataset"], x["rule"], x["action"]) for x in rows] == [
        (x["dataset"], x["rule"], x["action"]) for x in as_json["rows"]
    ]


def test_paging_is_stable_and_says_when_it_is_truncated(client: httpx.Client) -> None:
    whole = client.get("/v1/quality").json()["rows"]
    first = client.get("/v1/quality", params={"limit": 5})
    assert first.headers["X-Truncated"] == "true" and int(first.headers["X-Total-Count"]) == len(whole)
    rest = client.get("/v1/quality", params={"limit": 1000, "offset": 5}).json()["rows"]
    assert first.json()["rows"] + rest == whole


def test_an_answer_revalidates_to_304_and_a_pinned_release_answers_the_same(
    client: httpx.Client, fleet: tuple[Settings, str]
) -> None:
    _, release_id = fleet
    r = client.get("/v1/quality", params={"station": "CP2"})
    assert r.headers["X-Release"] == release_id and r.headers.get("ETag")
    again = client.get("/v1/quality", params={"station": "CP2"}, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    pinned = client.get(f"/v1/releases/{release_id}/quality", params={"station": "CP2"})
    assert pinned.json()["rows"] == r.json()["rows"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rule": "too_fast"}, "unknown rule 'too_fast'; one of: negative_energy"),
        ({"dataset": "sessions"}, "unknown dataset 'sessions'"),
        ({"action": "dropped"}, "unknown action 'dropped'"),
        ({"date": "11 March"}, "date must be a local date YYYY-MM-DD"),
        ({"date": "2026-03-11", "from": "2026-03-10"}, "either 'date' or 'from'/'to'"),
        ({"from": "2026-03-12", "to": "2026-03-11"}, "'to' must be later than 'from'"),
        ({"colour": "red"}, "'colour' is not a parameter of /v1/quality"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_filter_is_a_400_with_a_message(client: httpx.Client, params: dict, message: str) -> None:
    r = client.get("/v1/quality", params=params)
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_the_datapackage_and_dcat_point_to_the_quality_report_and_its_api(client: httpx.Client) -> None:
    package = client.get("/v1/datapackage.json").json()
    report = package["qualityReport"]
    assert report["resource"] == "quality_issues" and report["api"] == "/v1/quality"
    (resource,) = [r for r in package["resources"] if r["name"] == "quality_issues"]
    assert resource["path"] == report["path"]
    dcat = client.get("/v1/dcat.jsonld").json()
    annotation = dcat["dqv:hasQualityAnnotation"]
    assert annotation["dct:identifier"] == "quality_issues"
    assert annotation["dcat:downloadURL"] == report["path"]
    assert "quality_issues" in {d["dct:identifier"] for d in dcat["dcat:dataset"]}
    # The link is live: the API it names answers with this release's rows.
    assert client.get(annotation["dcat:accessURL"]).json()["total"] > 0
