"""A session an operator starts remotely is published like any other: the charger's own
StartTransaction stays the source of the session, and the operator's CALL adds nothing to the data."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call as call16

from ocpp_opendata.settings import load_settings
from tests.ingest.operate.operator import BOOT16, Charger16, connected, operated_listener
from tests.pipelines.helpers import published, run_days, write_registry

KEY = "operator-session-test-key-0123456789abcdef"


async def test_a_remotely_started_session_is_published_from_the_chargers_own_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with operated_listener(tmp_path, data_dir=data) as op:
        async with connected(op.listener.url, "OP-S", Charger16) as cp:
            await cp.call(BOOT16)
            answer = await op.call(
                "OP-S", "RemoteStartTransaction", {"idTag": "SUPPORT-CARD-7", "connectorId": 1}
            )
            assert answer.json()["result"]["status"] == "Accepted"
            # What a real charger does next: it starts the transaction itself, meters it, stops it.
            started = await cp.call(call16.StartTransaction(
                connector_id=1, id_tag="SUPPORT-CARD-7", meter_start=1000, timestamp=start.isoformat()
            ))  # fmt: skip
            tx = started.transaction_id
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
            await cp.call(call16.StopTransaction(
                meter_stop=8500, timestamp=(start + timedelta(minutes=45)).isoformat(), transaction_id=tx
            ))  # fmt: skip
        op.listener.stop()
    write_registry(data, [("OP-S", "Depot", 52.2, 5.9, "Centrum", 22, "public")])
    for name in [n for n in os.environ if n.startswith("OCPP_OPENDATA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("OCPP_OPENDATA_PRIVACY_K", "1")
    monkeypatch.setenv("OCPP_OPENDATA_DATA_DIR", str(data))
    monkeypatch.setenv("OCPP_OPENDATA_TIMEZONE", "UTC")
    settings = load_settings()
    run_days(settings, start.date())
    (session,) = published(settings, "charging_sessions")
    assert session["station_id"] == "OP-S" and session["energy_kwh"] == 7.5
    daily = published(settings, "station_usage_daily")
    assert sum(r["sessions"] for r in daily) == 1
