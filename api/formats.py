"""Answer bodies: JSON, CSV (optionally Excel-friendly) and GeoJSON from Arrow tables."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import threading
from collections.abc import Iterable, Iterator
from itertools import repeat
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


def dumps(value: Any, naive_utc: bool = False) -> bytes:
    """JSON; `naive_utc` writes naive datetimes as UTC (`+00:00`), for answers whose only naive ones are
    UTC timestamps selected without their zone (see `query.select_list`)."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_NAIVE_UTC if naive_utc else 0)
    return orjson.dumps(value, default=_default, option=option)


def rows_of(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()


# DuckDB 2 parses with a PEG parser: for a 100-row page that is about an eighth of DuckDB's time. A parsed
# statement runs again, on any connection and with new parameters, so each SQL text is parsed once. The
# texts are built from the catalogue's names and the number of filter values, never from values, so there
# are few; the bound only guards against a client that walks through many column orders.
STATEMENTS_MAX = 1024
_statements: dict[str, Any] = {}
_statements_lock = threading.Lock()


def parsed(cur: Any, sql: str) -> Any:
    """`sql` (one statement the API built, never a client's SQL) parsed, from the cache when seen before."""
    found = _statements.get(sql)
    if found is None:
        (found,) = cur.extract_statements(sql)
        with _statements_lock:
            if len(_statements) >= STATEMENTS_MAX:
                _statements.clear()
            _statements[sql] = found
    return found


def page_rows(cur: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    """The rows of one statement as dicts (DuckDB's fetchall is faster than Arrow's to_pylist here)."""
    result = cur.execute(parsed(cur, sql), params)
    names = [d[0] for d in result.description]
    # Every row has exactly one value per column: zip's `strict` check would cost a fifth of this line.
    return list(map(dict, map(zip, repeat(names), result.fetchall())))


def page_total(
    cur: Any, source: str, params: list[Any], returned: int, limit: int, offset: int, known: int | None = None
) -> int:
    """How many rows `source` (`FROM ...`) has, counted only when neither `known` nor the page tells.

    A page shorter than `limit` that is not past the end ends exactly at the last row, so the total is
    `offset + returned`; DuckDB's per-statement overhead dominates answers of a hundred rows.
    """
    if known is not None:
        return known
    if returned < limit and (returned > 0 or offset == 0):
        return offset + returned
    (total,) = cur.execute(parsed(cur, f"SELECT count(*) {source}"), params).fetchall()[0]
    return int(total)


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
