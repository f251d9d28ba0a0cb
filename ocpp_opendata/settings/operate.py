"""Settings of the operator side of the listener (`ocpp-opendata listen --operator-tokens ...`,
`ocpp-opendata operator-token`, `ocpp-opendata chargers`): docs/operate.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class OperateSettings:
    operator_tokens: Path | None = opt(
        None,
        "Operator token file (salted hashes, made with 'ocpp-opendata operator-token'). Without it the "
        "listener serves no operator API at all.",
    )
    operator_host: str = opt(
        "127.0.0.1", "Address the operator API binds to (its own port, never the chargers')."
    )
    operator_port: int = opt(
        9001, "Port of the operator API (GET /v1/chargers, POST /v1/chargers/{id}/calls/...)."
    )
    operator_tls_cert: Path | None = opt(None, "TLS certificate chain (PEM) of the operator API (https://).")
    operator_tls_key: Path | None = opt(None, "TLS private key (PEM) of the operator API.")
    operator_call_timeout: float = opt(
        30.0, "Seconds an operator call waits for the charger's answer before it is answered 504."
    )
    operator_url: str = opt("http://127.0.0.1:9001", "Operator API that 'ocpp-opendata chargers' talks to.")
    operator_token: str = opt(
        "", "Operator token that 'ocpp-opendata chargers' sends (better from the environment than a flag)."
    )
