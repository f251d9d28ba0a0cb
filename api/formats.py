"""Answer bodies: JSON, CSV (optionally Excel-friendly) and GeoJSON from Arrow tables."""

from __future__ import annotations

import datetime as dt
import decimal
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

JSON_MEDIA = "application/json"
CSV_MEDIA = "text/csv; charset=utf-8"
GEOJSON_MEDIA = "application/geo+json"
UTF8_BOM = b"\xef\xbb\xbf"


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


def count_and_rows(
    cur: Any, source: str, params: list[Any], tail: str, tail_params: list[Any]
) -> tuple[int, list[dict[str, Any]]]:
    """The row count of `source` (`FROM ...`) and a page of it (`tail`: ORDER BY/LIMIT) in one statement.

    One statement, not two: DuckDB's per-statement overhead dominates answers of a hundred rows.
    """
    result = cur.execute(
        f"SELECT (SELECT count(*) {source}) AS __total, * {source}{tail}", [*params, *params, *tail_params]
    )
    rows = result.fetchall()
    if not rows:
        (total,) = cur.execute(f"SELECT count(*) {source}", params).fetchall()[0]
        return int(total), []
    names = [d[0] for d in result.description][1:]
    return int(rows[0][0]), [dict(zip(names, r[1:], strict=True)) for r in rows]


def _flat(table: pa.Table) -> pa.Table:
    """CSV has no nested values: lists, structs and maps become their JSON text."""
    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_nested(t) or pa.types.is_interval(t) or pa.types.is_binary(t):
            texts = [None if v is None else dumps(v).decode().strip('"') for v in table.column(i).to_pylist()]
            table = table.set_column(i, f.name, pa.array(texts, pa.string()))
        elif pa.types.is_dictionary(t):
            table = table.set_column(i, f.name, pc.cast(table.column(i), t.value_type))
    return table


def csv_bytes(table: pa.Table, *, header: bool = True, excel: bool = False) -> bytes:
    buf = io.BytesIO()
    if excel and header:
        buf.write(UTF8_BOM)
    options = pacsv.WriteOptions(include_header=header, eol="\r\n" if excel else "\n")
    pacsv.write_csv(_flat(table), buf, options)
    return buf.getvalue()


def csv_stream(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, *, excel: bool = False
) -> Iterator[bytes]:
    """CSV in chunks, one per Arrow batch; the header comes even when there are no rows."""
    yield csv_bytes(schema.empty_table(), header=True, excel=excel)
    for batch in batches:
        if batch.num_rows:
            yield csv_bytes(pa.Table.from_batches([batch]), header=False, excel=excel)


def geojson_features(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    features = []
    for row in rows:
        props = dict(row)
        lat, lon = props.pop("latitude", None), props.pop("longitude", None)
        geometry = None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}
        features.append({"type": "Feature", "geometry": geometry, "properties": props})
    return features
