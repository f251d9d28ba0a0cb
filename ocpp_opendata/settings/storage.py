"""Where the raw zone and the published releases live: under DATA_DIR, or in an S3-compatible store."""

from __future__ import annotations

from dataclasses import dataclass

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class StorageSettings:
    store: str = opt(
        "",
        "Shared store of the raw zone and the releases: empty keeps them under DATA_DIR; "
        "'s3://bucket/prefix' puts them in S3 (endpoint, region and keys from the usual AWS_* variables). "
        "DATA_DIR stays local either way (write-ahead log, state, caches).",
    )
    local_max_bytes: int = opt(
        8 * 1024**3,
        "With an s3 store: local disk cap on write-ahead log plus Parquet files awaiting upload "
        "(DATA_DIR/outbox); past it the listener stops acknowledging until uploads drain.",
    )
    upload_backoff_max: float = opt(
        30.0, "Longest wait (s) between two upload attempts while the s3 store is unreachable."
    )
    upload_drain_seconds: float = opt(
        10.0,
        "On shutdown, how long (s) the listener keeps uploading its backlog; "
        "what is left stays in DATA_DIR/outbox and is uploaded at the next start.",
    )
    state_url: str = opt(
        "",
        "Transaction-id state shared by listeners: empty uses SQLite in DATA_DIR/state (processes on one "
        "disk); 'postgresql://user@host/db' for listeners on several machines (password from PGPASSWORD "
        "or ~/.pgpass, not the URL).",
    )
