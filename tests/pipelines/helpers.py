"""Running the real pipeline (Dagster, in-process, ephemeral instance) and reading what it wrote."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import DagsterInstance

from ocpp_opendata.settings import Settings
from pipelines import runner
from pipelines.published_schema import current_release_dir
from pipelines.storage import work_path


def run_days(
    settings: Settings, *days: date, publish: bool = True, instance: DagsterInstance | None = None
) -> str | None:
    if instance is None:
        with DagsterInstance.ephemeral() as inst:
            return runner.run(settings, list(days), publish=publish, instance=inst).release_id
    return runner.run(settings, list(days), publish=publish, instance=instance).release_id


def work(settings: Settings, name: str, day: date) -> list[dict]:
    return pq.read_table(work_path(settings.data_dir, name, day)).to_pylist()


def current(settings: Settings) -> Path:
    path = current_release_dir(settings.data_dir)
    assert path is not None, "nothing published"
    return path


def published(settings: Settings, dataset: str) -> list[dict]:
    con = duckdb.connect(str(current(settings) / "catalog.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        tbl: pa.Table = con.sql(f'SELECT * FROM "{dataset}"').to_arrow_table()
    finally:
        con.close()
    return tbl.to_pylist()


def write_registry(data_dir: Path, rows: list[tuple]) -> None:
    lines = ["id,name,latitude,longitude,area,max_power_kw,access"]
    lines += [",".join("" if v is None else str(v) for v in r) for r in rows]
    (data_dir / "stations.csv").write_text("\n".join(lines) + "\n")
