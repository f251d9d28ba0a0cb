"""The one Dagster resource: the project's Settings (environment variables + an optional data dir)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from ocpp_opendata.settings import Settings, load_settings, parse_value

# Never carried in resource config: run config is stored in Dagster's database, secrets are not.
SECRET_FIELDS = frozenset({"pseudonym_key"})


class PipelineSettings(ConfigurableResource):
    """Settings come from OCPP_OPENDATA_* variables; `data_dir` and `overrides` here win when given.

    `overrides` carries what a caller set beyond the environment (e.g. `ocpp-opendata pipeline run
    --pseudonym-key-file F`), as field name → text, so every step sees the settings the caller saw.
    """

    data_dir: str = ""
    overrides: dict[str, str] = Field(default_factory=dict)

    def settings(self) -> Settings:
        given: dict[str, Any] = {name: parse_value(name, text) for name, text in self.overrides.items()}
        if self.data_dir:
            given["data_dir"] = Path(self.data_dir)
        return load_settings(given)


def overrides_of(settings: Settings) -> dict[str, str]:
    """The fields of `settings` that differ from what the environment alone gives (secrets excepted)."""
    baseline = load_settings()
    return {
        f.name: str(getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if f.name not in SECRET_FIELDS
        and getattr(settings, f.name) is not None
        and getattr(settings, f.name) != getattr(baseline, f.name)
    }
