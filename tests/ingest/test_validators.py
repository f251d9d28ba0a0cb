"""Schema validators: read from the `ocpp` package's files without importing it, compiled ahead."""

from __future__ import annotations

import json
import subprocess
import sys

from ingest.actions import (
    COMMON_ACTIONS,
    NOT_YET_VALIDATED,
    load_schema,
    settled_validation_error,
    validation_error,
)


def test_warming_the_validators_compiles_the_common_actions_without_importing_the_ocpp_library() -> None:
    # Importing `ocpp` pulls in its ChargePoint and jsonschema (~160 ms); it used to happen on the first
    # frame a listener received, stalling every connection. A fresh interpreter shows what loads.
    script = (
        "import sys, json\n"
        "from ingest.actions import warm_validators, request_validator\n"
        "count = warm_validators(['1.6', '2.0.1'])\n"
        "print(json.dumps({'count': count, 'ocpp_imported': any(m == 'ocpp' or m.startswith('ocpp.')"
        " for m in sys.modules), 'cached': request_validator.cache_info().currsize}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    expected = len(COMMON_ACTIONS["1.6"]) + len(COMMON_ACTIONS["2.0.1"])
    assert result == {"count": expected, "ocpp_imported": False, "cached": expected}


def test_the_schemas_read_from_files_are_the_ocpp_packages_own() -> None:
    from importlib import resources

    shipped = resources.files("ocpp.v201.schemas").joinpath("TransactionEventRequest.json").read_text()
    assert load_schema("2.0.1", "TransactionEvent") == json.loads(shipped)


def test_a_deferred_validation_is_settled_to_the_same_error_as_validating_at_once() -> None:
    bad = {"connectorId": 1, "errorCode": "NoError", "status": "Exploded"}
    good = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    at_once = validation_error("1.6", "StatusNotification", bad)
    assert at_once is not None and "status" in at_once
    assert settled_validation_error(NOT_YET_VALIDATED, "1.6", "StatusNotification", bad) == at_once
    assert settled_validation_error(NOT_YET_VALIDATED, "1.6", "StatusNotification", good) is None
    # Recorded results pass through; an action of the other version is validated by its own schema.
    assert settled_validation_error("earlier text", "1.6", "StatusNotification", good) == "earlier text"
    assert settled_validation_error(None, "1.6", "StatusNotification", bad) is None
    event = {"eventType": "Started"}  # 2.0.1 TransactionEvent on a 1.6 connection, far from complete
    assert settled_validation_error(NOT_YET_VALIDATED, "1.6", "TransactionEvent", event) is not None
    assert settled_validation_error(NOT_YET_VALIDATED, "1.6", "NoSuchAction", {}) is None
