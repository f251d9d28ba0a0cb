"""Every charger-initiated action of both versions gets an answer valid against the official schema."""

from __future__ import annotations

import jsonschema
import pytest

from ingest.actions import CHARGER_ACTIONS, load_schema
from ingest.answers import _minimal
from tests.support.chargers import raw_charger, rows
from tests.support.listener import RunningListener


def minimal_request(version: str, action: str) -> dict[str, object]:
    schema = load_schema(version, action)
    request = _minimal(schema, schema.get("definitions", {}))
    jsonschema.validate(request, schema)  # the generator itself is checked against the schema
    return request


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_charger_action_gets_a_schema_valid_answer_and_is_stored(
    listener: RunningListener, version: str
) -> None:
    subprotocol = "ocpp1.6" if version == "1.6" else "ocpp2.0.1"
    actions = sorted(CHARGER_ACTIONS[version])
    async with raw_charger(listener.url, f"ALL-{version}", subprotocol) as charger:
        for action in actions:
            answer = await charger.call(action, minimal_request(version, action), message_id=action)
            assert answer[0] == 3, f"{action}: {answer}"
            jsonschema.validate(answer[2], load_schema(version, action, response=True))
    listener.stop()
    stored = rows(listener.data_dir, "frames", "direction = 'in'", order="seq")
    assert [f["action"] for f in stored] == actions
    assert all(f["validation_error"] is None for f in stored)


def test_the_listener_knows_the_actions_the_specifications_list() -> None:
    # OCPP 1.6 (with the security whitepaper) and 2.0.1: 14 and 25 charger-initiated actions.
    assert len(CHARGER_ACTIONS["1.6"]) == 14
    assert len(CHARGER_ACTIONS["2.0.1"]) == 25
    for version, actions in CHARGER_ACTIONS.items():
        for action in actions:
            assert load_schema(version, action)["type"] == "object"
