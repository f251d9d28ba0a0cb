"""What the CSMS decided, read from its answers, and the few rewrites store-and-forward needs.

In proxy mode the CSMS, not the listener, assigns 1.6 transaction ids and authorizes idTags; the
raw tables record its answers. Frames are relayed as the original text; only a 1.6 frame carrying a
transaction id that the proxy answered locally is re-serialised, with the CSMS's id.
"""

from __future__ import annotations

from typing import Any

import orjson

from ingest.coerce import as_int, as_text
from ingest.ocppj import CALLRESULT, read_frame
from ingest.proxy.queue import ForwardQueue

# CALLs whose typed rows hold something the answer decides (transaction id, authorization status):
# their rows are derived from the record that holds the CSMS's answer.
ANSWER_DECIDES = {
    ("1.6", "StartTransaction"),
    ("1.6", "StopTransaction"),
    ("2.0.1", "TransactionEvent"),
}
# 1.6 CALLs that carry a transaction id the proxy may have answered locally.
CARRIES_TRANSACTION_ID = {"StopTransaction", "MeterValues"}


def facts_from_answer(version: str, action: str, answer_text: str) -> dict[str, Any]:
    """The `facts` a standalone listener would have recorded, taken from the CSMS's answer."""
    frame = read_frame(answer_text)
    if frame.message_type != CALLRESULT or not isinstance(frame.payload, dict):
        return {"upstream_error": True}
    payload = frame.payload
    facts: dict[str, Any] = {}
    info = payload.get("idTagInfo") if version == "1.6" else payload.get("idTokenInfo")
    if isinstance(info, dict) and as_text(info.get("status")) is not None:
        facts["id_tag_status"] = as_text(info.get("status"))
    if (version, action) == ("1.6", "StartTransaction"):
        transaction_id = as_int(payload.get("transactionId"))
        if transaction_id is not None:
            facts["transaction_id"] = str(transaction_id)
    return facts


def local_transaction_id(queue: ForwardQueue, cp: str, payload: Any) -> int | None:
    """The payload's 1.6 transactionId when it is one the proxy answered locally."""
    if not isinstance(payload, dict):
        return None
    transaction_id = as_int(payload.get("transactionId"))
    if transaction_id is None or not queue.is_local(cp, transaction_id):
        return None
    return transaction_id


def with_transaction_id(text: str, transaction_id: int) -> str:
    """The CALL frame with its payload's transactionId replaced (re-serialised: the one exception)."""
    message = orjson.loads(text)
    message[3]["transactionId"] = transaction_id
    return orjson.dumps(message).decode()


def csms_call_for_charger(queue: ForwardQueue, cp: str, text: str) -> str:
    """A CSMS CALL naming its 1.6 transaction id for a transaction the charger knows by a local id.

    RemoteStopTransaction names it in `transactionId`, SetChargingProfile (a TxProfile for the running
    transaction) in `csChargingProfiles.transactionId`. The CALL is re-serialised with the local id;
    any other frame is returned as it came.
    """
    frame = read_frame(text)
    if frame.action not in ("RemoteStopTransaction", "SetChargingProfile") or not isinstance(
        frame.payload, dict
    ):
        return text
    message = orjson.loads(text)
    holder = message[3] if frame.action == "RemoteStopTransaction" else message[3].get("csChargingProfiles")
    if not isinstance(holder, dict):
        return text
    csms = as_int(holder.get("transactionId"))
    local = None if csms is None else queue.local_id(cp, csms)
    if local is None:
        return text
    holder["transactionId"] = local
    return orjson.dumps(message).decode()
