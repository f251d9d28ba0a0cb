"""Settings of proxy mode: the listener relays chargers to an upstream CSMS (`listen --upstream`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class ProxySettings:
    upstream: str | None = opt(
        None,
        "Proxy mode: relay every charger to this CSMS URL (ws:// or wss://; the charger id is appended).",
    )
    upstream_config: Path | None = opt(
        None, "TOML file of per-charger upstream overrides: url, credentials, CA bundle (docs/proxy.md)."
    )
    upstream_ca_file: Path | None = opt(
        None, "CA bundle (PEM) that verifies the CSMS's TLS certificate (default: the system's)."
    )
    upstream_offline: str = opt(
        "refuse",
        "When the CSMS is unreachable or slow: 'refuse' the charger (it keeps its own queue) or "
        "'store-and-forward' (answer locally, forward in order when the CSMS returns).",
        choices=("refuse", "store-and-forward"),
    )
    upstream_connect_timeout: float = opt(10.0, "Seconds to open the upstream connection (handshake).")
    upstream_answer_timeout: float = opt(
        30.0, "Seconds the CSMS has to answer a relayed CALL before the offline mode applies."
    )
    upstream_retry_seconds: float = opt(
        5.0, "Store-and-forward: seconds between attempts to reconnect to an unreachable CSMS."
    )
