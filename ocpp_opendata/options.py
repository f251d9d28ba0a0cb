"""Click options generated from `Settings`, shared by every subcommand.

Options default to None ("not given") so that the precedence CLI > environment > default is
decided in one place, `load_settings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ocpp_opendata.logs import configure_logging
from ocpp_opendata.settings import (
    Settings,
    SettingsError,
    _base_type,
    env_name,
    flag_name,
    load_settings,
)

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
COMMON = ("data_dir", "log_format", "log_level")


def settings_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add a click option for each named Settings field (plus the common ones)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed((*COMMON, *names)):
            f = _FIELDS[name]
            kind = _base_type(name)
            help_text = f"{f.metadata['help']} [env {env_name(name)}; default {f.default}]"
            flag = flag_name(f)
            if kind is bool:
                func = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text)(func)
                continue
            if f.metadata.get("choices"):
                click_type: Any = click.Choice(f.metadata["choices"])
            elif kind is Path:
                click_type = click.Path(path_type=Path)
            else:
                click_type = kind
            func = click.option(flag, name, type=click_type, default=None, help=help_text)(func)
        return func

    return decorate


def settings_from(options: dict[str, Any]) -> Settings:
    try:
        settings = load_settings({k: v for k, v in options.items() if k in _FIELDS})
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from exc
    configure_logging(settings.log_format, settings.log_level)
    return settings
