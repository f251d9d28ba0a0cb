"""Settings of the OCPP listener (`ocpp-opendata listen`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class ListenerSettings:
    listen_host: str = opt("127.0.0.1", "Address the OCPP listener binds to.", flag="--host")
    listen_port: int = opt(9000, "Port of the OCPP listener (WebSocket, /health, /metrics).", flag="--port")
    subprotocols: str = opt(
        "ocpp2.0.1,ocpp1.6", "Accepted OCPP subprotocols, in the server's order of preference."
    )
    no_subprotocol: str = opt(
        "ocpp1.6",
        "What a charger that offers no subprotocol is taken to speak; 'refuse' closes it.",
        choices=("ocpp1.6", "ocpp2.0.1", "refuse"),
    )
    heartbeat_interval: int = opt(300, "Heartbeat interval (s) sent in BootNotification answers.")
    authorize: str = opt(
        "allowlist",
        "Who may charge: 'allowlist' accepts only idTags in --allowlist; 'accept-all' accepts everyone.",
        choices=("allowlist", "accept-all"),
    )
    allowlist: Path | None = opt(None, "File of accepted idTags, one per line (policy 'allowlist').")
    charge_points: Path | None = opt(
        None, "File of known charge point ids, one per line; others are refused before the upgrade."
    )
    credentials: Path | None = opt(
        None, "Basic-auth credentials file (security profile 1), made with 'ocpp-opendata credentials'."
    )
    tls_cert: Path | None = opt(None, "TLS certificate chain (PEM) for wss:// (security profile 2).")
    tls_key: Path | None = opt(None, "TLS private key (PEM) for wss://.")
    max_frame_bytes: int = opt(
        65536, "Frames larger than this are quarantined and answered with a CallError (socket limit 1 MiB)."
    )
    rate_limit: float = opt(
        200.0, "Frames per second one connection may send before reading from it pauses (0: no limit)."
    )
    rate_burst: int = opt(1000, "Burst size of the per-connection rate limit.")
    roll_seconds: float = opt(60.0, "Raw Parquet files roll at least this often (s).")
    roll_bytes: int = opt(16 * 1024 * 1024, "Raw Parquet files roll once this much WAL has accumulated.")
    wal_dir: Path | None = opt(None, "Write-ahead-log folder on local disk (default: DATA_DIR/wal).")
    wal_max_bytes: int = opt(
        2 * 1024**3, "Local WAL disk cap; past it the listener stops acknowledging until it drains."
    )
    reuse_port: bool = opt(
        False,
        "Open the port with SO_REUSEPORT, so that several listener processes on one machine share it "
        "(the kernel spreads new connections over them).",
    )
    strict: bool = opt(False, "Answer schema-invalid CALLs with a CallError instead of leniently.")
    operator_broker: str = opt(
        "",
        "Redis URL ('redis://host:6379/0') joining several listener processes into one system for "
        "operators: live status events are published there (docs/operate.md); `serve` applies them to "
        "its live feeds at once (docs/live.md). Empty: single process.",
    )

    @property
    def subprotocol_list(self) -> list[str]:
        return [p.strip() for p in self.subprotocols.split(",") if p.strip()]

    @property
    def effective_wal_dir(self) -> Path:
        return self.wal_dir if self.wal_dir is not None else self.data_dir / "wal"  # type: ignore[attr-defined]
