"""The one settings object that every subcommand shares.

Each field is settable three ways, in this order of precedence: a command-line option, an
environment variable (`OCPP_OPENDATA_<FIELD>`), the default. The README's configuration table is
generated from this module (see `settings_table_markdown`), and a test fails when it is stale.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_type_hints

from ocpp_opendata.settings.api import ApiSettings
from ocpp_opendata.settings.core import CoreSettings
from ocpp_opendata.settings.listener import ListenerSettings
from ocpp_opendata.settings.operate import OperateSettings
from ocpp_opendata.settings.pipeline import PipelineSettings
from ocpp_opendata.settings.proxy import ProxySettings
from ocpp_opendata.settings.simulator import SimulatorSettings
from ocpp_opendata.settings.storage import StorageSettings

ENV_PREFIX = "OCPP_OPENDATA_"


# One frozen object for every subcommand, composed of one section per stage so that each stage's
# options live in a module of their own. Dataclass fields follow the reversed MRO, so the sections
# are listed last-to-first: CoreSettings' fields come first in --help and in the README table.
# A new section: a frozen dataclass whose fields all have defaults, added to this list.
@dataclass(frozen=True)
class Settings(
    SimulatorSettings,
    PipelineSettings,
    ApiSettings,
    ProxySettings,
    OperateSettings,
    ListenerSettings,
    StorageSettings,
    CoreSettings,
):
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise SettingsError(f"{env_name(f.name)}={value!r}: expected one of {', '.join(choices)}")


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
