"""Turning request parameters into parameterised SQL over one published table, validated first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from api.catalog import quote
from api.errors import ApiError
from pipelines.published_schema import Dataset

MAX_VALUE_CHARS = 200
MAX_VALUES = 100


@dataclass
class Where:
    clauses: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    @property
    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def parse_instant(name: str, raw: str, tz: ZoneInfo) -> dt.datetime | dt.date:
    """A date (local calendar day) or a datetime (naive: local time; with offset or Z: as given)."""
    text = raw.strip()
    if len(text) > 40:
        raise ApiError(400, f"parameter {name!r} is too long for a date or time")
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(
            400, f"parameter {name!r} must be a date (2026-11-25) or an ISO 8601 time, got {text[:40]!r}"
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


def as_local_date(value: dt.datetime | dt.date, tz: ZoneInfo, name: str = "from/to") -> dt.date:
    try:
        return value.astimezone(tz).date() if isinstance(value, dt.datetime) else value
    except OverflowError as exc:
        raise out_of_range(name) from exc


def as_utc(value: dt.datetime | dt.date, tz: ZoneInfo, name: str = "from/to") -> dt.datetime:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), tzinfo=tz)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # 0001-01-01 east of UTC is before year 1 in UTC (issue 20, item 7)
        raise out_of_range(name) from exc


def out_of_range(name: str) -> ApiError:
    return ApiError(
        400, f"parameter {name!r} is a date or time outside the supported range (years 1 to 9999, in UTC)"
    )


def coerce(ds: Dataset, column: str, raw: str) -> Any:
    kind = ds.column(column).type
    if len(raw) > MAX_VALUE_CHARS:
        raise ApiError(400, f"value of {column!r} is longer than {MAX_VALUE_CHARS} characters")
    if pa.types.is_integer(kind):
        try:
            return int(raw)
        except ValueError as exc:
            raise ApiError(400, f"{column!r} must be an integer, got {raw[:40]!r}") from exc
    if pa.types.is_boolean(kind):
        if raw.lower() not in ("true", "false"):
            raise ApiError(400, f"{column!r} must be true or false, got {raw[:40]!r}")
        return raw.lower() == "true"
    if pa.types.is_floating(kind):
        try:
            return float(raw)
        except ValueError as exc:
            raise ApiError(400, f"{column!r} must be a number, got {raw[:40]!r}") from exc
    return raw


def equality_filters(ds: Dataset, filters: Iterable[tuple[str, str]], where: Where) -> None:
    grouped: dict[str, list[str]] = {}
    for name, value in filters:
        if name not in ds.filterable:
            allowed = ", ".join(ds.filterable)
            raise ApiError(400, f"{name[:60]!r} is not a filter of dataset {ds.name!r}; filters: {allowed}")
        grouped.setdefault(name, []).append(value)
    for name, values in grouped.items():
        if len(values) > MAX_VALUES:
            raise ApiError(400, f"at most {MAX_VALUES} values of {name!r} at once")
        where.clauses.append(f"{quote(name)} IN ({', '.join('?' for _ in values)})")
        where.params.extend(coerce(ds, name, v) for v in values)


def time_filters(
    ds: Dataset, start: str | None, end: str | None, tz: ZoneInfo, where: Where, column: str | None = None
) -> None:
    """`from` (inclusive) and `to` (exclusive) on the dataset's time column."""
    column = column or ds.time_column
    if start is None and end is None:
        return
    if column is None:
        raise ApiError(400, f"dataset {ds.name!r} has no time column: 'from' and 'to' do not apply")
    is_date = pa.types.is_date(ds.column(column).type)
    bounds = []
    for name, raw, op in (("from", start, ">="), ("to", end, "<")):
        if raw is None:
            continue
        parsed = parse_instant(name, raw, tz)
        value = as_local_date(parsed, tz, name) if is_date else as_utc(parsed, tz, name)
        bounds.append(value)
        where.clauses.append(f"{quote(column)} {op} ?")
        where.params.append(value)
    if len(bounds) == 2 and bounds[1] <= bounds[0]:  # type: ignore[operator]
        raise ApiError(400, "'to' must be later than 'from'")


def order_clause(ds: Dataset, order_by: str | None, stored_in_order: bool = False) -> tuple[str, list[str]]:
    """User order first, then the dataset's sort keys, so that paging is deterministic.

    With no user order on a table stored in sort-key order, no ORDER BY is needed: DuckDB keeps insertion
    order (preserve_insertion_order) and skips a sort of the whole table for every page.
    """
    terms: list[str] = []
    seen: set[str] = set()
    shown: list[str] = []
    for part in (order_by or "").split(","):
        part = part.strip()
        if not part:
            continue
        desc = part.startswith("-")
        name = part.lstrip("-+")
        if name not in ds.column_names:
            raise ApiError(400, f"cannot order by {name[:60]!r}: not a column of {ds.name!r}")
        if name in seen:
            continue
        seen.add(name)
        terms.append(f"{quote(name)} {'DESC' if desc else 'ASC'} NULLS LAST")
        shown.append(("-" if desc else "") + name)
    user_terms = len(terms)
    for name in ds.sort_keys:
        if name not in seen:
            seen.add(name)
            terms.append(f"{quote(name)} ASC NULLS LAST")
            shown.append(name)
    if user_terms == 0 and stored_in_order:
        return "", shown
    return " ORDER BY " + ", ".join(terms), shown


def select_list(ds: Dataset) -> tuple[str, bool]:
    """The SELECT list of a JSON page, and whether it turned UTC timestamps into naive UTC ones.

    DuckDB makes a zone-aware Python datetime several times slower than a naive one (a `replace` and an
    `astimezone` per value: a tenth of a 100-row answer), so UTC timestamp columns are selected as naive
    UTC and written with `+00:00` (orjson's OPT_NAIVE_UTC): the same text. Only where the dataset has no
    naive timestamp of its own, which would then be mislabelled as UTC.
    """
    stamps = [c for c in ds.columns if pa.types.is_timestamp(c.type)]
    if not stamps or any(c.type.tz is None for c in stamps):  # type: ignore[attr-defined]
        return "*", False
    naive = ", ".join(f"timezone('UTC', {quote(c.name)}) AS {quote(c.name)}" for c in stamps)
    return f"* REPLACE ({naive})", True
