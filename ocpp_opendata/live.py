"""The live charger state: the contract between the listener (writer) and the API's live feeds (reader).

The listener keeps what each charger last said (boot, status, heartbeat, connection open/close) and
writes it as one JSON snapshot per listener process, atomically, within a second of a change. The API
never talks to the listener: it reads the snapshots (from DATA_DIR or the object store) and may also
subscribe to change events on a broker. That keeps the one-way flow: ingest writes, api reads.

The snapshot holds every charger the listener knows, public or not, because the operator API needs
them all; the public feeds filter by the station registry before anything leaves the API.

The OCPP → OCPI status mapping lives here, once, because both the operator API (`ocpi_status`) and
the public feeds use it. OCPI 2.2.1 EVSE statuses: mod_locations.asciidoc, "Status enum".
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SNAPSHOT_FORMAT = 1
# Below DATA_DIR (local) and below the store root (s3): live/<instance>.json.
LIVE_PREFIX = "live"

# OCPP 1.6 ChargePointStatus and OCPP 2.0.1 ConnectorStatusEnumType / ChargingStateEnumType
# (TransactionEvent) → OCPI 2.2.1 Status. 1.6 "Preparing"/"Finishing" are a plugged-in vehicle that
# is not charging: OCPI has no such state, the connector is in use, so CHARGING is the nearest (the
# mapping the OCPI-OCPP white paper of EVRoaming Foundation uses). "Unavailable" is an operator's
# choice (ChangeAvailability) → INOPERATIVE; "Faulted" → OUTOFORDER.
OCPI_STATUS: dict[str, str] = {
    # OCPP 1.6
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
    # OCPP 2.0.1 connectorStatus (Available, Reserved, Unavailable, Faulted as above)
    "Occupied": "CHARGING",
    # OCPP 2.0.1 TransactionEvent chargingState
    "EVConnected": "CHARGING",
    "Idle": "CHARGING",
}
OCPI_STATUSES = (
    "AVAILABLE",
    "BLOCKED",
    "CHARGING",
    "INOPERATIVE",
    "OUTOFORDER",
    "PLANNED",
    "REMOVED",
    "RESERVED",
    "UNKNOWN",
)


def ocpi_status(ocpp_status: str | None, *, offline: bool = False) -> str:
    """The OCPI status of a connector; UNKNOWN when the charger is offline or said nothing we know."""
    if offline or ocpp_status is None:
        return "UNKNOWN"
    return OCPI_STATUS.get(ocpp_status, "UNKNOWN")


@dataclass
class ConnectorState:
    evse_id: int
    connector_id: int
    status: str | None = None  # exactly as the charger last reported it
    error_code: str | None = None
    updated_at: str | None = None  # ISO 8601 UTC, when the listener received the status

    @property
    def ocpi_status(self) -> str:
        return ocpi_status(self.status)


@dataclass
class ChargerState:
    charge_point_id: str
    ocpp_version: str | None = None
    connected: bool = False
    connected_since: str | None = None
    last_seen: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware_version: str | None = None
    heartbeat_interval: int | None = None  # seconds, as sent in the BootNotification answer
    connectors: list[ConnectorState] = field(default_factory=list)


@dataclass
class Snapshot:
    instance: str
    written_at: str  # ISO 8601 UTC
    chargers: list[ChargerState] = field(default_factory=list)
    format: int = SNAPSHOT_FORMAT


def snapshot_to_bytes(snapshot: Snapshot) -> bytes:
    return json.dumps(asdict(snapshot), separators=(",", ":"), sort_keys=True).encode()


def snapshot_from_bytes(data: bytes) -> Snapshot:
    raw: dict[str, Any] = json.loads(data)
    if raw.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown live snapshot format {raw.get('format')!r}")
    chargers = [
        ChargerState(
            **{k: v for k, v in c.items() if k != "connectors"},
            connectors=[ConnectorState(**x) for x in c.get("connectors", [])],
        )
        for c in raw.get("chargers", [])
    ]
    return Snapshot(instance=raw["instance"], written_at=raw["written_at"], chargers=chargers)


def snapshot_key(instance: str) -> str:
    """The store key (and the path below DATA_DIR) of one listener process's snapshot."""
    return f"{LIVE_PREFIX}/{instance}.json"


def write_snapshot_file(path: Path, snapshot: Snapshot) -> None:
    """Atomic: readers see the old or the new snapshot, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(snapshot_to_bytes(snapshot))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot_dir(directory: Path) -> list[Snapshot]:
    """Every listener's snapshot below `directory`; unreadable ones are skipped (a writer may be new)."""
    snapshots = []
    for path in sorted(directory.glob("*.json")):
        try:
            snapshots.append(snapshot_from_bytes(path.read_bytes()))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return snapshots


def merge_snapshots(snapshots: list[Snapshot]) -> dict[str, ChargerState]:
    """One view over several listener processes: a connected entry wins, else the most recent."""
    merged: dict[str, ChargerState] = {}
    for snap in snapshots:
        for charger in snap.chargers:
            old = merged.get(charger.charge_point_id)
            if old is None or (charger.connected, charger.last_seen or "") > (
                old.connected,
                old.last_seen or "",
            ):
                merged[charger.charge_point_id] = charger
    return merged


# The same OCPP statuses → DATEX II v3.5 AFIR RefillPointStatusEnum (DATEXII_3_AfirEnergyInfrastructure,
# "RefillPointStatusEnum"). DATEX II, unlike OCPI, has "occupied" (a vehicle plugged in, no energy
# flowing) and "faulted", so the plugged-in-but-idle states keep that distinction. One row per key of
# OCPI_STATUS: a test checks that both columns cover the same OCPP statuses.
DATEX_STATUS: dict[str, str] = {
    "Available": "available",
    "Preparing": "occupied",
    "Charging": "charging",
    "SuspendedEV": "occupied",
    "SuspendedEVSE": "occupied",
    "Finishing": "occupied",
    "Reserved": "reserved",
    "Unavailable": "inoperative",
    "Faulted": "faulted",
    "Occupied": "occupied",
    "EVConnected": "occupied",
    "Idle": "occupied",
}
DATEX_STATUSES = (
    "available",
    "blocked",
    "charging",
    "faulted",
    "inoperative",
    "occupied",
    "outOfOrder",
    "outOfStock",
    "planned",
    "removed",
    "reserved",
    "unavailable",
    "unknown",
)


def datex_status(ocpp_status: str | None, *, offline: bool = False) -> str:
    """The DATEX II refill point status of a connector; unknown when offline or unrecognised."""
    if offline or ocpp_status is None:
        return "unknown"
    return DATEX_STATUS.get(ocpp_status, "unknown")


# Offline rule of the public feeds: a charger not heard from (any frame, heartbeat included) for longer
# than the limit shows UNKNOWN. The default limit is two heartbeat intervals: one missed heartbeat is
# ordinary jitter, two are not.
OFFLINE_HEARTBEATS = 2


def offline_limit(charger: ChargerState, configured: float | None, default_heartbeat: int) -> float:
    """Seconds of silence after which `charger` counts as offline."""
    if configured is not None:
        return configured
    return float(OFFLINE_HEARTBEATS * (charger.heartbeat_interval or default_heartbeat))


def parse_utc(value: str | None) -> datetime | None:
    """An ISO 8601 time of the snapshot as an aware UTC datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def offline_since(charger: ChargerState, now: datetime, limit: float) -> datetime | None:
    """When the charger became offline under the rule (None while it is online)."""
    last = parse_utc(charger.last_seen)
    if last is None:
        return parse_utc(charger.connected_since) or now
    became = last + timedelta(seconds=limit)
    return became if now >= became else None
