"""Published totals against a recount from raw: a corrupted work table blocks the release."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ocpp_opendata.settings import Settings
from pipelines.publish import publish
from pipelines.published_schema import current_release_dir, published_root
from pipelines.storage import work_path, write_parquet
from tests.pipelines.helpers import published, run_days, write_registry
from tests.pipelines.rawdata import RawZone

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 9, tzinfo=UTC)
M = timedelta(minutes=1)


def two_stations(raw: RawZone, settings: Settings) -> None:
    for i, cp in enumerate(("CP1", "CP2")):
        register = 0.0
        for k in range(2):  # two visits each, so that every station passes k = 2
            start = T + (i * 5 + k * 120) * M
            tx = f"{cp}-{k}"
            raw.status(cp, 1, start - 30 * M, "Available")
            raw.status(cp, 1, start, "Preparing")
            raw.start(cp, 1, start, tx, f"TAG{k}", register)
            register = raw.charge(cp, 1, start, 40, 11_000, register, tx=tx)
            raw.stop(cp, start + 41 * M, tx, register)
            raw.status(cp, 1, start + 41 * M, "Available")
    raw.flush()
    write_registry(
        settings.data_dir,
        [
            ("CP1", "One", 52.2, 5.9, "Centrum", 22, "public"),
            ("CP2", "Two", 52.3, 5.8, "Centrum", 22, "public"),
        ],
    )


def corrupt(settings: Settings, name: str, change: Callable[[pa.Table], pa.Table]) -> None:
    path = work_path(settings.data_dir, name, DAY)
    tbl = pq.read_table(path)
    write_parquet(change(tbl), path)


def test_published_energy_and_sessions_reconcile_with_the_raw_recount(
    settings: Settings, raw: RawZone
) -> None:
    two_stations(raw, settings)
    run_days(settings, DAY, publish=False)
    (report,) = [r for r in publish(settings).reports if r.name == "totals_reconcile_with_raw"]
    assert report.passed and report.partitions == [DAY.isoformat()], report.detail
    energy = sum(r["energy_kwh"] for r in published(settings, "station_energy_15min"))
    assert abs(energy - 4 * 40 * 11.0 / 60) < 0.01


def double_cp1_energy(t: pa.Table) -> pa.Table:
    """A transform that doubled the metered energy of one station."""
    doubled = pc.if_else(pc.equal(t["station_id"], "CP1"), pc.multiply(t["energy_wh"], 2.0), t["energy_wh"])
    return t.set_column(t.schema.get_field_index("energy_wh"), t.schema.field("energy_wh"), doubled)


def duplicate_two_sessions(t: pa.Table) -> pa.Table:
    """Two sessions counted twice under second ids (one is within the stated tolerance)."""
    i = t.schema.get_field_index("session_id")
    copy = t.slice(0, 2).set_column(i, t.schema.field(i), pa.array(["x", "y"], t.schema.field(i).type))
    return pa.concat_tables([t, copy])


@pytest.mark.parametrize(
    ("table", "change"),
    [("station_minutes", double_cp1_energy), ("sessions", duplicate_two_sessions)],
    ids=["energy doubled", "sessions duplicated"],
)
def test_a_corrupted_work_table_fails_the_recount_and_the_previous_release_stays_online(
    settings: Settings, raw: RawZone, table: str, change: Callable[[pa.Table], pa.Table]
) -> None:
    two_stations(raw, settings)
    run_days(settings, DAY)
    before = current_release_dir(settings.data_dir)
    corrupt(settings, table, change)
    with pytest.raises(Exception, match="totals_reconcile_with_raw"):
        run_days(settings)  # publish only: the corrupted work table is not re-materialized
    assert current_release_dir(settings.data_dir) == before
    assert [p for p in (published_root(settings.data_dir) / "releases").iterdir()] == [before]
