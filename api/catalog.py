"""What a release holds per dataset: coverage, row counts, partitions, checksums, links."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb

from pipelines.published_schema import PARTITION_KEY, Dataset


@dataclass(frozen=True)
class DatasetStats:
    rows: int
    start: Any
    end: Any
    partitions: tuple[str, ...]
    # True when the table's insertion order is its sort-key order (no NULL keys), verified at open:
    # pages in the default order then need no sort (DuckDB keeps insertion order without ORDER BY).
    stored_in_order: bool = False


def quote(name: str) -> str:
    """A SQL identifier; names come from the published schema, never from a request."""
    return '"' + name.replace('"', '""') + '"'


def dataset_stats(db: duckdb.DuckDBPyConnection, ds: Dataset) -> DatasetStats:
    table = quote(ds.name)
    if ds.time_column:
        col = quote(ds.time_column)
        rows, start, end = db.execute(f"SELECT count(*), min({col}), max({col}) FROM {table}").fetchall()[0]  # type: ignore[misc]
    else:
        (rows,) = db.execute(f"SELECT count(*) FROM {table}").fetchall()[0]  # type: ignore[misc]
        start = end = None
    partitions: tuple[str, ...] = ()
    if ds.partitioned and PARTITION_KEY in ds.column_names:
        found = db.execute(f"SELECT DISTINCT {quote(PARTITION_KEY)} FROM {table} ORDER BY 1").fetchall()
        partitions = tuple(r[0].isoformat() for r in found if isinstance(r[0], dt.date))
    return DatasetStats(int(rows), start, end, partitions, _stored_in_order(db, ds, int(rows)))


MAX_ORDER_CHECK_ROWS = 20_000_000


def _stored_in_order(db: duckdb.DuckDBPyConnection, ds: Dataset, rows: int) -> bool:
    if rows > MAX_ORDER_CHECK_ROWS or not ds.sort_keys:
        return False
    keys = ", ".join(quote(k) for k in ds.sort_keys)
    any_null = " OR ".join(f"{quote(k)} IS NULL" for k in ds.sort_keys)
    sql = f"""
        SELECT count(*) FILTER (WHERE ({any_null}) OR (({keys}) < prev)) = 0
        FROM (SELECT *, lag(({keys})) OVER (ORDER BY rowid) AS prev FROM {quote(ds.name)})"""
    return bool(db.execute(sql).fetchall()[0][0])


def iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else None


def column_docs(ds: Dataset) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "type": str(c.type),
            "table_schema_type": c.frictionless_type,
            "unit": c.unit or None,
            "nullable": c.nullable,
            "description": c.description,
            "filterable": c.name in ds.filterable,
        }
        for c in ds.columns
    ]
