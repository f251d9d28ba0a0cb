"""Raw compaction (exactly once, nothing lost), raw retention, release pruning and kept partitions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from ocpp_opendata.settings import Settings, load_settings
from pipelines.maintenance import _journal_dir, maintain_raw
from pipelines.published_schema import published_root
from tests.pipelines.helpers import current, published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

T = datetime(2026, 3, 10, 9, tzinfo=UTC)
M = timedelta(minutes=1)


def rows_and_files(settings: Settings, table: str) -> tuple[int, int]:
    files = list((settings.data_dir / "raw" / table).glob("date=*/*.parquet"))
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]})").fetchall()[0][0]
    return n, len(files)


def many_small_files(raw: RawZone) -> None:
    for i in range(6):  # six listener rolls of the same receipt date
        raw.status("CP1", 1, T + i * M, "Available" if i % 2 else "Preparing")
        raw.meter("CP1", 1, T + i * M, "Energy.Active.Import.Register", 100.0 * i, "Wh")
        raw.flush(name=f"roll{i}")


def test_compaction_merges_a_closed_date_exactly_once_without_losing_rows(
    settings: Settings, raw: RawZone
) -> None:
    many_small_files(raw)
    before = rows_and_files(settings, "meter_values")
    report = maintain_raw(settings, date(2026, 3, 20))
    after = rows_and_files(settings, "meter_values")
    assert before == (6, 6) and after == (6, 1)
    assert report.compacted_partitions >= 2
    again = maintain_raw(settings, date(2026, 3, 20))
    assert again.compacted_partitions == 0 and rows_and_files(settings, "meter_values") == (6, 1)


def test_an_interrupted_compaction_is_finished_by_the_next_run(settings: Settings, raw: RawZone) -> None:
    many_small_files(raw)
    part = settings.data_dir / "raw" / "status_notifications" / "date=2026-03-10"
    inputs = sorted(p.name for p in part.glob("*.parquet"))
    # Simulate a crash right after the compacted file was renamed in, before the inputs were removed.
    maintain_raw(settings, date(2026, 3, 20))
    (out,) = list(part.glob("*.parquet"))
    for name in inputs:
        (part / name).write_bytes(out.read_bytes())
    _journal_dir(settings.data_dir).mkdir(parents=True, exist_ok=True)
    (_journal_dir(settings.data_dir) / "x.json").write_text(
        json.dumps({"output": str(out), "inputs": inputs})
    )
    maintain_raw(settings, date(2026, 3, 20))
    assert list(part.glob("*.parquet")) == [out]


def test_recent_receipt_dates_are_left_alone(settings: Settings, raw: RawZone) -> None:
    many_small_files(raw)
    maintain_raw(settings, date(2026, 3, 11))
    assert rows_and_files(settings, "meter_values") == (6, 6)


def test_raw_idtags_are_replaced_by_keyed_pseudonyms_after_retention(
    settings: Settings, raw: RawZone
) -> None:
    raw.start("CP1", 1, T, "1", "04AABBCCDD", 0.0)
    raw.frame("CP1", T, '[2,"1","Authorize",{"idTag":"04AABBCCDD"}]')
    raw.flush()
    maintain_raw(settings, T.date() + timedelta(days=settings.raw_retention_days))
    files = list((settings.data_dir / "raw").rglob("*.parquet"))
    tags = duckdb.sql(
        f"SELECT id_tag FROM read_parquet({[str(f) for f in files if 'transaction_events' in str(f)]})"
    ).fetchall()
    texts = duckdb.sql(
        f"SELECT text FROM read_parquet({[str(f) for f in files if '/frames/' in str(f)]})"
    ).fetchall()
    assert tags[0][0].startswith("redacted:") and texts[0][0].startswith("redacted:")
    assert all(b"04AABBCCDD" not in f.read_bytes() for f in files)


def test_old_releases_are_pruned_and_an_overlapping_session_alone_is_withheld(
    settings: Settings, raw: RawZone, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2026, 3, 10)
    write_registry(settings.data_dir, [("CP1", "One", 52.2, 5.9, "Centrum", 22, "public")])
    for i, tag in enumerate(("A1", "B2")):
        raw.status("CP1", 1, T + i * 60 * M, "Preparing")
        raw.start("CP1", 1, T + i * 60 * M, f"t{i}", f"USER{tag}", 1000.0 * i)
        raw.stop("CP1", T + (i * 60 + 30) * M, f"t{i}", 1000.0 * i + 500)
        raw.status("CP1", 1, T + (i * 60 + 30) * M, "Available")
    raw.flush()
    monkeypatch.setenv("OCPP_OPENDATA_RELEASES_KEPT", "2")
    settings = load_settings()
    run_days(settings, day)
    good = published(settings, "charging_sessions")
    # A third session overlapping the first on the same connector is withheld; the others stay.
    raw.status("CP1", 1, T + 5 * M, "Preparing")
    raw.start("CP1", 1, T + 5 * M, "t9", "USERC3", 5000.0)
    raw.stop("CP1", T + 50 * M, "t9", 5600.0)
    raw.flush()
    run_days(settings, day)
    run_days(settings, day)
    manifest = json.loads((current(settings) / "manifest.json").read_text())
    assert manifest["datasets"]["charging_sessions"]["kept_previous"] == {}
    assert published(settings, "charging_sessions") == good
    issues = published(settings, "quality_issues")
    assert {(r["dataset"], r["rule"], r["action"]) for r in issues} == {
        (name, "overlapping_sessions", "withheld")
        for name in ("charging_sessions", "station_usage_daily", "station_usage_monthly", "area_usage_daily")
    }
    assert len(list((published_root(settings.data_dir) / "releases").iterdir())) == 2
