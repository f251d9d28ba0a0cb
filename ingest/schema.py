"""The raw zone's data contract: every table the listener writes, as Arrow schemas.

This module is the single definition imported by both `ingest` (which writes the tables) and
`pipelines` (which reads them). `docs/data-contract.md` is generated from it and a test fails
when the two disagree.

Layout: `<data root>/raw/<table>/date=YYYY-MM-DD/<unique name>.parquet`, partitioned by the UTC
date of *receipt* (not the charger's clock, which may be wrong or replayed from an offline queue).
File names are unique per listener process and WAL segment, so several listener processes can
share one data root and a recovered segment rewrites exactly the files it would have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
FLAGS = pa.list_(pa.string())


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    unit: str = ""
    nullable: bool = True


@dataclass(frozen=True)
class RawTable:
    name: str
    description: str
    columns: tuple[Column, ...]
    partition_column: str = "received_at"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns],
            metadata={"table": self.name},
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _ctx(*, with_message: bool = True) -> tuple[Column, ...]:
    """Columns that tie a derived row back to the frame and connection it came from."""
    cols = [
        Column(
            "received_at",
            TS,
            "When the listener received the frame (UTC, listener clock).",
            "UTC µs",
            nullable=False,
        ),
        Column(
            "charge_point_id", pa.string(), "Charge point identity from the connection URL.", nullable=False
        ),
        Column(
            "connection_id",
            pa.string(),
            "Unique id of the WebSocket connection (listener instance and a counter).",
            nullable=False,
        ),
        Column(
            "ocpp_version", pa.string(), "'1.6' or '2.0.1', from the negotiated subprotocol.", nullable=False
        ),
    ]
    if with_message:
        cols.append(Column("message_id", pa.string(), "OCPP-J message id of the CALL the row came from."))
    return tuple(cols)


QUALITY = Column(
    "quality",
    FLAGS,
    "Flags for anything coerced, defaulted or suspicious (see docs/leniency.md); empty when clean.",
)

FRAMES = RawTable(
    "frames",
    "Every inbound and outbound OCPP-J frame, text byte-identical (the source of truth).",
    (
        *_ctx(with_message=False),
        Column(
            "seq",
            pa.int64(),
            "Position of the frame in its connection, from 1, both directions.",
            nullable=False,
        ),
        Column(
            "direction",
            pa.string(),
            "'in' (charger → listener), 'out' (listener → charger); in proxy store-and-forward mode also "
            "'up' (a queued frame forwarded to the CSMS later) and 'down' (the CSMS's answer to it).",
            nullable=False,
        ),
        Column("message_type", pa.int8(), "2 CALL, 3 CALLRESULT, 4 CALLERROR; null when unparsable."),
        Column("message_id", pa.string(), "OCPP-J message id; null when none could be read."),
        Column("action", pa.string(), "Action of a CALL; for a result, the action it answers."),
        Column(
            "text",
            pa.string(),
            "The frame exactly as sent (UTF-8); oversized frames truncated.",
            nullable=False,
        ),
        Column("length", pa.int64(), "Length of the original frame.", "bytes", nullable=False),
        Column(
            "validation_error",
            pa.string(),
            "Schema validation error of a CALL that was answered "
            "leniently, or the reason it was refused; null when valid.",
        ),
    ),
)

METER_VALUES = RawTable(
    "meter_values",
    "One row per sampledValue of MeterValues, StopTransaction.transactionData and TransactionEvent.",
    (
        *_ctx(),
        Column(
            "source_action", pa.string(), "MeterValues, StopTransaction or TransactionEvent.", nullable=False
        ),
        Column(
            "value_index",
            pa.int32(),
            "Position of the sampled value within its frame, from 0.",
            nullable=False,
        ),
        Column(
            "timestamp",
            TS,
            "Charger's timestamp of the meterValue (charger clock); null if absent or unparsable.",
            "UTC µs",
        ),
        Column("connector_id", pa.int32(), "1.6 connectorId; 2.0.1 evse.connectorId when sent."),
        Column("evse_id", pa.int32(), "2.0.1 evseId; null for 1.6."),
        Column("transaction_id", pa.string(), "Transaction id as a string (1.6 integer or 2.0.1 string)."),
        Column(
            "measurand",
            pa.string(),
            "Measurand; 1.6 default Energy.Active.Import.Register filled in.",
            nullable=False,
        ),
        Column("phase", pa.string(), "Phase (L1, L2-N, ...); null when not sent."),
        Column("location", pa.string(), "Location; default Outlet filled in.", nullable=False),
        Column("context", pa.string(), "Reading context; default Sample.Periodic filled in.", nullable=False),
        Column("format", pa.string(), "Raw or SignedData; default Raw filled in.", nullable=False),
        Column("unit", pa.string(), "Canonical unit of `value` (Wh, W, A, V, Percent, ...).", nullable=False),
        Column("unit_raw", pa.string(), "Unit as sent (null when defaulted)."),
        Column("multiplier", pa.int32(), "2.0.1 unitOfMeasure.multiplier as sent (power of ten)."),
        Column(
            "value",
            pa.float64(),
            "Value in the canonical unit, multiplier and k-prefix applied; null when unparsable.",
            "see unit",
        ),
        Column(
            "value_raw",
            pa.string(),
            "Value exactly as sent (JSON numbers as their JSON text).",
            nullable=False,
        ),
        QUALITY,
    ),
)

STATUS_NOTIFICATIONS = RawTable(
    "status_notifications",
    "1.6 StatusNotification and 2.0.1 StatusNotification (connectorStatus).",
    (
        *_ctx(),
        Column("timestamp", TS, "Charger's timestamp of the status change; null if absent.", "UTC µs"),
        Column("connector_id", pa.int32(), "Connector id (0 = the whole charge point in 1.6)."),
        Column("evse_id", pa.int32(), "2.0.1 evseId; null for 1.6."),
        Column("status", pa.string(), "1.6 status or 2.0.1 connectorStatus, as sent."),
        Column("error_code", pa.string(), "1.6 errorCode as sent; null for 2.0.1."),
        Column("info", pa.string(), "1.6 info."),
        Column("vendor_id", pa.string(), "1.6 vendorId."),
        Column("vendor_error_code", pa.string(), "1.6 vendorErrorCode."),
        QUALITY,
    ),
)

TRANSACTION_EVENTS = RawTable(
    "transaction_events",
    "1.6 StartTransaction / StopTransaction and 2.0.1 TransactionEvent. Holds raw idTags: never published.",
    (
        *_ctx(),
        Column(
            "source_action",
            pa.string(),
            "StartTransaction, StopTransaction or TransactionEvent.",
            nullable=False,
        ),
        Column(
            "event_type",
            pa.string(),
            "Started, Updated or Ended (1.6 start → Started, stop → Ended).",
            nullable=False,
        ),
        Column("timestamp", TS, "Charger's timestamp of the event; null if absent.", "UTC µs"),
        Column(
            "transaction_id",
            pa.string(),
            "1.6: the id the listener assigned (start) or the charger "
            "sent (stop); 2.0.1: transactionInfo.transactionId.",
        ),
        Column("connector_id", pa.int32(), "1.6 connectorId; 2.0.1 evse.connectorId."),
        Column("evse_id", pa.int32(), "2.0.1 evse.id."),
        Column("id_tag", pa.string(), "Raw idTag / idToken.idToken as sent (personal data)."),
        Column("id_token_type", pa.string(), "2.0.1 idToken.type."),
        Column("id_token_extra", pa.string(), "2.0.1 idToken.additionalInfo as JSON (may hold tokens)."),
        Column("id_tag_status", pa.string(), "Authorization answer the listener gave (Accepted, Invalid)."),
        Column("meter_start_wh", pa.float64(), "1.6 meterStart.", "Wh"),
        Column("meter_stop_wh", pa.float64(), "1.6 meterStop.", "Wh"),
        Column("seq_no", pa.int64(), "2.0.1 seqNo."),
        Column("offline", pa.bool_(), "2.0.1 offline flag."),
        Column("trigger_reason", pa.string(), "2.0.1 triggerReason."),
        Column("charging_state", pa.string(), "2.0.1 transactionInfo.chargingState."),
        Column("stopped_reason", pa.string(), "1.6 StopTransaction reason / 2.0.1 stoppedReason."),
        Column("reservation_id", pa.int64(), "Reservation id when sent."),
        Column("remote_start_id", pa.int64(), "2.0.1 transactionInfo.remoteStartId."),
        QUALITY,
    ),
)

BOOT_NOTIFICATIONS = RawTable(
    "boot_notifications",
    "BootNotification of either version: who the charger says it is.",
    (
        *_ctx(),
        Column("vendor", pa.string(), "chargePointVendor / chargingStation.vendorName."),
        Column("model", pa.string(), "chargePointModel / chargingStation.model."),
        Column("serial_number", pa.string(), "chargePointSerialNumber / chargingStation.serialNumber."),
        Column("firmware_version", pa.string(), "firmwareVersion."),
        Column("reason", pa.string(), "2.0.1 boot reason."),
        Column("meter_type", pa.string(), "1.6 meterType."),
        Column("meter_serial_number", pa.string(), "1.6 meterSerialNumber."),
        QUALITY,
    ),
)

CONNECTIONS = RawTable(
    "connections",
    "Connection lifecycle and every refused handshake: tells 'offline' from 'idle'.",
    (
        Column("received_at", TS, "When the event happened (listener clock).", "UTC µs", nullable=False),
        Column("event", pa.string(), "connected, disconnected or refused.", nullable=False),
        Column("charge_point_id", pa.string(), "Charge point id; for refusals the requested id, escaped."),
        Column("connection_id", pa.string(), "Connection id (null for refused handshakes)."),
        Column("ocpp_version", pa.string(), "Negotiated version, when any."),
        Column("subprotocols_offered", pa.string(), "Subprotocols the client offered, comma-separated."),
        Column("remote_address", pa.string(), "Peer address and port."),
        Column("auth", pa.string(), "none, basic or tls-basic: how the charger authenticated."),
        Column("reason", pa.string(), "Why a handshake was refused or a connection closed."),
        Column("close_code", pa.int32(), "WebSocket close code on disconnect."),
        Column("listener_id", pa.string(), "Listener process instance that saw the event.", nullable=False),
    ),
)

QUARANTINE = RawTable(
    "quarantine",
    "Frames that could not be understood, with the reason; kept for inspection, never dropped.",
    (
        *_ctx(with_message=False),
        Column("message_id", pa.string(), "Message id when one could be read."),
        Column("action", pa.string(), "Action when one could be read."),
        Column(
            "reason",
            pa.string(),
            "invalid_json, not_ocpp_j, oversized, unknown_action, "
            "binary_frame, unintelligible, strict_validation.",
            nullable=False,
        ),
        Column("detail", pa.string(), "Human-readable detail of the reason."),
        Column(
            "text", pa.string(), "The frame (truncated to the size limit when oversized).", nullable=False
        ),
        Column("length", pa.int64(), "Length of the original frame.", "bytes", nullable=False),
        Column("sha256", pa.string(), "SHA-256 of the original frame, hex.", nullable=False),
    ),
)

OPERATOR_CALLS = RawTable(
    "operator_calls",
    "Every request to the operator API's call endpoint and how it ended (docs/operate.md); the CALL and "
    "the charger's answer themselves are in `frames` (message_id).",
    (
        Column(
            "received_at",
            TS,
            "When the operator's request arrived (listener clock).",
            "UTC µs",
            nullable=False,
        ),
        Column("operator", pa.string(), "Name of the operator token (never the token).", nullable=False),
        Column("charge_point_id", pa.string(), "Charge point the call was for.", nullable=False),
        Column("connection_id", pa.string(), "Connection the CALL went out on; null when none did."),
        Column("ocpp_version", pa.string(), "OCPP version of that connection."),
        Column("action", pa.string(), "The CSMS-initiated action asked for.", nullable=False),
        Column("message_id", pa.string(), "OCPP-J message id of the CALL; null when none was sent."),
        Column(
            "outcome",
            pa.string(),
            "result, call_error, timeout, charger_gone, not_connected, invalid_payload, unknown_action "
            "or proxy_mode.",
            nullable=False,
        ),
        Column("http_status", pa.int32(), "HTTP status the operator got.", nullable=False),
        Column("latency_ms", pa.float64(), "From the request to the answer.", "ms", nullable=False),
        Column("error_code", pa.string(), "The charger's CallError code, when it sent one."),
        Column(
            "listener_id", pa.string(), "Listener process that held the charger's connection.", nullable=False
        ),
    ),
)

TABLES: dict[str, RawTable] = {
    t.name: t
    for t in (
        FRAMES,
        METER_VALUES,
        STATUS_NOTIFICATIONS,
        TRANSACTION_EVENTS,
        BOOT_NOTIFICATIONS,
        CONNECTIONS,
        QUARANTINE,
        OPERATOR_CALLS,
    )
}


def partition_dir(raw_root: Path, table: str, day: date) -> Path:
    return raw_root / table / f"date={day.isoformat()}"


def partition_day(received_at: datetime) -> date:
    return received_at.date()


def contract_markdown() -> str:
    """The generated part of docs/data-contract.md."""
    out: list[str] = []
    for table in TABLES.values():
        out.append(f"### `{table.name}`\n\n{table.description}\n")
        out.append("| column | type | unit | nullable | meaning |\n|---|---|---|---|---|")
        for c in table.columns:
            out.append(
                f"| `{c.name}` | `{c.type}` | {c.unit or ''} | {'yes' if c.nullable else 'no'} | "
                f"{c.description} |"
            )
        out.append("")
    return "\n".join(out)
