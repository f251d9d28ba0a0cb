"""Reading what the pipeline published, straight from the release's Parquet files (not through the API)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def table(release_dir: Path, name: str) -> pa.Table:
    return pq.read_table(release_dir / "downloads" / f"{name}.parquet")


def rows(release_dir: Path, name: str) -> list[dict[str, Any]]:
    return table(release_dir, name).to_pylist()


def first(release_dir: Path, name: str, column: str) -> Any:
    """The first non-null value of a column."""
    return next(v for v in table(release_dir, name).column(column).to_pylist() if v is not None)


def registry(data_dir: Path) -> list[dict[str, str]]:
    with (data_dir / "stations.csv").open() as fh:
        return list(csv.DictReader(fh))
