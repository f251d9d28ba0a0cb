"""Connector status timelines and the OCPP → OCPI status mapping."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipelines.raw_reader import connector_sql

# OCPP status (1.6 StatusNotification.status, 2.0.1 connectorStatus) → published category.
# OCPI: AVAILABLE, CHARGING/BLOCKED (occupied), RESERVED, INOPERATIVE, OUTOFORDER, UNKNOWN.
STATUS_CATEGORY: dict[str, str] = {
    "Available": "available",
    "Preparing": "occupied",
    "Charging": "charging",
    "SuspendedEV": "occupied",
    "SuspendedEVSE": "occupied",
    "Finishing": "occupied",
    "Occupied": "occupied",
    "Reserved": "reserved",
    "Unavailable": "unavailable",
    "Faulted": "faulted",
}
OCPI_STATUS: dict[str, str] = {
    "available": "AVAILABLE",
    "occupied": "BLOCKED / CHARGING",
    "charging": "CHARGING",
    "reserved": "RESERVED",
    "unavailable": "INOPERATIVE",
    "faulted": "OUTOFORDER",
    "offline": "UNKNOWN",
    "unknown": "UNKNOWN",
}
OCCUPIED = frozenset({"occupied", "charging"})


def category(status: str | None) -> str:
    return STATUS_CATEGORY.get(status or "", "unknown")


@dataclass(frozen=True)
class StatusEvent:
    time: datetime
    status: str
    clock_corrected: bool


ConnectorKey = tuple[str, int]


def load_status_events(con: duckdb.DuckDBPyConnection) -> dict[ConnectorKey, list[StatusEvent]]:
    """Status changes per (station, connector), time-ordered; connector 0 (whole station) is skipped."""
    # 2.0.1 reports only Occupied in StatusNotification; whether the car charges is in the
    # TransactionEvent's chargingState (whose evse comes only with the transaction's first event).
    rows = con.execute(
        f"""WITH tx AS (
                SELECT charge_point_id, event_time, received_at, clock_corrected, charging_state,
                       coalesce({connector_sql()},
                                max({connector_sql()}) OVER (PARTITION BY charge_point_id, transaction_id))
                           AS connector
                FROM transaction_events WHERE ocpp_version <> '1.6'
            )
            SELECT charge_point_id, connector, event_time, status, clock_corrected FROM (
                SELECT charge_point_id, {connector_sql()} AS connector, event_time, status, clock_corrected,
                       received_at
                FROM status_notifications WHERE status IS NOT NULL
                UNION ALL
                SELECT charge_point_id, connector, event_time,
                       CASE WHEN charging_state = 'EVConnected' THEN 'Occupied' ELSE charging_state END,
                       clock_corrected, received_at
                FROM tx WHERE charging_state IN ('Charging', 'SuspendedEV', 'SuspendedEVSE', 'EVConnected')
            )
            WHERE connector IS NOT NULL AND connector > 0
            ORDER BY charge_point_id, connector, event_time, received_at"""
    ).fetchall()
    out: dict[ConnectorKey, list[StatusEvent]] = defaultdict(list)
    for cp, conn, t, status, cc in rows:
        events = out[(cp, int(conn))]
        if events and events[-1].status == status:
            continue  # a repeated status is no change
        events.append(StatusEvent(t, status, bool(cc)))
    return dict(out)


@dataclass(frozen=True)
class Episode:
    """A maximal run of occupied statuses on one connector: plug-in to plug-out."""

    start: datetime
    end: datetime | None
    charging_start: datetime | None
    charging_end: datetime | None
    clock_corrected: bool = False  # some status that bounds it had its time corrected


def occupancy_episodes(events: list[StatusEvent]) -> list[Episode]:
    episodes: list[Episode] = []
    start: datetime | None = None
    ch_start: datetime | None = None
    ch_end: datetime | None = None
    charging = False
    corrected = False
    for ev in events:
        cat = category(ev.status)
        if cat in OCCUPIED:
            if start is None:
                start, ch_start, ch_end, charging, corrected = ev.time, None, None, False, False
            corrected = corrected or ev.clock_corrected
            if cat == "charging" and not charging:
                charging = True
                ch_start = ch_start or ev.time
            elif cat != "charging" and charging:
                charging = False
                ch_end = ev.time
        elif start is not None:
            if charging:
                ch_end = ev.time
            episodes.append(Episode(start, ev.time, ch_start, ch_end, corrected or ev.clock_corrected))
            start, charging = None, False
    if start is not None:
        episodes.append(Episode(start, None, ch_start, ch_end, corrected))
    return episodes
