"""One immutable picture of the public stations' live status, rebuilt when a snapshot or the registry
changes (or a charger crosses the offline limit); every feed renders from it.

Only stations the registry calls public get into a view at all, so nothing downstream can leak a
non-public station: no id, name, coordinates, count, or a change in the answers' timing or validators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocpp_opendata.live import (
    ChargerState,
    ConnectorState,
    datex_status,
    ocpi_status,
    offline_limit,
    offline_since,
    parse_utc,
)
from ocpp_opendata.registry import RegistryStation

# OCPP 1.6 connector 0 is the charge point as a whole: Unavailable or Faulted there holds for every
# connector (OCPP 1.6 §4.9, StatusNotification) until a connector reports something newer.
STATION_WIDE = ("Unavailable", "Faulted")


def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


@dataclass(frozen=True)
class EvseView:
    station_id: str
    number: int  # OCPP EVSE id (2.0.1) or connector id (1.6)
    uid: str
    evse_id: str | None  # eMI3 id from the registry
    connector_ids: tuple[str, ...]
    ocpp_status: str | None  # as the charger reported it; None when offline or never reported
    status: str  # OCPI 2.2.1 Status
    datex: str  # DATEX II RefillPointStatusEnum
    since: datetime  # when the published status began (last status report, or going offline)


@dataclass(frozen=True)
class LocationView:
    station: RegistryStation
    evses: tuple[EvseView, ...]
    last_updated: datetime


@dataclass
class LiveView:
    """A view plus renderings cached on it (filled lazily by the feeds, dropped with the view)."""

    built_at: datetime
    static_since: datetime  # the registry's modification time: when the static fields last changed
    locations: tuple[LocationView, ...]
    version: int = 0
    by_id: dict[str, LocationView] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {loc.station.station_id: loc for loc in self.locations}

    @property
    def last_modified(self) -> datetime:
        return max((loc.last_updated for loc in self.locations), default=self.static_since)

    def content_key(self) -> tuple[Any, ...]:
        """Equal for views that render the same answers (so a rebuild without a change keeps the old one)."""
        return (
            self.static_since,
            tuple(
                (loc.station, tuple((e.uid, e.status, e.ocpp_status, e.since) for e in loc.evses))
                for loc in self.locations
            ),
        )

    def evses(self) -> list[tuple[LocationView, EvseView]]:
        return [(loc, evse) for loc in self.locations for evse in loc.evses]


def evse_uid(station_id: str, number: int) -> str:
    return f"{station_id}-{number}"


def _number(conn: ConnectorState) -> int:
    return conn.evse_id if conn.evse_id > 0 else conn.connector_id


def _newest(states: list[ConnectorState]) -> ConnectorState | None:
    return max(states, key=lambda c: c.updated_at or "", default=None)


def build_location(
    station: RegistryStation,
    charger: ChargerState | None,
    now: datetime,
    static_since: datetime,
    offline_after: float | None,
    default_heartbeat: int,
) -> LocationView:
    by_number: dict[int, list[ConnectorState]] = {}
    wide: ConnectorState | None = None
    went_offline: datetime | None = None
    if charger is not None:
        for conn in charger.connectors:
            if conn.evse_id <= 0 and conn.connector_id <= 0:
                wide = conn if wide is None or (conn.updated_at or "") > (wide.updated_at or "") else wide
            else:
                by_number.setdefault(_number(conn), []).append(conn)
        went_offline = offline_since(charger, now, offline_limit(charger, offline_after, default_heartbeat))
    count = station.connectors or len(station.evse_ids) or 1
    numbers = sorted(set(range(1, count + 1)) | set(by_number))
    evses = []
    for n in numbers:
        states = by_number.get(n, [])
        newest = _newest(states)
        wide_is_newer = newest is None or (
            wide is not None and (wide.updated_at or "") > (newest.updated_at or "")
        )
        if wide is not None and wide.status in STATION_WIDE and wide_is_newer:
            newest = wide
        if went_offline is not None:
            raw, since = None, went_offline
        elif newest is not None and newest.status is not None:
            raw, since = newest.status, parse_utc(newest.updated_at) or static_since
        else:
            raw, since = None, static_since
        since = floor_second(max(since, static_since))
        ids = tuple(sorted({str(c.connector_id) for c in states if c.connector_id > 0}, key=_natural))
        evses.append(
            EvseView(
                station_id=station.station_id,
                number=n,
                uid=evse_uid(station.station_id, n),
                evse_id=station.evse_ids[n - 1] if 0 < n <= len(station.evse_ids) else None,
                connector_ids=ids or ("1",),
                ocpp_status=raw,
                status=ocpi_status(raw, offline=raw is None),
                datex=datex_status(raw, offline=raw is None),
                since=since,
            )
        )
    last = max((e.since for e in evses), default=static_since)
    return LocationView(station=station, evses=tuple(evses), last_updated=last)


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 30, text)


def build_view(
    registry: dict[str, RegistryStation],
    chargers: dict[str, ChargerState],
    now: datetime,
    static_since: datetime,
    offline_after: float | None,
    default_heartbeat: int,
) -> LiveView:
    locations = tuple(
        build_location(station, chargers.get(sid), now, static_since, offline_after, default_heartbeat)
        for sid, station in sorted(registry.items())
        if station.public
    )
    return LiveView(built_at=floor_second(now), static_since=floor_second(static_since), locations=locations)


def next_offline_moment(
    registry: dict[str, RegistryStation],
    chargers: dict[str, ChargerState],
    now: datetime,
    offline_after: float | None,
    default_heartbeat: int,
) -> datetime | None:
    """The next time a public charger that is online now crosses the offline limit (to rebuild then)."""
    soonest: datetime | None = None
    for sid, charger in chargers.items():
        station = registry.get(sid)
        if station is None or not station.public:
            continue
        last = parse_utc(charger.last_seen)
        if last is None:
            continue
        limit = offline_limit(charger, offline_after, default_heartbeat)
        moment = last + timedelta(seconds=limit)
        if moment > now and (soonest is None or moment < soonest):
            soonest = moment
    return soonest
