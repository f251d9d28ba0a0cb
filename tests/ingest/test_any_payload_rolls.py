"""Property: whatever JSON a charger sends in a CALL, its rows derive and roll into valid Parquet."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.extract import DERIVERS
from ingest.sink import write_records
from tests.support.chargers import rows

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
KEYS = [
    "connectorId", "transactionId", "meterValue", "sampledValue", "value", "unit", "unitOfMeasure",
    "multiplier", "timestamp", "idTag", "idToken", "meterStart", "meterStop", "evse", "transactionInfo",
    "seqNo", "offline", "status", "connectorStatus", "evseId", "chargingStation", "measurand", "format",
]  # fmt: skip
# Payloads shaped like the real ones (known keys, nested) but with arbitrary values.
payload = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), json_value, max_size=6),
    lambda inner: st.dictionaries(st.sampled_from(KEYS), inner | st.lists(inner, max_size=2), max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(DERIVERS)), body=payload)
def test_any_payload_of_a_derived_action_rolls_into_parquet(
    key: tuple[str, str], body: dict[str, Any]
) -> None:
    version, action = key
    text = orjson.dumps([2, "m1", action, body]).decode()
    record = {
        "k": "x", "cp": "CP", "conn": "c-1", "v": version,
        "in": [1, 1_763_625_600_000_000, text, len(text), "invalid", None, None, None],
        "out": [2, 1_763_625_600_000_100, '[3,"m1",{}]'], "f": {"transaction_id": "5"},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        write_records([record], data / "raw", "seg")
        frames = rows(data, "frames")
        assert [f["direction"] for f in frames] == ["in", "out"]
        assert frames[0]["text"] == text
        quarantined = rows(data, "quarantine")
        assert quarantined == [], f"derivation failed for {text}"
