"""Local-day partitions shared by assets, schedules, sensors and tests.

Datasets are partitioned by the *local* calendar date of the event (default Europe/Stockholm), so a
partition spans 23, 24 or 25 hours of UTC time on DST days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dagster import DailyPartitionsDefinition


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local day as UTC datetimes (23 or 25 hours long on DST days)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def local_date(ts: datetime, tz: str) -> date:
    return ts.astimezone(ZoneInfo(tz)).date()


def local_dates_between(start: datetime, end: datetime, tz: str) -> list[date]:
    """Every local date that [start, end] touches."""
    first, last = local_date(start, tz), local_date(end, tz)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_days(day: date) -> list[date]:
    first = month_start(day)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def daily_partitions(tz: str, start_date: str) -> DailyPartitionsDefinition:
    # end_offset=1 includes today's partition, so live data can be materialized during the day.
    return DailyPartitionsDefinition(start_date=start_date, timezone=tz, end_offset=1)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from exc
