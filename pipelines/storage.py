"""Deterministic, atomic Parquet files for the private work zone and the published releases.

Same rows in → same bytes out: rows are sorted by fixed keys, writer settings are fixed, and no
wall-clock or library-version metadata is written (pyarrow's `created_by` is stable per version).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

MAX_ROW_GROUP = 128 * 1024
WORK_DIRNAME = "work"


def write_parquet(table: pa.Table, path: Path, sort_keys: tuple[str, ...] = ()) -> int:
    """Write atomically (temp name, fsync, rename); returns the file size."""
    if sort_keys and table.num_rows:
        table = table.sort_by([(k, "ascending") for k in sort_keys])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        compression_level=3,
        row_group_size=MAX_ROW_GROUP,
        write_statistics=True,
        write_page_index=True,
        use_dictionary=True,
        data_page_version="2.0",
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path.stat().st_size


def work_path(data_dir: Path, name: str, day: date) -> Path:
    return data_dir / WORK_DIRNAME / name / f"date={day.isoformat()}" / "part-0.parquet"


def work_dates(data_dir: Path, name: str) -> list[date]:
    base = data_dir / WORK_DIRNAME / name
    if not base.is_dir():
        return []
    return sorted(
        date.fromisoformat(p.name[5:]) for p in base.glob("date=*") if (p / "part-0.parquet").exists()
    )


def read_work(data_dir: Path, name: str, days: list[date] | None = None) -> pa.Table | None:
    chosen = work_dates(data_dir, name) if days is None else days
    tables = [
        pq.read_table(work_path(data_dir, name, d)) for d in chosen if work_path(data_dir, name, d).exists()
    ]
    if not tables:
        return None
    return pa.concat_tables(tables)
