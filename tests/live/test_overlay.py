"""The Redis overlay on the snapshots (plain functions: the end-to-end path is in test_broker.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.live.broker import Overlay
from ocpp_opendata.live import ChargerState, ConnectorState


def at(seconds: float) -> str:
    base = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    return (base + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(status: str | None, when: float, connected: bool = True, connector: int | None = 1) -> dict:
    return {
        "charge_point_id": "CP",
        "evse_id": connector,
        "connector_id": connector,
        "status": status,
        "error_code": None,
        "updated_at": at(when),
        "connected": connected,
    }


def snapshot_charger(status: str, when: float) -> ChargerState:
    return ChargerState(
        "CP",
        connected=True,
        last_seen=at(when),
        connectors=[ConnectorState(1, 1, status, "NoError", at(when))],
    )


def test_a_newer_event_shows_until_a_snapshot_holds_it_and_then_the_entry_is_dropped() -> None:
    overlay = Overlay()
    base = {"CP": snapshot_charger("Available", 0)}
    assert overlay.add(event("Charging", 5)) and overlay.dirty
    shown = overlay.apply(base)
    assert shown["CP"].connectors[0].status == "Charging" and shown["CP"] is not base["CP"]
    assert base["CP"].connectors[0].status == "Available"  # the snapshot's object is left alone
    assert not overlay.dirty
    caught_up = {"CP": snapshot_charger("Charging", 5)}
    assert overlay.apply(caught_up)["CP"] is caught_up["CP"]  # nothing newer: the snapshot's own object
    assert overlay.apply(caught_up) is caught_up  # and the entry is gone
    assert overlay.apply({"CP": snapshot_charger("Faulted", 9)})["CP"].connectors[0].status == "Faulted"


def test_an_event_older_than_the_snapshot_never_wins() -> None:
    overlay = Overlay()
    overlay.add(event("Charging", 5))
    newer = {"CP": snapshot_charger("Faulted", 8)}
    assert overlay.apply(newer)["CP"].connectors[0].status == "Faulted"


def test_with_redis_alone_a_charger_is_online_from_its_connection_to_its_disconnection() -> None:
    overlay = Overlay()
    overlay.add(event(None, 1, connector=None))
    overlay.add(event("Charging", 2))
    alive = overlay.apply({})["CP"]
    assert alive.connected and alive.connectors[0].status == "Charging"
    assert datetime.fromisoformat(alive.last_seen.replace("Z", "+00:00")) > datetime.now(UTC) - timedelta(
        minutes=1
    )
    overlay.add(event(None, 30, connected=False, connector=None))
    gone = overlay.apply({})["CP"]
    assert not gone.connected and gone.last_seen == at(30)  # the offline limit runs from here
    assert not overlay.add({"charge_point_id": 7, "updated_at": at(1)})  # malformed: ignored
