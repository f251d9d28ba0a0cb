"""The listener's answer to each charger-initiated CALL, for both OCPP versions.

Handlers read payloads tolerantly (a schema-invalid but meaningful frame is still answered) and
raise `Unintelligible` only when no sensible answer exists. Actions without a dedicated handler get
the smallest answer that is valid against the official response schema, preferring the value that
means "accepted, nothing to do".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.actions import load_schema
from ingest.auth import IdTagPolicy
from ingest.coerce import as_int, as_text
from ingest.txids import TransactionIds


class Unintelligible(Exception):
    """The CALL cannot be answered meaningfully; `code` is the OCPP-J error code to send."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass
class Answer:
    payload: dict[str, Any]
    # Facts the answer decided that the raw tables record (e.g. the transaction id assigned).
    facts: dict[str, Any] = field(default_factory=dict)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _id_token(payload: dict[str, Any]) -> str | None:
    token = payload.get("idToken")
    if isinstance(token, dict):
        return as_text(token.get("idToken"))
    return as_text(token)


Handler = Callable[["Responder", str, dict[str, Any]], Awaitable[Answer]]


def _minimal(schema: dict[str, Any], definitions: dict[str, Any]) -> Any:
    """The smallest instance of a JSON schema: required properties only, preferring acceptance."""
    if "$ref" in schema:
        return _minimal(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    if "enum" in schema:
        for preferred in ("Accepted", "Unknown", "NotSupported"):
            if preferred in schema["enum"]:
                return preferred
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _minimal(props[name], definitions) for name in schema.get("required", [])}
    if kind == "array":
        return [_minimal(schema["items"], definitions) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return utc_now_iso() if schema.get("format") == "date-time" else ""
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return None


def schema_minimal_answer(version: str, action: str) -> dict[str, Any]:
    schema = load_schema(version, action, response=True)
    return _minimal(schema, schema.get("definitions", {}))


class Responder:
    def __init__(self, heartbeat_interval: int, id_tags: IdTagPolicy, txids: TransactionIds) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.id_tags = id_tags
        self.txids = txids

    async def answer(self, charge_point_id: str, version: str, action: str, payload: Any) -> Answer:
        if not isinstance(payload, dict):
            raise Unintelligible(
                "FormationViolation" if version == "1.6" else "FormatViolation",
                "payload is not a JSON object",
            )
        handler = HANDLERS.get((version, action))
        if handler is None:
            return Answer(FIXED_ANSWERS.get((version, action)) or schema_minimal_answer(version, action))
        return await handler(self, charge_point_id, payload)

    def id_tag_info(self, id_tag: str | None) -> tuple[dict[str, Any], str]:
        status = self.id_tags.status(id_tag)
        return {"status": status}, status


# --- OCPP 1.6 ------------------------------------------------------------------------------------


async def _boot(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    return Answer({"status": "Accepted", "currentTime": utc_now_iso(), "interval": r.heartbeat_interval})


async def _heartbeat(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    return Answer({"currentTime": utc_now_iso()})


async def _authorize16(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    info, status = r.id_tag_info(as_text(p.get("idTag")))
    return Answer({"idTagInfo": info}, {"id_tag_status": status})


async def _start16(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    id_tag = as_text(p.get("idTag"))
    info, status = r.id_tag_info(id_tag)
    key = (
        cp,
        as_int(p.get("connectorId")),
        id_tag,
        as_int(p.get("meterStart")),
        as_text(p.get("timestamp")),
    )
    transaction_id, retried = await r.txids.assign(key)
    facts = {"id_tag_status": status, "transaction_id": str(transaction_id), "retried": retried}
    return Answer({"idTagInfo": info, "transactionId": transaction_id}, facts)


async def _stop16(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    transaction_id = as_int(p.get("transactionId"))
    known = transaction_id is not None and await r.txids.exists(cp, transaction_id)
    facts: dict[str, Any] = {"unknown_transaction": not known}
    id_tag = as_text(p.get("idTag"))
    if id_tag is None:
        return Answer({}, facts)
    info, status = r.id_tag_info(id_tag)
    facts["id_tag_status"] = status
    return Answer({"idTagInfo": info}, facts)


# --- OCPP 2.0.1 ----------------------------------------------------------------------------------


async def _authorize201(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    info, status = r.id_tag_info(_id_token(p))
    return Answer({"idTokenInfo": info}, {"id_tag_status": status})


async def _transaction_event(r: Responder, cp: str, p: dict[str, Any]) -> Answer:
    # idTokenInfo is only expected when the event carries an idToken (2.0.1 E01/E03).
    if p.get("idToken") is None:
        return Answer({})
    info, status = r.id_tag_info(_id_token(p))
    return Answer({"idTokenInfo": info}, {"id_tag_status": status})


HANDLERS: dict[tuple[str, str], Handler] = {
    ("1.6", "BootNotification"): _boot,
    ("1.6", "Heartbeat"): _heartbeat,
    ("1.6", "Authorize"): _authorize16,
    ("1.6", "StartTransaction"): _start16,
    ("1.6", "StopTransaction"): _stop16,
    ("2.0.1", "BootNotification"): _boot,
    ("2.0.1", "Heartbeat"): _heartbeat,
    ("2.0.1", "Authorize"): _authorize201,
    ("2.0.1", "TransactionEvent"): _transaction_event,
}

# Answers where the schema's first choice would mislead the charger.
FIXED_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    # We implement no vendor extensions: "UnknownVendorId" is the specified answer, not a CallError.
    ("1.6", "DataTransfer"): {"status": "UnknownVendorId"},
    ("2.0.1", "DataTransfer"): {"status": "UnknownVendorId"},
    # We are not a certificate authority or an ISO 15118 backend.
    ("1.6", "SignCertificate"): {"status": "Rejected"},
    ("2.0.1", "SignCertificate"): {"status": "Rejected"},
    ("2.0.1", "Get15118EVCertificate"): {"status": "Failed", "exiResponse": ""},
    ("2.0.1", "GetCertificateStatus"): {"status": "Failed"},
    # We do no smart charging, so we do not take the EV's charging needs into account.
    ("2.0.1", "NotifyEVChargingNeeds"): {"status": "Rejected"},
}
