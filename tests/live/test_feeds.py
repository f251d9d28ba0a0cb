"""The live feeds through a real API server: OCPI 2.2.1 and DATEX II answers valid against their
schemas, public stations only, offline → UNKNOWN, conditional requests and OCPI paging."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import jsonschema
from referencing import Registry, Resource

from tests.api.conftest import ApiServer
from tests.live.conftest import OFFLINE_AFTER, PRIVATE_MARKERS, charger, eventually, schema, write_state

OCPI = schema("ocpi-2.2.1-locations.schema.json")
DATEX = schema("datex2-3.5-afir-subset.schema.json")


def validator(root: dict, name: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("urn:root", Resource.from_contents(root))
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:root#/$defs/{name}"}, registry=registry, format_checker=jsonschema.FormatChecker()
    )


def ocpi_valid(body: dict, name: str) -> None:
    validator(OCPI, "Envelope").validate(body)
    assert body["status_code"] == 1000
    items = body["data"] if isinstance(body["data"], list) else [body["data"]]
    for item in items:
        validator(OCPI, name).validate(item)


def status_of(api: ApiServer, uid: str) -> str | None:
    rows = httpx.get(api.url + "/v1/live/status").json()["statuses"]
    return next((r["status"] for r in rows if r["evse_uid"] == uid), None)


def test_ocpi_locations_evses_and_connectors_validate_against_the_ocpi_2_2_1_schema(
    live_api: ApiServer, live_root: Path
) -> None:
    write_state(
        live_root, [charger("PUB-A", {1: "Charging", 2: "Available"}), charger("PUB-B", {1: "Faulted"})]
    )
    eventually(lambda: status_of(live_api, "PUB-B-1") == "OUTOFORDER")
    listing = httpx.get(live_api.url + "/ocpi/2.2.1/locations")
    assert listing.status_code == 200
    ocpi_valid(listing.json(), "Location")
    # PUB-C has no country_code/party_id in the registry and none is configured: OCPI requires both,
    # so it is left out of OCPI (it is still in the other feeds).
    assert [loc["id"] for loc in listing.json()["data"]] == ["PUB-A", "PUB-B"]
    a = httpx.get(live_api.url + "/ocpi/2.2.1/locations/PUB-A").json()
    ocpi_valid(a, "Location")
    assert [(e["uid"], e.get("evse_id"), e["status"]) for e in a["data"]["evses"]] == [
        ("PUB-A-1", "SE*ABC*E1*1", "CHARGING"),
        ("PUB-A-2", "SE*ABC*E1*2", "AVAILABLE"),
    ]
    assert a["data"]["operator"] == {"name": "Veldhaven Laddnät"}
    evse = httpx.get(live_api.url + "/ocpi/2.2.1/locations/PUB-B/PUB-B-1").json()
    ocpi_valid(evse, "EVSE")
    assert evse["data"]["status"] == "OUTOFORDER"
    (conn,) = evse["data"]["connectors"]
    assert (conn["standard"], conn["power_type"], conn["max_electric_power"]) == (
        "IEC_62196_T2_COMBO",
        "DC",
        150000,
    )
    one = httpx.get(live_api.url + "/ocpi/2.2.1/locations/PUB-B/PUB-B-1/1").json()
    ocpi_valid(one, "Connector")


def test_an_unknown_location_and_a_bad_limit_get_ocpi_errors(live_api: ApiServer) -> None:
    missing = httpx.get(live_api.url + "/ocpi/2.2.1/locations/NOPE")
    assert (missing.status_code, missing.json()["status_code"]) == (404, 2003)
    bad = httpx.get(live_api.url + "/ocpi/2.2.1/locations?limit=-3")
    assert (bad.status_code, bad.json()["status_code"]) == (400, 2001)
    assert "limit" in bad.json()["status_message"]
    bad_date = httpx.get(live_api.url + "/ocpi/2.2.1/locations?date_from=yesterday")
    assert (bad_date.status_code, bad_date.json()["status_code"]) == (400, 2001)


def test_datex_table_and_status_validate_against_the_afir_profile(
    live_api: ApiServer, live_root: Path
) -> None:
    write_state(
        live_root, [charger("PUB-A", {1: "Preparing", 2: "Available"}), charger("PUB-C", {1: "Unavailable"})]
    )
    eventually(lambda: status_of(live_api, "PUB-C-1") == "INOPERATIVE")
    table = httpx.get(live_api.url + "/datex2/v3/table").json()
    validator(DATEX, "TableD2Payload").validate(table)
    sites = table["payload"]["aegiEnergyInfrastructureTablePublication"]["energyInfrastructureTable"][0][
        "energyInfrastructureSite"
    ]
    assert [s["idG"] for s in sites] == ["PUB-A", "PUB-B", "PUB-C"]
    status = httpx.get(live_api.url + "/datex2/v3/status").json()
    validator(DATEX, "StatusD2Payload").validate(status)
    points = {
        p["aegiElectricChargingPointStatus"]["reference"]["idG"]: p["aegiElectricChargingPointStatus"][
            "status"
        ]["value"]
        for site in status["payload"]["aegiEnergyInfrastructureStatusPublication"][
            "energyInfrastructureSiteStatus"
        ]
        for station in site["energyInfrastructureStationStatus"]
        for p in station["refillPointStatus"]
    }
    # PUB-B reports nothing in this snapshot: unknown; Preparing is "occupied" in DATEX II.
    assert points == {
        "SE*ABC*E1*1": "occupied",
        "SE*ABC*E1*2": "available",
        "PUB-B-1": "unknown",
        "PUB-C-1": "inoperative",
    }


def test_a_private_or_unregistered_station_appears_in_no_live_answer(
    live_api: ApiServer, live_root: Path
) -> None:
    public = [charger("PUB-A", {1: "Available", 2: "Available"})]
    write_state(
        live_root, [*public, charger("SECRET-HOME", {1: "Charging"}), charger("UNREG-9", {1: "Charging"})]
    )
    eventually(lambda: status_of(live_api, "PUB-A-1") == "AVAILABLE")
    urls = [
        "/ocpi/2.2.1/locations",
        "/datex2/v3/table",
        "/datex2/v3/status",
        "/v1/live/status",
        "/v1/live/status?format=csv",
        "/v1/live/status?format=geojson",
    ]
    before = {}
    for url in urls:
        answer = httpx.get(live_api.url + url)
        assert answer.status_code == 200
        assert not [m for m in PRIVATE_MARKERS if m in answer.text], url
        before[url] = (answer.headers["etag"], answer.headers["last-modified"])
    assert httpx.get(live_api.url + "/ocpi/2.2.1/locations").headers["x-total-count"] == "2"
    assert httpx.get(live_api.url + "/v1/live/status").json()["count"] == 4  # PUB-A ×2, PUB-B, PUB-C
    for hidden in ("SECRET-HOME", "UNREG-9"):
        answer = httpx.get(live_api.url + f"/ocpi/2.2.1/locations/{hidden}")
        assert answer.status_code == 404
        assert answer.json()["status_message"] == f"unknown location {hidden!r}"  # same as a made-up id
    with httpx.stream("GET", live_api.url + "/v1/live/changes") as stream:
        first = next(stream.iter_text())
        assert "snapshot" in first and not [m for m in PRIVATE_MARKERS if m in first]
    # A private station changing status changes nothing the public can see: not even the validators.
    write_state(
        live_root, [*public, charger("SECRET-HOME", {1: "Faulted"}), charger("UNREG-9", {1: "Available"})]
    )
    time.sleep(0.8)
    for url in urls:
        answer = httpx.get(live_api.url + url)
        assert (answer.headers["etag"], answer.headers["last-modified"]) == before[url], url


def test_a_charger_silent_longer_than_the_offline_limit_shows_unknown(
    live_api: ApiServer, live_root: Path
) -> None:
    write_state(
        live_root,
        [
            charger("PUB-A", {1: "Charging", 2: "Available"}, seen_ago=OFFLINE_AFTER + 5),
            charger("PUB-B", {1: "Charging"}),
        ],
    )
    eventually(lambda: status_of(live_api, "PUB-B-1") == "CHARGING")
    assert status_of(live_api, "PUB-A-1") == "UNKNOWN"
    assert status_of(live_api, "PUB-A-2") == "UNKNOWN"
    a = httpx.get(live_api.url + "/ocpi/2.2.1/locations/PUB-A").json()["data"]
    assert {e["status"] for e in a["evses"]} == {"UNKNOWN"}
    rows = httpx.get(live_api.url + "/v1/live/status").json()["statuses"]
    row = next(r for r in rows if r["evse_uid"] == "PUB-A-1")
    assert row["datex_status"] == "unknown"
    # "since" is when it went offline: last frame + the limit.
    went = datetime.fromisoformat(row["since"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - went).total_seconds() - 5) < 3
    # A charger that crosses the limit while the API watches turns UNKNOWN without a new snapshot.
    write_state(live_root, [charger("PUB-B", {1: "Charging"}, seen_ago=OFFLINE_AFTER - 1.5)])
    eventually(lambda: status_of(live_api, "PUB-B-1") == "CHARGING")
    eventually(lambda: status_of(live_api, "PUB-B-1") == "UNKNOWN", timeout=5)


def test_polled_feeds_answer_conditional_requests_with_304(live_api: ApiServer, live_root: Path) -> None:
    write_state(live_root, [charger("PUB-A", {1: "Available", 2: "Available"})])
    eventually(lambda: status_of(live_api, "PUB-A-1") == "AVAILABLE")
    for url in ("/ocpi/2.2.1/locations?limit=1", "/datex2/v3/status", "/datex2/v3/table", "/v1/live/status"):
        first = httpx.get(live_api.url + url)
        age = int(first.headers["cache-control"].split("max-age=")[1].split(",")[0])
        assert 0 <= age <= 1, first.headers["cache-control"]
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        same = httpx.get(live_api.url + url, headers={"If-None-Match": etag})
        assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
        since = httpx.get(live_api.url + url, headers={"If-Modified-Since": modified})
        assert since.status_code == 304
        older = format_datetime(datetime.now(UTC) - timedelta(days=400), usegmt=True)
        assert httpx.get(live_api.url + url, headers={"If-Modified-Since": older}).status_code == 200
    etag = httpx.get(live_api.url + "/v1/live/status").headers["etag"]
    write_state(live_root, [charger("PUB-A", {1: "Charging", 2: "Available"})])
    eventually(lambda: status_of(live_api, "PUB-A-1") == "CHARGING")
    changed = httpx.get(live_api.url + "/v1/live/status", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_ocpi_paging_follows_link_headers_and_filters_on_last_updated(
    live_api: ApiServer, live_root: Path
) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    write_state(
        live_root,
        [charger("PUB-A", {1: "Available", 2: "Available"}, at=old), charger("PUB-B", {1: "Charging"})],
    )
    eventually(lambda: status_of(live_api, "PUB-B-1") == "CHARGING")
    seen, url = [], live_api.url + "/ocpi/2.2.1/locations?limit=1"
    while url:
        page = httpx.get(url)
        assert (page.headers["x-total-count"], page.headers["x-limit"]) == ("2", "1000")
        seen += [loc["id"] for loc in page.json()["data"]]
        link = page.headers.get("link")
        url = link.split(";")[0].strip("<>") if link else None
        if url:
            assert parse_qs(urlparse(url).query)["limit"] == ["1"]
    assert seen == ["PUB-A", "PUB-B"]
    # PUB-A's last_updated is the registry's mtime or its old status time (the later); PUB-B's is now.
    b_updated = httpx.get(live_api.url + "/ocpi/2.2.1/locations/PUB-B").json()["data"]["last_updated"]
    after = httpx.get(live_api.url + "/ocpi/2.2.1/locations", params={"date_from": b_updated})
    assert [loc["id"] for loc in after.json()["data"]] == ["PUB-B"]
    assert after.headers["x-total-count"] == "1"
    before = httpx.get(live_api.url + "/ocpi/2.2.1/locations", params={"date_to": b_updated})
    assert [loc["id"] for loc in before.json()["data"]] == ["PUB-A"]  # date_to is exclusive


def test_large_polled_answers_come_gzipped_to_clients_that_ask_and_decode_to_the_same_bytes(
    live_api: ApiServer, live_root: Path
) -> None:
    write_state(
        live_root, [charger("PUB-A", {1: "Charging", 2: "Available"}), charger("PUB-B", {1: "Faulted"})]
    )
    eventually(lambda: status_of(live_api, "PUB-B-1") == "OUTOFORDER")
    for url in (
        "/datex2/v3/table",
        "/datex2/v3/status",
        "/ocpi/2.2.1/locations",
        "/v1/live/status?format=geojson",
    ):
        plain = httpx.get(live_api.url + url, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers, url
        assert len(plain.content) >= 1024, url
        packed = httpx.get(live_api.url + url, headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
        assert int(packed.headers["content-length"]) < len(plain.content), url
        assert packed.content == plain.content  # httpx decoded it
        assert packed.headers["etag"] == plain.headers["etag"]
        again = httpx.get(
            live_api.url + url, headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]}
        )
        assert again.status_code == 304, url
