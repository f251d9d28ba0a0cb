"""Real Dagster runs: DST days, late data through the sensor, the nightly schedule, re-runs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckSeverity,
    DagsterInstance,
    RunRequest,
    build_schedule_context,
    build_sensor_context,
)

from ocpp_opendata.settings import Settings
from pipelines.assets.release import BLOCKING_CHECKS, FLAGGED_CHECK, WITHHELD_CHECK
from pipelines.definitions import PUBLISH_JOB, build_definitions
from pipelines.published_schema import current_release_dir
from pipelines.resources import PipelineSettings
from tests.pipelines.faults import session
from tests.pipelines.helpers import current, published, run_days, work, write_registry
from tests.pipelines.rawdata import RawZone

M = timedelta(minutes=1)
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=STOCKHOLM).astimezone(UTC)


def test_the_spring_dst_day_has_23_hours_and_a_session_across_the_gap_keeps_its_length(
    settings: Settings, raw: RawZone
) -> None:
    day = date(2026, 3, 29)  # 02:00 → 03:00 local
    start = local(2026, 3, 29, 1, 30)
    raw.connected("CP1", local(2026, 3, 28, 20))
    raw.status("CP1", 1, local(2026, 3, 28, 21), "Available")
    raw.status("CP1", 1, start, "Preparing")
    raw.start("CP1", 1, start, "1", "TAG1", 0.0)
    raw.stop("CP1", start + 60 * M, "1", 7000.0)
    raw.status("CP1", 1, start + 60 * M, "Available")
    raw.flush()
    write_registry(settings.data_dir, [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public")])
    # One user is below the fixture's k = 2, and a session of a station below k has no row.
    run_days(replace(settings, privacy_k=1), day)
    hours = [r for r in work(settings, "availability", day) if r["station_id"] == "CP1"]
    assert len(hours) == 23
    assert sum(r["occupied_minutes"] for r in hours) == 60.0
    assert sum(r["available_minutes"] + r["occupied_minutes"] for r in hours) == 23 * 60
    (s,) = published(settings, "charging_sessions")
    assert s["connected_minutes"] == 60.0  # 01:30 → 03:30 local is one hour on this day
    (u,) = published(settings, "station_usage_daily")
    assert u["occupied_hours"] == 1.0 and abs(u["available_hours"] - 22.0) < 1e-9


def test_the_autumn_dst_day_has_25_hours(settings: Settings, raw: RawZone) -> None:
    day = date(2026, 10, 25)
    raw.connected("CP1", local(2026, 10, 24, 20))
    raw.status("CP1", 1, local(2026, 10, 24, 21), "Available")
    raw.flush()
    run_days(settings, day, publish=False)
    hours = work(settings, "availability", day)
    assert len(hours) == 25
    assert sum(r["available_minutes"] for r in hours) == 25 * 60


def test_late_data_reaches_its_event_date_through_the_sensor(settings: Settings, raw: RawZone) -> None:
    day = date(2026, 3, 10)
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    raw.status("CP1", 1, t - 60 * M, "Available")
    raw.flush()
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    with DagsterInstance.ephemeral() as instance:
        first = list(
            sensor(
                build_sensor_context(
                    instance=instance,
                    resources={"pipeline": PipelineSettings(data_dir=str(settings.data_dir))},
                )
            )
        )
        assert [r.partition_key for r in first if isinstance(r, RunRequest)] == ["2026-03-10"]
        run_days(settings, day, instance=instance)
        assert work(settings, "sessions", day) == []
        # Two days later an offline charger replays a session of the 10th (received on the 12th).
        late = t + timedelta(days=2)
        raw.status("CP1", 1, t, "Preparing", received=late)
        raw.start("CP1", 1, t, "8", "TAG1", 0.0, received=late)
        raw.stop("CP1", t + 30 * M, "8", 2000.0, received=late)
        raw.status("CP1", 1, t + 30 * M, "Available", received=late)
        raw.flush()
        second = list(
            sensor(
                build_sensor_context(
                    instance=instance,
                    resources={"pipeline": PipelineSettings(data_dir=str(settings.data_dir))},
                )
            )
        )
        assert [r.partition_key for r in second if isinstance(r, RunRequest)] == ["2026-03-10"]
        assert (settings.data_dir / "raw" / "status_notifications" / "date=2026-03-12").is_dir()
        run_days(settings, day, instance=instance)
    (s,) = work(settings, "sessions", day)
    assert s["plug_in"] == t and s["energy_wh"] == 2000.0


def test_the_nightly_schedule_asks_for_the_previous_local_day(settings: Settings) -> None:
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("nightly_previous_day")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Stockholm"
    ctx = build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 30, 2, 0, tzinfo=STOCKHOLM),
        repository_def=defs.get_repository_def(),
    )
    request = schedule.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == "2026-03-29"


def test_the_publish_sensor_publishes_once_after_work_settles(settings: Settings, raw: RawZone) -> None:
    raw.status("CP1", 1, datetime(2026, 3, 10, 9, tzinfo=UTC), "Available")
    raw.flush()
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("publish_sensor")
    with DagsterInstance.ephemeral() as instance:
        assert not sensor.evaluate_tick(build_sensor_context(instance=instance)).run_requests
        run_days(settings, date(2026, 3, 10), date(2026, 3, 11), publish=False, instance=instance)
        ctx = build_sensor_context(instance=instance)
        tick = sensor.evaluate_tick(ctx)
        assert len(tick.run_requests) == 1
        again = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=tick.cursor))
        assert not again.run_requests


def test_materializing_twice_gives_byte_identical_parquet(settings: Settings, raw: RawZone) -> None:
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    for i, cp in enumerate(("CP1", "CP2", "CP3")):
        raw.status(cp, 1, t - 60 * M, "Available")
        raw.status(cp, 1, t + i * M, "Preparing")
        raw.start(cp, 1, t + i * M, f"{cp}-1", f"TAG{i}", 0.0)
        end = raw.charge(cp, 1, t + i * M, 30, 7400, 0.0, tx=f"{cp}-1")
        raw.stop(cp, t + (31 + i) * M, f"{cp}-1", end)
        raw.status(cp, 1, t + (31 + i) * M, "Available")
    raw.flush()
    write_registry(
        settings.data_dir,
        [
            (cp, cp, 52.2, 5.9 + i / 100, "Centrum", 22, "public")
            for i, cp in enumerate(("CP1", "CP2", "CP3"))
        ],
    )
    settings = replace(settings, privacy_k=1)  # one card per station: every session a row
    run_days(settings, date(2026, 3, 10))
    first = current(settings)
    before = {p.relative_to(first): p.read_bytes() for p in sorted((first / "datasets").rglob("*.parquet"))}
    assert {p.parts[1] for p in before} >= {"stations", "charging_sessions", "station_usage_daily"}
    run_days(settings, date(2026, 3, 10))
    second = current(settings)
    assert second != first
    after = {p.relative_to(second): p.read_bytes() for p in sorted((second / "datasets").rglob("*.parquet"))}
    assert after.keys() == before.keys()
    for rel, data in before.items():
        assert after[rel] == data, rel
    manifest = (second / "manifest.json").read_text()
    assert '"unchanged": [\n        "2026-03-10"' in manifest


def test_a_session_left_open_is_republished_once_its_end_arrives(settings: Settings, raw: RawZone) -> None:
    day = date(2026, 3, 10)
    t = datetime(2026, 3, 10, 22, tzinfo=UTC)
    raw.status("CP1", 1, t - 60 * M, "Available")
    raw.status("CP1", 1, t, "Preparing")
    raw.start("CP1", 1, t, "5", "TAG1", 0.0)
    raw.flush()
    resources = {"pipeline": PipelineSettings(data_dir=str(settings.data_dir))}
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("raw_files_sensor")
    with DagsterInstance.ephemeral() as instance:
        list(sensor(build_sensor_context(instance=instance, resources=resources)))
        run_days(settings, day, publish=False, instance=instance)
        assert work(settings, "sessions", day)[0]["left_open"] is True
        # The stop comes the next morning: its file's events lie on the 11th only.
        raw.stop("CP1", t + 600 * M, "5", 9000.0)
        raw.status("CP1", 1, t + 610 * M, "Available")
        raw.flush()
        requests = list(sensor(build_sensor_context(instance=instance, resources=resources)))
        assert sorted(r.partition_key for r in requests if isinstance(r, RunRequest)) == [
            "2026-03-10",
            "2026-03-11",
        ]
        run_days(settings, day, publish=False, instance=instance)
    (s,) = work(settings, "sessions", day)
    assert s["left_open"] is False and s["plug_out"] == t + 610 * M and s["energy_wh"] == 9000.0


def _publish_job(settings: Settings, instance: DagsterInstance) -> Any:
    job = build_definitions(settings).resolve_job_def(PUBLISH_JOB)
    return job.execute_in_process(instance=instance, raise_on_error=False)


def test_withheld_records_warn_and_the_release_is_still_published(settings: Settings, raw: RawZone) -> None:
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    write_registry(settings.data_dir, [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public")])
    raw.status("CP1", 1, t - 60 * M, "Available")
    reg = session(raw, "CP1", t, 30, 11_000, "ok-1", "TAGA1", 0.0)
    reg = session(raw, "CP1", t + 60 * M, 30, 11_000, "ok-2", "TAGC3", reg)  # k = 2 users: rows shown
    session(raw, "CP1", t + 120 * M, 10, 470_000, "bad-1", "TAGB2", reg)  # on a 22 kW connector
    raw.flush()
    with DagsterInstance.ephemeral() as instance:
        run_days(settings, date(2026, 3, 10), publish=False, instance=instance)
        result = _publish_job(settings, instance)
    assert result.success  # a warning never stops the release
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    warn = evals[WITHHELD_CHECK]
    assert not warn.passed and warn.severity is AssetCheckSeverity.WARN
    assert warn.metadata["records"].value == 1
    assert warn.metadata["by_rule"].value == {"power_above_connector_max": 1}
    assert warn.metadata["by_date"].value == {"2026-03-10": 1}
    assert evals[FLAGGED_CHECK].passed and evals[FLAGGED_CHECK].severity is AssetCheckSeverity.WARN
    for name in BLOCKING_CHECKS:
        assert evals[name].passed and evals[name].severity is AssetCheckSeverity.ERROR, name
    # Every check the release ran is an asset check of its own.
    manifest = json.loads((current(settings) / "manifest.json").read_text())
    assert {c["name"] for c in manifest["checks"]} == set(BLOCKING_CHECKS)
    kept = published(settings, "charging_sessions")
    assert [(r["energy_kwh"], r["max_power_kw"]) for r in kept] == [(5.5, 11.0), (5.5, 11.0)]


def test_a_failed_blocking_check_is_an_error_and_nothing_is_published(
    settings: Settings, raw: RawZone
) -> None:
    t = datetime(2026, 3, 10, 9, tzinfo=UTC)
    # The operator pasted a user's card id into the station's name: publishing it would leak the idTag.
    write_registry(settings.data_dir, [("CP1", "Card 04A1B2C3D4E5 bay", 52.2, 5.9, "Centrum", 22, "public")])
    raw.status("CP1", 1, t - 60 * M, "Available")
    session(raw, "CP1", t, 30, 11_000, "ok-1", "04A1B2C3D4E5", 0.0)
    raw.flush()
    with DagsterInstance.ephemeral() as instance:
        run_days(settings, date(2026, 3, 10), publish=False, instance=instance)
        result = _publish_job(settings, instance)
    assert not result.success
    evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
    leak = evals["no_idtag_in_release"]
    assert not leak.passed and leak.severity is AssetCheckSeverity.ERROR
    assert "stations" in leak.metadata["detail"].value
    assert evals["no_private_station"].passed
    assert WITHHELD_CHECK not in evals  # the release never got that far
    assert current_release_dir(settings.data_dir) is None
