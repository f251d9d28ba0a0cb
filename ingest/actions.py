"""Which actions a charger may initiate, and their official JSON schemas.

The schemas are the OCA's official ones, shipped inside the `ocpp` package (mobilityhouse/ocpp,
`ocpp/v16/schemas`, `ocpp/v201/schemas`), so they are versioned with a dependency instead of copied.
They are read as files: importing `ocpp` itself would pull in its ChargePoint and jsonschema
(~160 ms) for nothing, and it used to happen on the first frame, stalling every connection.
Validators are compiled once per action with fastjsonschema (~40 µs per MeterValues instead of
~250 µs with jsonschema). The listener compiles the common actions of its versions before it accepts
connections (`warm_validators`, ~40 ms per version), the rare ones on first use.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

VERSIONS = ("1.6", "2.0.1")
SUBPROTOCOL_VERSION = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}

# OCPP 1.6 edition 2, §4 "Operations initiated by Charge Point", plus the charger-initiated
# messages of the "Improved security for OCPP 1.6-J" whitepaper (edition 3).
CHARGER_ACTIONS_16 = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "LogStatusNotification",
    }
)

# OCPP 2.0.1 part 2, messages sent by the Charging Station to the CSMS.
CHARGER_ACTIONS_201 = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)

CHARGER_ACTIONS = {"1.6": CHARGER_ACTIONS_16, "2.0.1": CHARGER_ACTIONS_201}

# What nearly every charger sends within its first minutes; compiled before the listener accepts
# connections, so no charger's first MeterValues waits for a compile (12–38 ms each).
COMMON_ACTIONS = {
    "1.6": ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "StartTransaction",
            "StopTransaction", "Authorize"),
    "2.0.1": ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent",
              "Authorize", "NotifyEvent"),
}  # fmt: skip


def other_version(version: str) -> str:
    return "2.0.1" if version == "1.6" else "1.6"


def resolve_action(version: str, action: str) -> str | None:
    """The version whose schema applies to `action` on a `version` connection, or None if unknown.

    An action of the other version is still answered (by that version's rules) and flagged: the
    frame is meaningful, and refusing it would make the charger drop data.
    """
    if action in CHARGER_ACTIONS[version]:
        return version
    if action in CHARGER_ACTIONS[other_version(version)]:
        return other_version(version)
    return None


def _schema_file(version: str, action: str, response: bool) -> str:
    if version == "1.6":
        return f"{action}Response.json" if response else f"{action}.json"
    return f"{action}Response.json" if response else f"{action}Request.json"


@cache
def schema_dir(version: str) -> Path:
    # find_spec locates a top-level package without running its __init__ (see the module docstring).
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the ocpp package (its official JSON schemas) is not installed")
    return Path(spec.submodule_search_locations[0]) / ("v16" if version == "1.6" else "v201") / "schemas"


@cache
def load_schema(version: str, action: str, response: bool = False) -> dict[str, Any]:
    text = (schema_dir(version) / _schema_file(version, action, response)).read_text("utf-8")
    return json.loads(text)


@cache
def request_validator(version: str, action: str) -> Any:
    return fastjsonschema.compile(load_schema(version, action))


def warm_validators(versions: list[str] | tuple[str, ...]) -> int:
    """Compile the validators of the common actions of `versions`; returns how many."""
    count = 0
    for version in versions:
        for action in COMMON_ACTIONS.get(version, ()):
            request_validator(version, action)
            count += 1
    return count


def validation_error(version: str, action: str, payload: Any) -> str | None:
    """None if `payload` is a valid request, else the first violation in words."""
    try:
        request_validator(version, action)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message[:500]
    return None


# In a WAL record's validation_error slot: the frame was stored unvalidated (proxy mode relays
# first) and the roll into Parquet validates it. JSON `true`, which no error text can be.
NOT_YET_VALIDATED = True


def settled_validation_error(recorded: str | bool | None, version: str, action: str | None,
                             payload: Any) -> str | None:  # fmt: skip
    """The validation error a WAL record stands for: as recorded, or computed now if deferred."""
    if recorded is not NOT_YET_VALIDATED:
        return recorded  # type: ignore[return-value]
    action_version = resolve_action(version, action or "")
    return None if action_version is None else validation_error(action_version, action or "", payload)
