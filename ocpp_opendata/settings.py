"""The one settings object that every subcommand shares.

Each field is settable three ways, in this order of precedence: a command-line option, an
environment variable (`OCPP_OPENDATA_<FIELD>`), the default. The README's configuration table is
generated from this module (see `settings_table_markdown`), and a test fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

ENV_PREFIX = "OCPP_OPENDATA_"


def _opt(default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] = ()) -> Any:
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass(frozen=True)
class Settings:
    # --- shared by every stage -------------------------------------------------------------
    data_dir: Path = _opt(Path("data"), "Data root: raw zone, published releases and state live below it.")
    log_format: str = _opt("text", "Log format on stderr.", choices=("text", "json"))
    log_level: str = _opt("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    # --- ingest: the OCPP listener ---------------------------------------------------------
    listen_host: str = _opt("127.0.0.1", "Address the OCPP listener binds to.", flag="--host")
    listen_port: int = _opt(9000, "Port of the OCPP listener (WebSocket, /health, /metrics).", flag="--port")
    subprotocols: str = _opt(
        "ocpp2.0.1,ocpp1.6", "Accepted OCPP subprotocols, in the server's order of preference."
    )
    no_subprotocol: str = _opt(
        "ocpp1.6",
        "What a charger that offers no subprotocol is taken to speak; 'refuse' closes it.",
        choices=("ocpp1.6", "ocpp2.0.1", "refuse"),
    )
    heartbeat_interval: int = _opt(300, "Heartbeat interval (s) sent in BootNotification answers.")
    authorize: str = _opt(
        "allowlist",
        "Who may charge: 'allowlist' accepts only idTags in --allowlist; 'accept-all' accepts everyone.",
        choices=("allowlist", "accept-all"),
    )
    allowlist: Path | None = _opt(None, "File of accepted idTags, one per line (policy 'allowlist').")
    charge_points: Path | None = _opt(
        None, "File of known charge point ids, one per line; others are refused before the upgrade."
    )
    credentials: Path | None = _opt(
        None, "Basic-auth credentials file (security profile 1), made with 'ocpp-opendata credentials'."
    )
    tls_cert: Path | None = _opt(None, "TLS certificate chain (PEM) for wss:// (security profile 2).")
    tls_key: Path | None = _opt(None, "TLS private key (PEM) for wss://.")
    max_frame_bytes: int = _opt(
        65536, "Frames larger than this are quarantined and answered with a CallError (socket limit 1 MiB)."
    )
    rate_limit: float = _opt(
        200.0, "Frames per second one connection may send before reading from it pauses (0: no limit)."
    )
    rate_burst: int = _opt(1000, "Burst size of the per-connection rate limit.")
    roll_seconds: float = _opt(60.0, "Raw Parquet files roll at least this often (s).")
    roll_bytes: int = _opt(64 * 1024 * 1024, "Raw Parquet files roll once this much WAL has accumulated.")
    wal_dir: Path | None = _opt(None, "Write-ahead-log folder on local disk (default: DATA_DIR/wal).")
    wal_max_bytes: int = _opt(
        2 * 1024**3, "Local WAL disk cap; past it the listener stops acknowledging until it drains."
    )
    strict: bool = _opt(False, "Answer schema-invalid CALLs with a CallError instead of leniently.")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise SettingsError(f"{env_name(f.name)}={value!r}: expected one of {', '.join(choices)}")

    @property
    def subprotocol_list(self) -> list[str]:
        return [p.strip() for p in self.subprotocols.split(",") if p.strip()]

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"

    @property
    def effective_wal_dir(self) -> Path:
        return self.wal_dir if self.wal_dir is not None else self.data_dir / "wal"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def flag_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(field_name: str) -> type:
    hint = get_type_hints(Settings)[field_name]
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def parse_value(field_name: str, raw: str) -> Any:
    kind = _base_type(field_name)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{env_name(field_name)}={raw!r}: expected true or false")
    if kind is Path:
        return Path(raw) if raw else None
    try:
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{env_name(field_name)}={raw!r}: expected {kind.__name__}") from exc


def load_settings(
    overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings from overrides (CLI options; None means 'not given'), then environment, then defaults."""
    env = os.environ if env is None else env
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        given = overrides.get(f.name)
        if given is not None:
            values[f.name] = given
        elif env_name(f.name) in env:
            values[f.name] = parse_value(f.name, env[env_name(f.name)])
    return Settings(**values)


def settings_table_markdown() -> str:
    """The README's configuration table, generated so that it cannot drift from the code."""
    lines = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = "(none)" if default is None else f"`{default}`"
        meaning = f.metadata["help"]
        if f.metadata.get("choices"):
            meaning += " One of: " + ", ".join(f"`{c}`" for c in f.metadata["choices"]) + "."
        lines.append(f"| `{flag_name(f)}` | `{env_name(f.name)}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"
