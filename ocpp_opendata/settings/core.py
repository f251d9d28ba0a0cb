"""Settings shared by every stage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class CoreSettings:
    data_dir: Path = opt(Path("data"), "Data root: raw zone, published releases and state live below it.")
    log_format: str = opt("text", "Log format on stderr.", choices=("text", "json"))
    log_level: str = opt("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "state"
