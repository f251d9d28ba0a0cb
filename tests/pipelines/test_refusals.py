"""Issue 18: a refused authorization is a failed start, though it never becomes a session."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ocpp.v16 import call as call16

from ocpp_opendata.settings import load_settings
from tests.pipelines.helpers import published, run_days, write_registry
from tests.support.chargers import ocpp_charger, rows
from tests.support.listener import make_listener

KEY = "refusals-test-key-0123456789abcdef0123"


async def test_refused_cards_count_as_failed_starts_of_their_station_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    allow = tmp_path / "allowed.txt"
    allow.write_text("GOOD-CARD\n")
    listener = make_listener(data, "--authorize", "allowlist", "--allowlist", str(allow)).start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=90)
    try:
        async with ocpp_charger(listener.url, "RF-1") as cp:
            await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            for card in ("STOLEN-1", "STOLEN-2", "STOLEN-1"):
                answer = await cp.call(call16.Authorize(id_tag=card))
                assert answer.id_tag_info["status"] == "Invalid"
            assert (await cp.call(call16.Authorize(id_tag="GOOD-CARD"))).id_tag_info["status"] == "Accepted"
            started = await cp.call(call16.StartTransaction(
                connector_id=1, id_tag="GOOD-CARD", meter_start=0, timestamp=start.isoformat()
            ))  # fmt: skip
            await cp.call(call16.StopTransaction(
                meter_stop=6000, timestamp=(start + timedelta(minutes=40)).isoformat(),
                transaction_id=started.transaction_id,
            ))  # fmt: skip
    finally:
        listener.stop()
    assert len(rows(data, "frames", "action = 'Authorize' AND direction = 'out'")) == 4
    write_registry(data, [("RF-1", "Depot", 52.2, 5.9, "Centrum", 22, "public")])
    for name in [n for n in os.environ if n.startswith("OCPP_OPENDATA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("OCPP_OPENDATA_PRIVACY_K", "2")  # two refused cards + one user: shown
    monkeypatch.setenv("OCPP_OPENDATA_DATA_DIR", str(data))
    monkeypatch.setenv("OCPP_OPENDATA_TIMEZONE", "UTC")
    settings = load_settings()
    run_days(settings, start.date())
    (day,) = [r for r in published(settings, "station_session_outcomes_daily") if r["station_id"] == "RF-1"]
    assert day["sessions"] == 1 and day["successful"] == 1
    assert day["refused_authorizations"] == 3 and day["failed_to_start"] == 3
    assert not day["outcomes_suppressed"]
