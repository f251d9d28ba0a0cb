"""Store-and-forward: CSMS CALLs naming the CSMS's 1.6 transaction id reach the charger with its local id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from ingest.proxy.facts import csms_call_for_charger
from ingest.proxy.queue import LOCAL_BASE, ForwardQueue


def mapped_queue(state_dir: Path) -> tuple[ForwardQueue, int]:
    queue = ForwardQueue(state_dir)
    local, _ = asyncio.run(queue.assign(("CP-1", 1, "TAG", "2026-11-25T10:00:00Z")))
    asyncio.run(queue.map("CP-1", local, 7001))
    return queue, local


def test_a_charging_profile_for_the_csms_transaction_names_the_chargers_local_id(tmp_path: Path) -> None:
    queue, local = mapped_queue(tmp_path)
    try:
        schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}
        profile = {"chargingProfileId": 3, "transactionId": 7001, "stackLevel": 0,
                   "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
                   "chargingSchedule": schedule}  # fmt: skip
        text = orjson.dumps(
            [2, "m1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}]
        )
        sent = orjson.loads(csms_call_for_charger(queue, "CP-1", text.decode()))
        assert local >= LOCAL_BASE
        assert sent[3]["csChargingProfiles"]["transactionId"] == local
        assert sent[3]["csChargingProfiles"]["chargingSchedule"] == profile["chargingSchedule"]
        assert sent[:3] == [2, "m1", "SetChargingProfile"]

        stop = orjson.dumps([2, "m2", "RemoteStopTransaction", {"transactionId": 7001}]).decode()
        assert orjson.loads(csms_call_for_charger(queue, "CP-1", stop))[3] == {"transactionId": local}
    finally:
        queue.close()


def test_calls_naming_no_locally_answered_transaction_pass_unchanged(tmp_path: Path) -> None:
    queue, _ = mapped_queue(tmp_path)
    try:
        unrelated = [
            '[2,"a","SetChargingProfile",{"connectorId":1,"csChargingProfiles":{"transactionId":99}}]',
            '[2,"b","SetChargingProfile",{"connectorId":0,"csChargingProfiles":{"chargingProfileId":1}}]',
            '[2,"c","RemoteStopTransaction",{"transactionId": 7001}]',  # another charger's (below)
            '[2,"d","Reset",{"type":"Soft"}]',
        ]
        for text in unrelated[:2] + unrelated[3:]:
            assert csms_call_for_charger(queue, "CP-1", text) == text  # byte for byte
        assert csms_call_for_charger(queue, "CP-2", unrelated[2]) == unrelated[2]
    finally:
        queue.close()
