"""Privacy: key handling, per-station pseudonyms, k-suppression, non-public stations, leak checks."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner

from ocpp_opendata.cli import main
from ocpp_opendata.settings import Settings
from pipelines.checks import TokenMatcher, tag_forms
from pipelines.privacy import PseudonymKeyError
from pipelines.publish import sha256_file
from pipelines.published_schema import current_release_dir, published_root
from tests.pipelines.helpers import current, published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
M = timedelta(minutes=1)


def visit(raw: RawZone, cp: str, tag: str, start: datetime, tx: str) -> None:
    raw.status(cp, 1, start, "Preparing")
    raw.start(cp, 1, start, tx, tag, 0.0)
    raw.stop(cp, start + 30 * M, tx, 3000.0)
    raw.status(cp, 1, start + 30 * M, "Available")


def city(raw: RawZone, settings: Settings) -> None:
    """Two public stations in Centrum; a home station in Noord; one user visits both public ones."""
    for cp in ("PUB1", "PUB2", "HOME1"):
        raw.connected(cp, T - 120 * M)
        raw.status(cp, 1, T - 60 * M, "Available")
    visit(raw, "PUB1", "04A1B2C3D4", T, "a1")
    visit(raw, "PUB1", "CARD-0002", T + 60 * M, "a2")
    visit(raw, "PUB1", "04A1B2C3D4", T + 120 * M, "a3")
    visit(raw, "PUB2", "04A1B2C3D4", T + 240 * M, "b1")
    visit(raw, "HOME1", "HOMEOWNER1", T + 300 * M, "h1")
    raw.flush()
    write_registry(
        settings.data_dir,
        [
            ("PUB1", "Market square", 52.20, 5.90, "Centrum", 22, "public"),
            ("PUB2", "Station road", 52.21, 5.91, "Centrum", 50, "public"),
            ("HOME1", "Private drive", 52.25, 5.95, "Noord", 11, "home"),
        ],
    )


def test_publishing_without_a_key_is_refused_with_a_clear_error(
    settings: Settings, raw: RawZone, monkeypatch: pytest.MonkeyPatch
) -> None:
    city(raw, settings)
    monkeypatch.delenv("OCPP_OPENDATA_PSEUDONYM_KEY")
    result = CliRunner().invoke(
        main, ["pipeline", "run", "--data-dir", str(settings.data_dir), "--date", "2026-03-10"]
    )
    assert result.exit_code == 2
    assert "no pseudonym key" in result.output and "OCPP_OPENDATA_PSEUDONYM_KEY" in result.output
    assert not published_root(settings.data_dir).exists()


def test_a_key_file_inside_the_data_directory_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyfile = settings.data_dir / "key.txt"
    keyfile.write_text("k" * 32)
    monkeypatch.delenv("OCPP_OPENDATA_PSEUDONYM_KEY")
    monkeypatch.setenv("OCPP_OPENDATA_PSEUDONYM_KEY_FILE", str(keyfile))
    from ocpp_opendata.settings import load_settings
    from pipelines.privacy import load_master_key

    with pytest.raises(PseudonymKeyError, match="outside the data directory"):
        load_master_key(load_settings())


def test_the_cli_publishes_a_release_with_catalog_and_metadata(settings: Settings, raw: RawZone) -> None:
    city(raw, settings)
    result = CliRunner().invoke(main, ["pipeline", "run", "--data-dir", str(settings.data_dir), "--all"])
    assert result.exit_code == 0, result.output
    rel = current(settings)
    assert (published_root(settings.data_dir) / "current").is_symlink()
    for name in (
        "datapackage.json",
        "dcat.jsonld",
        "manifest.json",
        "catalog.duckdb",
        "downloads/charging_sessions.parquet",
    ):
        assert (rel / name).exists(), name
    # Neither the home station's session nor PUB2's (one user, below k) is a row.
    assert len(published(settings, "charging_sessions")) == 3
    package = json.loads((rel / "datapackage.json").read_text())
    for res in package["resources"]:
        assert res["hash"] == sha256_file(rel / res["path"])
        assert all(f["hash"] == sha256_file(rel / f["path"]) for f in res["files"])
    assert package["licenses"][0]["name"] == "CC-BY-4.0" and package["timezone"] == "Europe/Stockholm"


def test_pseudonyms_never_link_two_stations_and_repeat_visits_share_one(
    settings: Settings, raw: RawZone
) -> None:
    city(raw, settings)
    run_days(settings, DAY)
    rows = [r for r in published(settings, "charging_sessions") if r["user_pseudonym"]]
    by_station: dict[str, set[str]] = {}
    for r in rows:
        by_station.setdefault(r["station_id"], set()).add(r["user_pseudonym"])
    assert set(by_station) == {"PUB1"}
    assert len(by_station["PUB1"]) == 2  # three visits, two users: the repeat visit shares its pseudonym


def test_a_session_at_a_station_below_k_users_has_no_row_but_counts_in_the_totals(
    settings: Settings, raw: RawZone
) -> None:
    """Issue 20, item 3: a row published with its area only was tied back to its station by the
    station's own 15-minute series (energy in every interval of the session window) and daily energy."""
    city(raw, settings)
    raw.charge("PUB2", 1, T + 240 * M, 30, 6000.0, 0.0, tx="b1")  # PUB2's one session, metered
    raw.flush()
    run_days(settings, DAY)
    sessions = published(settings, "charging_sessions")
    assert {r["station_id"] for r in sessions} == {"PUB1"}  # PUB2 had one user (< k = 2)
    e15 = [r for r in published(settings, "station_energy_15min") if r["energy_kwh"] > 0]
    # The attack of the review: every session row without its station, matched to the public stations of
    # its area whose 15-minute series has energy in every interval of the session's charging window.
    for s in sessions:
        if s["station_id"] is None:
            window = [r for r in e15 if s["charging_start"] <= r["interval_start"] < s["charging_end"]]
            candidates = {r["station_id"] for r in window if r["area"] == s["area"]}
            assert len(candidates) != 1, f"area-only session {s['session_id']} tied to {candidates}"
    assert any(r["station_id"] == "PUB2" for r in e15)  # its energy is still published per station
    daily = {r["station_id"]: r for r in published(settings, "station_usage_daily")}
    assert daily["PUB2"]["sessions"] == 1 and daily["PUB2"]["energy_kwh"] > 0
    area = published(settings, "area_usage_daily")
    assert sum(r["sessions"] for r in area if r["area"] == "Centrum") == 4
    checks = {c["name"]: c for c in json.loads((current(settings) / "manifest.json").read_text())["checks"]}
    assert checks["hidden_sessions_absent"]["passed"]


def test_no_home_station_can_be_found_in_the_published_data(settings: Settings, raw: RawZone) -> None:
    city(raw, settings)
    run_days(settings, DAY)
    rel = current(settings)
    for path in rel.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonld"):
            assert "HOME1" not in path.read_text()
    for name in ("stations", "station_usage_daily", "station_availability_hourly", "station_energy_15min"):
        assert all(r.get("station_id") != "HOME1" for r in published(settings, name)), name
    assert all(r["latitude"] != 52.25 for r in published(settings, "stations"))
    # One household is below k: the home station does not even count in its area's totals.
    assert all(r["area"] != "Noord" for r in published(settings, "area_usage_daily"))


def test_distinct_users_below_k_are_suppressed(settings: Settings, raw: RawZone) -> None:
    city(raw, settings)
    run_days(settings, DAY)
    daily = {r["station_id"]: r for r in published(settings, "station_usage_daily")}
    assert daily["PUB1"]["distinct_users"] == 2 and not daily["PUB1"]["distinct_users_suppressed"]
    assert daily["PUB2"]["distinct_users"] is None and daily["PUB2"]["distinct_users_suppressed"]
    assert daily["PUB2"]["sessions"] == 1


@pytest.mark.parametrize(
    "smuggled",
    [
        "04a1b2c3d4",  # the raw tag, other case
        str(int("04A1B2C3D4", 16)),  # its decimal UID form
        hashlib.sha256(b"CARD-0002").hexdigest(),  # an unkeyed hash
    ],
)
def test_a_smuggled_idtag_blocks_the_release_and_the_previous_one_stays_online(
    settings: Settings, raw: RawZone, smuggled: str
) -> None:
    city(raw, settings)
    run_days(settings, DAY)
    before = current_release_dir(settings.data_dir)
    write_registry(
        settings.data_dir,
        [("PUB1", f"Market {smuggled}", 52.20, 5.90, "Centrum", 22, "public"),
         ("PUB2", "Station road", 52.21, 5.91, "Centrum", 50, "public")],
    )  # fmt: skip
    with pytest.raises(Exception, match="no_idtag_in_release"):
        run_days(settings, DAY)
    assert current_release_dir(settings.data_dir) == before
    releases = [p for p in (published_root(settings.data_dir) / "releases").iterdir()]
    assert releases == [before]


def test_tag_forms_cover_hex_decimal_and_hashes() -> None:
    forms = tag_forms("04:A1:B2:C3")
    matcher = TokenMatcher(forms)
    assert matcher.find("xx04a1b2c3yy")
    assert matcher.find(str(int("04A1B2C3", 16)))
    assert matcher.find(hashlib.md5(b"04:a1:b2:c3").hexdigest())
    assert not matcher.find("ghjkmnpqrstvwxyz")


def test_an_idtag_seen_only_in_an_authorize_frame_or_a_group_token_is_also_guarded(
    settings: Settings, raw: RawZone
) -> None:
    city(raw, settings)
    raw.frame("PUB1", T, '[2,"9","Authorize",{"idTag":"AUTHONLY77"}]')
    extra = '[{"additionalIdToken":"GROUPTOKEN5","type":"x"}]'
    raw.tx_event("PUB1", T, source_action="TransactionEvent", event_type="Updated", transaction_id="zz",
                 id_token_extra=extra, version="2.0.1")  # fmt: skip
    raw.flush()
    for smuggled in ("authonly77", "GroupToken5"):
        write_registry(settings.data_dir, [("PUB1", f"Kiosk {smuggled}", 52.2, 5.9, "Centrum", 22, "public")])
        with pytest.raises(Exception, match="no_idtag_in_release"):
            run_days(settings, DAY)
    assert current_release_dir(settings.data_dir) is None
