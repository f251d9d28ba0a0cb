"""One immutable picture of the public stations' live status, rebuilt when a snapshot or the registry
changes (or a charger crosses the offline limit); every feed renders from it.

Only stations the registry calls public get into a view at all, so nothing downstream can leak a
non-public station: no id, name, coordinates, count, or a change in the answers' timing or validators.
"""

from __future__ import annotations

from collections.abc import Callable
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
    # Renderings of this location (its OCPI object, DATEX sites, status rows), filled lazily by the feeds.
    # A location whose inputs did not change is carried into the next view as the same object, memo and
    # all, so a view change re-renders only the stations that changed (10,000 EVSEs: ms, not seconds).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def memoized(self, key: str, make: Callable[[], Any]) -> Any:
        found = self.memo.get(key, _MISSING)
        if found is _MISSING:
            found = self.memo[key] = make()
        return found


_MISSING = object()


@dataclass
class LiveView:
    """A view plus renderings cached on it (filled lazily by the feeds, dropped with the view)."""

    built_at: datetime
    static_since: datetime  # the registry's modification time: when the static fields last changed
    locations: tuple[LocationView, ...]
    version: int = 0
    by_id: dict[str, LocationView] = field(default_factory=dict)
    last_modified: datetime = field(init=False)  # the newest last_updated shown (static_since if none)
    cache: dict[Any, Any] = field(default_factory=dict)
    # What each location was built from (location_inputs) and the charger object it came from, so the
    # next build can reuse unchanged ones; wake_at: the next moment an online charger goes offline.
    inputs: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    sources: dict[str, ChargerState | None] = field(default_factory=dict)
    wake_at: datetime | None = None

    def __post_init__(self) -> None:
        self.by_id = {loc.station.station_id: loc for loc in self.locations}
        # Computed once: every polled answer's Last-Modified reads it, and a scan of 10,000 EVSEs per
        # request halved the OCPI request rate.
        self.last_modified = max((loc.last_updated for loc in self.locations), default=self.static_since)

    def same_as(self, other: LiveView) -> bool:
        """True when this view renders the same answers as `other` (every location carried over)."""
        return (
            self.static_since == other.static_since
            and len(self.locations) == len(other.locations)
            and all(a is b for a, b in zip(self.locations, other.locations, strict=True))
        )


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


def location_inputs(
    charger: ChargerState | None,
    now: datetime,
    static_since: datetime,
    offline_after: float | None,
    default_heartbeat: int,
) -> tuple[Any, ...]:
    """Everything build_location reads besides the station: equal inputs build an equal location."""
    if charger is None:
        return (static_since, None, ())
    went = offline_since(charger, now, offline_limit(charger, offline_after, default_heartbeat))
    return (
        static_since,
        went,
        tuple((c.evse_id, c.connector_id, c.status, c.updated_at) for c in charger.connectors),
    )


def build_view(
    registry: dict[str, RegistryStation],
    chargers: dict[str, ChargerState],
    now: datetime,
    static_since: datetime,
    offline_after: float | None,
    default_heartbeat: int,
    previous: LiveView | None = None,
) -> LiveView:
    """The view; locations of `previous` whose station and inputs are unchanged are reused as they are."""
    old_locations = previous.by_id if previous is not None else {}
    old_inputs = previous.inputs if previous is not None else {}
    old_sources = previous.sources if previous is not None else {}
    # No online charger has crossed the offline limit since the previous build: a station whose charger
    # is the very same object as then (its snapshot file was not reread) cannot have changed at all.
    quiet = previous is not None and (previous.wake_at is None or now < previous.wake_at)
    locations, inputs, sources = [], {}, {}
    for sid, station in sorted(registry.items()):
        if not station.public:
            continue
        charger = chargers.get(sid)
        sources[sid] = charger
        old = old_locations.get(sid)
        if (
            quiet
            and old is not None
            and old.station is station
            and sid in old_sources
            and old_sources[sid] is charger
        ):
            locations.append(old)
            inputs[sid] = old_inputs[sid]
            continue
        key = location_inputs(charger, now, static_since, offline_after, default_heartbeat)
        if old is not None and old.station is station and old_inputs.get(sid) == key:
            loc = old
        else:
            loc = build_location(station, charger, now, static_since, offline_after, default_heartbeat)
            # New inputs, same answer (a repeated report moving nothing visible): keep the old object.
            if (
                old is not None
                and old.station is station
                and old.evses == loc.evses
                and old.last_updated == loc.last_updated
            ):
                loc = old
        locations.append(loc)
        inputs[sid] = key
    return LiveView(
        built_at=floor_second(now),
        static_since=floor_second(static_since),
        locations=tuple(locations),
        inputs=inputs,
        sources=sources,
    )


def next_offline_moment(
    registry: dict[str, RegistryStation],
    chargers: dict[str, ChargerState],
    now: datetime,
    offline_after: float | None,
    default_heartbeat: int,
    memo: dict[str, tuple[ChargerState, datetime | None]] | None = None,
) -> datetime | None:
    """The next time a public charger that is online now crosses the offline limit (to rebuild then).

    `memo` keeps each charger object's limit moment between calls: only chargers whose snapshot was
    reread are parsed again.
    """
    soonest: datetime | None = None
    for sid, charger in chargers.items():
        station = registry.get(sid)
        if station is None or not station.public:
            continue
        known = memo.get(sid) if memo is not None else None
        if known is not None and known[0] is charger:
            moment = known[1]
        else:
            last = parse_utc(charger.last_seen)
            moment = (
                None
                if last is None
                else last + timedelta(seconds=offline_limit(charger, offline_after, default_heartbeat))
            )
            if memo is not None:
                memo[sid] = (charger, moment)
        if moment is not None and moment > now and (soonest is None or moment < soonest):
            soonest = moment
    return soonest
