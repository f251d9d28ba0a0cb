"""Rolled WAL segments into raw Parquet files, atomically and idempotently.

A segment's rows become `raw/<table>/date=<receipt date>/<instance>-<segment>.parquet`. The name
depends only on the segment, so recovering a segment that had been half rolled before a crash
rewrites the same files instead of adding duplicates.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.extract import extract
from ingest.schema import TABLES, partition_dir
from ingest.wal import fsync_dir, read_segment


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        pq.write_table(table, handle, compression="zstd", write_statistics=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_records(records: list[dict[str, Any]], raw_root: Path, name: str) -> Counter[str]:
    """Derive the raw tables from `records` and write one file per table and receipt date."""
    written: Counter[str] = Counter()
    for table_name, rows in extract(records).items():
        spec = TABLES[table_name]
        by_day: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_day[row["received_at"].date()].append(row)
        for day, day_rows in sorted(by_day.items()):
            table = pa.Table.from_pylist(day_rows, schema=spec.schema)
            write_parquet_atomically(table, partition_dir(raw_root, table_name, day) / f"{name}.parquet")
            written[table_name] += len(day_rows)
    return written


def roll_segment(segment: str, raw_root: str, name: str) -> dict[str, int]:
    """Roll one closed WAL segment into Parquet, then delete it. Runs in a worker process: deriving
    rows and building Arrow tables is CPU-bound and would hold the listener's GIL for tens of ms."""
    path = Path(segment)
    records = read_segment(path)
    written = write_records(records, Path(raw_root), name) if records else Counter()
    path.unlink(missing_ok=True)
    return dict(written)
