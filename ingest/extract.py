"""Raw table rows from write-ahead-log records: a pure function of what was received and answered.

The WAL holds only frames (and connection events); the typed tables are derived from them when a
segment rolls into Parquet, and again identically when a segment is recovered after a crash. The
ack path therefore does no row building at all.

Record shapes (orjson in the WAL):
- exchange: {"k": "x", "cp", "conn", "v", "in": [seq, at_us, text, length, validation_error,
  quarantine_reason, quarantine_detail, sha256], "out": [seq, at_us, text] | None, "f": facts | None}
  validation_error is the text, null (valid), or true: not validated yet, done here
  (`NOT_YET_VALIDATED`, proxy mode, which relays before it validates).
- connection: {"k": "c", "row": {connections columns, received_at as µs since the epoch}}
- operator call: {"k": "p", "row": {operator_calls columns, received_at as µs}} (ingest/operate)

Proxy mode (ingest/proxy, docs/proxy.md) adds:
- exchange flags: "defer": true (the CALL's typed rows come from the later record holding the CSMS's
  answer), "act": the action a charger's CallResult answers (CSMS-initiated CALLs).
- relayed frame: {"k": "o", "cp", "conn", "v", "d": "out", "seq", "at", "text", "act",
  "call": [at_us, text, validation_error, message_id, action_version] | None, "f": facts | None}
  A frame the listener relayed to the charger (a CSMS answer or CALL); with "call", the typed rows of
  that CALL, derived from it with the CSMS's answer as facts.
- forwarded frame (store-and-forward): {"k": "u", "cp", "conn", "v", "seq", "up": [at_us, text],
  "down": [at_us, text], "act", "call", "f"}: a CALL answered locally, later sent to the CSMS ("up")
  and the CSMS's answer ("down"), which the charger never saw.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.actions import settled_validation_error
from ingest.coerce import as_float, as_int, as_object, as_text
from ingest.ocppj import CALL, read_frame
from ingest.sampled_values import read_sampled_value
from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.extract")

Rows = dict[str, list[dict[str, Any]]]


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def parse_timestamp(value: Any, flags: list[str], name: str = "timestamp") -> datetime | None:
    if value is None:
        flags.append(f"{name}_missing")
        return None
    if not isinstance(value, str):
        flags.append(f"{name}_unparsable")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        flags.append(f"{name}_unparsable")
        return None
    if parsed.tzinfo is None:
        flags.append(f"{name}_without_zone")
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def extract(records: list[dict[str, Any]]) -> Rows:
    rows: Rows = defaultdict(list)
    for record in records:
        if record["k"] in ("c", "p"):
            row = dict(record["row"])
            row["received_at"] = from_us(row["received_at"])
            rows["connections" if record["k"] == "c" else "operator_calls"].append(row)
            continue
        if record["k"] in ("o", "u"):
            _proxied(record, rows)
            continue
        one: Rows = defaultdict(list)
        try:
            _exchange(record, one)
        except Exception:
            # A bug in deriving rows must not block the roll of everything else: keep the frame
            # in `frames` and `quarantine` so it can be derived again once the bug is fixed.
            log.exception("deriving rows failed", extra=fields(connection=record.get("conn")))
            one = defaultdict(list)
            _exchange({**record, "in": [*record["in"][:5], "extract_error", "deriving rows failed", ""]}, one)
        for table, table_rows in one.items():
            rows[table].extend(table_rows)
    return rows


def _exchange(rec: dict[str, Any], rows: Rows) -> None:
    seq, at_us, text, length, verr, q_reason, q_detail, sha = rec["in"]
    base = {
        "received_at": from_us(at_us),
        "charge_point_id": rec["cp"],
        "connection_id": rec["conn"],
        "ocpp_version": rec["v"],
    }
    # Oversized and binary frames are stored truncated or re-encoded: not parsed again.
    frame = read_frame(text) if q_reason not in ("oversized", "binary_frame") else None
    message_id = frame.message_id if frame else None
    action = frame.action if frame else None
    if frame is not None:
        verr = settled_validation_error(verr, rec["v"], action, frame.payload)
    if action is None:
        action = rec.get("act")
    rows["frames"].append(
        {
            **base,
            "seq": seq,
            "direction": "in",
            "message_type": frame.message_type if frame else None,
            "message_id": message_id,
            "action": action,
            "text": text,
            "length": length,
            "validation_error": verr,
        }
    )
    if q_reason is not None:
        rows["quarantine"].append(
            {
                **base,
                "message_id": message_id or rec.get("mid"),
                "action": action or rec.get("act"),
                "reason": q_reason,
                "detail": q_detail,
                "text": text,
                "length": length,
                "sha256": sha,
            }
        )
    out = rec.get("out")
    if out is not None:
        out_frame = read_frame(out[2])
        rows["frames"].append(
            {
                **base,
                "received_at": from_us(out[1]),
                "seq": out[0],
                "direction": "out",
                "message_type": out_frame.message_type,
                "message_id": out_frame.message_id,
                "action": action,
                "text": out[2],
                "length": len(out[2].encode()),
                "validation_error": None,
            }
        )
    if q_reason is not None or frame is None or rec.get("defer"):
        return
    _derive(base, frame, rec.get("av"), verr, rec.get("f") or {}, rows)


def _derive(
    base: dict[str, Any], frame: Any, action_version: str | None, verr: str | None,
    facts: dict[str, Any], rows: Rows,
) -> None:  # fmt: skip
    """The typed rows of one CALL."""
    if frame.message_type != CALL or not isinstance(frame.payload, dict):
        return
    derive = DERIVERS.get((action_version or base["ocpp_version"], frame.action))
    if derive is not None:
        ctx = {**base, "message_id": frame.message_id}
        flags = ["schema_invalid"] if verr else []
        if action_version and action_version != base["ocpp_version"]:
            flags.append("action_of_other_version")
        derive(ctx, frame.payload, facts, flags, rows)


def _frame_row(
    base: dict[str, Any], seq: int, direction: str, at_us: int, text: str, act: Any
) -> dict[str, Any]:
    frame = read_frame(text)
    return {
        **base,
        "received_at": from_us(at_us),
        "seq": seq,
        "direction": direction,
        "message_type": frame.message_type,
        "message_id": frame.message_id,
        "action": frame.action or act,
        "text": text,
        "length": len(text.encode()),
        "validation_error": None,
    }


def _proxied(rec: dict[str, Any], rows: Rows) -> None:
    """Rows of a frame relayed (k=o) or forwarded (k=u) in proxy mode."""
    base = {"charge_point_id": rec["cp"], "connection_id": rec["conn"], "ocpp_version": rec["v"]}
    if rec["k"] == "o":
        rows["frames"].append(_frame_row(base, rec["seq"], rec["d"], rec["at"], rec["text"], rec.get("act")))
    else:
        for direction in ("up", "down"):
            at_us, text = rec[direction]
            rows["frames"].append(_frame_row(base, rec["seq"], direction, at_us, text, rec.get("act")))
    call = rec.get("call")
    if call is None:
        return
    at_us, text, verr, _mid, action_version = call
    try:
        frame = read_frame(text)
        verr = settled_validation_error(verr, rec["v"], frame.action, frame.payload)
        _derive({**base, "received_at": from_us(at_us)}, frame, action_version, verr,
                rec.get("f") or {}, rows)  # fmt: skip
    except Exception:
        # As for exchanges: the frames are kept; the typed rows can be derived again once fixed.
        log.exception("deriving rows failed", extra=fields(connection=rec.get("conn")))


# --- meter values --------------------------------------------------------------------------------


def _meter_rows(
    ctx: dict[str, Any],
    meter_values: Any,
    *,
    source_action: str,
    version: str,
    connector_id: int | None,
    evse_id: int | None,
    transaction_id: str | None,
    flags: list[str],
    rows: Rows,
) -> None:
    frame_flags = list(flags)
    if isinstance(meter_values, dict):
        frame_flags.append("meter_value_object")
        meter_values = [meter_values]
    if not isinstance(meter_values, list):
        return
    index = 0
    for mv in meter_values:
        mv = as_object(mv)
        mv_flags = list(frame_flags)
        timestamp = parse_timestamp(mv.get("timestamp"), mv_flags)
        sampled = mv.get("sampledValue")
        if isinstance(sampled, dict):
            mv_flags.append("sampled_value_object")
            sampled = [sampled]
        if not isinstance(sampled, list):
            continue
        for sv in sampled:
            cols = read_sampled_value(sv, version)
            cols["quality"] = mv_flags + cols["quality"]
            rows["meter_values"].append(
                {
                    **ctx,
                    "source_action": source_action,
                    "value_index": index,
                    "timestamp": timestamp,
                    "connector_id": connector_id,
                    "evse_id": evse_id,
                    "transaction_id": transaction_id,
                    **cols,
                }
            )
            index += 1


def _meter_values16(ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows) -> None:
    tx = p.get("transactionId")
    _meter_rows(
        ctx,
        p.get("meterValue"),
        source_action="MeterValues",
        version="1.6",
        connector_id=as_int(p.get("connectorId")),
        evse_id=None,
        transaction_id=None if tx is None else as_text(tx),
        flags=flags,
        rows=rows,
    )


def _meter_values201(
    ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows
) -> None:
    _meter_rows(
        ctx,
        p.get("meterValue"),
        source_action="MeterValues",
        version="2.0.1",
        connector_id=None,
        evse_id=as_int(p.get("evseId")),
        transaction_id=None,
        flags=flags,
        rows=rows,
    )


# --- transactions --------------------------------------------------------------------------------

_TX_EMPTY = {
    "transaction_id": None, "connector_id": None, "evse_id": None, "id_tag": None, "id_token_type": None,
    "id_token_extra": None, "id_tag_status": None, "meter_start_wh": None, "meter_stop_wh": None,
    "seq_no": None, "offline": None, "trigger_reason": None, "charging_state": None, "stopped_reason": None,
    "reservation_id": None, "remote_start_id": None,
}  # fmt: skip


def _start16(
    ctx: dict[str, Any], p: dict[str, Any], facts: dict[str, Any], flags: list[str], rows: Rows
) -> None:
    flags = list(flags)
    if facts.get("retried"):
        flags.append("retried_start")
    timestamp = parse_timestamp(p.get("timestamp"), flags)
    rows["transaction_events"].append(
        {
            **ctx,
            **_TX_EMPTY,
            "source_action": "StartTransaction",
            "event_type": "Started",
            "timestamp": timestamp,
            "transaction_id": facts.get("transaction_id"),
            "connector_id": as_int(p.get("connectorId")),
            "id_tag": as_text(p.get("idTag")),
            "id_tag_status": facts.get("id_tag_status"),
            "meter_start_wh": as_float(p.get("meterStart")),
            "reservation_id": as_int(p.get("reservationId")),
            "quality": flags,
        }
    )


def _stop16(
    ctx: dict[str, Any], p: dict[str, Any], facts: dict[str, Any], flags: list[str], rows: Rows
) -> None:
    flags = list(flags)
    if facts.get("unknown_transaction"):
        flags.append("unknown_transaction_id")
    timestamp = parse_timestamp(p.get("timestamp"), flags)
    tx = p.get("transactionId")
    transaction_id = None if tx is None else as_text(tx)
    rows["transaction_events"].append(
        {
            **ctx,
            **_TX_EMPTY,
            "source_action": "StopTransaction",
            "event_type": "Ended",
            "timestamp": timestamp,
            "transaction_id": transaction_id,
            "id_tag": as_text(p.get("idTag")),
            "id_tag_status": facts.get("id_tag_status"),
            "meter_stop_wh": as_float(p.get("meterStop")),
            "stopped_reason": as_text(p.get("reason")),
            "quality": flags,
        }
    )
    _meter_rows(
        ctx,
        p.get("transactionData"),
        source_action="StopTransaction",
        version="1.6",
        connector_id=None,
        evse_id=None,
        transaction_id=transaction_id,
        flags=flags,
        rows=rows,
    )


def _transaction_event(
    ctx: dict[str, Any], p: dict[str, Any], facts: dict[str, Any], flags: list[str], rows: Rows
) -> None:
    flags = list(flags)
    timestamp = parse_timestamp(p.get("timestamp"), flags)
    info = as_object(p.get("transactionInfo"))
    evse = as_object(p.get("evse"))
    token = p.get("idToken")
    token_obj = as_object(token)
    extra = token_obj.get("additionalInfo")
    transaction_id = as_text(info.get("transactionId"))
    connector_id = as_int(evse.get("connectorId"))
    evse_id = as_int(evse.get("id"))
    rows["transaction_events"].append(
        {
            **ctx,
            **_TX_EMPTY,
            "source_action": "TransactionEvent",
            "event_type": as_text(p.get("eventType")) or "Unknown",
            "timestamp": timestamp,
            "transaction_id": transaction_id,
            "connector_id": connector_id,
            "evse_id": evse_id,
            "id_tag": as_text(token_obj.get("idToken")) if token_obj else as_text(token),
            "id_token_type": as_text(token_obj.get("type")),
            "id_token_extra": None if extra is None else orjson.dumps(extra).decode(),
            "id_tag_status": facts.get("id_tag_status"),
            "seq_no": as_int(p.get("seqNo")),
            "offline": p.get("offline") if isinstance(p.get("offline"), bool) else None,
            "trigger_reason": as_text(p.get("triggerReason")),
            "charging_state": as_text(info.get("chargingState")),
            "stopped_reason": as_text(info.get("stoppedReason")),
            "reservation_id": as_int(p.get("reservationId")),
            "remote_start_id": as_int(info.get("remoteStartId")),
            "quality": flags,
        }
    )
    _meter_rows(
        ctx,
        p.get("meterValue"),
        source_action="TransactionEvent",
        version="2.0.1",
        connector_id=connector_id,
        evse_id=evse_id,
        transaction_id=transaction_id,
        flags=flags,
        rows=rows,
    )


# --- status and boot -----------------------------------------------------------------------------


def _status16(ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows) -> None:
    flags = list(flags)
    timestamp = parse_timestamp(p.get("timestamp"), flags) if "timestamp" in p else None
    rows["status_notifications"].append(
        {
            **ctx,
            "timestamp": timestamp,
            "connector_id": as_int(p.get("connectorId")),
            "evse_id": None,
            "status": as_text(p.get("status")),
            "error_code": as_text(p.get("errorCode")),
            "info": as_text(p.get("info")),
            "vendor_id": as_text(p.get("vendorId")),
            "vendor_error_code": as_text(p.get("vendorErrorCode")),
            "quality": flags,
        }
    )


def _status201(ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows) -> None:
    flags = list(flags)
    timestamp = parse_timestamp(p.get("timestamp"), flags)
    rows["status_notifications"].append(
        {
            **ctx,
            "timestamp": timestamp,
            "connector_id": as_int(p.get("connectorId")),
            "evse_id": as_int(p.get("evseId")),
            "status": as_text(p.get("connectorStatus")),
            "error_code": None,
            "info": None,
            "vendor_id": None,
            "vendor_error_code": None,
            "quality": flags,
        }
    )


def _boot16(ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows) -> None:
    rows["boot_notifications"].append(
        {
            **ctx,
            "vendor": as_text(p.get("chargePointVendor")),
            "model": as_text(p.get("chargePointModel")),
            "serial_number": as_text(p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber")),
            "firmware_version": as_text(p.get("firmwareVersion")),
            "reason": None,
            "meter_type": as_text(p.get("meterType")),
            "meter_serial_number": as_text(p.get("meterSerialNumber")),
            "quality": list(flags),
        }
    )


def _boot201(ctx: dict[str, Any], p: dict[str, Any], facts: Any, flags: list[str], rows: Rows) -> None:
    station = as_object(p.get("chargingStation"))
    rows["boot_notifications"].append(
        {
            **ctx,
            "vendor": as_text(station.get("vendorName")),
            "model": as_text(station.get("model")),
            "serial_number": as_text(station.get("serialNumber")),
            "firmware_version": as_text(station.get("firmwareVersion")),
            "reason": as_text(p.get("reason")),
            "meter_type": None,
            "meter_serial_number": None,
            "quality": list(flags),
        }
    )


DERIVERS = {
    ("1.6", "MeterValues"): _meter_values16,
    ("1.6", "StartTransaction"): _start16,
    ("1.6", "StopTransaction"): _stop16,
    ("1.6", "StatusNotification"): _status16,
    ("1.6", "BootNotification"): _boot16,
    ("2.0.1", "MeterValues"): _meter_values201,
    ("2.0.1", "TransactionEvent"): _transaction_event,
    ("2.0.1", "StatusNotification"): _status201,
    ("2.0.1", "BootNotification"): _boot201,
}
