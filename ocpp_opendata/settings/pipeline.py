"""Settings of the Dagster pipelines (`ocpp-opendata pipeline ...`, `dagster dev`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class PipelineSettings:
    timezone: str = opt("Europe/Stockholm", "Time zone of the published local days and hours (IANA name).")
    pipeline_start_date: str = opt("2024-01-01", "First local date the daily partitions cover (YYYY-MM-DD).")
    pseudonym_key: str | None = opt(
        None, "Pseudonym master key (secret; set it in the environment, never in the data directory)."
    )
    pseudonym_key_file: Path | None = opt(
        None, "File holding the pseudonym master key (outside the data directory)."
    )
    pseudonym_period: str = opt(
        "month", "Period after which pseudonyms change (key rotation).", choices=("month", "quarter", "year")
    )
    pseudonym_scope: str = opt(
        "station",
        "'station': a user's visits at two stations are never linkable; 'network' links them (risky opt-in).",
        choices=("station", "network"),
    )
    privacy_k: int = opt(10, "Minimum distinct users per station and period before it is shown by id.")
    round_minutes: int = opt(15, "Session times are rounded to this many minutes.")
    round_energy_kwh: float = opt(0.5, "Session energy is rounded to this many kWh.")
    round_power_kw: float = opt(1.0, "Session power is rounded to this many kW.")
    clock_skew_minutes: float = opt(
        5.0, "Charger timestamps further ahead of their receipt time than this are replaced by it."
    )
    clock_offset_min_seconds: float = opt(
        60.0,
        "A charger clock estimated to be off by more than this (live messages against their receipt, "
        "or a bulk replay's shared clock) has its timestamps shifted by the offset (clock_corrected).",
    )
    clock_offset_max_spread_seconds: float = opt(
        30.0,
        "A clock offset is applied only when its live messages agree within this spread "
        "(interquartile range of timestamp minus receipt time).",
    )
    outage_offline_after: float = opt(
        2.0,
        "A charger silent on an open connection for more than this many heartbeat intervals counts as "
        "offline (from its first missed heartbeat).",
    )
    max_session_days: int = opt(
        3, "How long after its partition a session may still end (days); longer sessions stay open."
    )
    station_registry: Path | None = opt(None, "Operator registry CSV (default: DATA_DIR/stations.csv).")
    areas_geojson: Path | None = opt(
        None, "District polygons (default: DATA_DIR/areas.geojson when present)."
    )
    license: str = opt("CC-BY-4.0", "Licence of the published datasets (SPDX id).")
    publisher: str = opt("ocpp-opendata", "Publisher named in datapackage.json and the DCAT catalogue.")
    releases_kept: int = opt(30, "Published releases kept (older ones are deleted).")
    publish_interval: int = opt(
        900,
        "Least time (s) between two releases started by the publish sensor (live data: not every minute).",
    )
    raw_retention_days: int = opt(
        90, "After this many days raw idTags and frame texts are replaced by keyed pseudonyms."
    )
    pipeline_executor: str = opt(
        "multiprocess",
        "How a launched Dagster run executes its steps: 'multiprocess' (Dagster's default: one process per "
        "step on the run's machine), 'in_process', or 'celery' (steps go to `dagster-celery` workers; broker "
        "and result backend from DAGSTER_CELERY_BROKER_URL / DAGSTER_CELERY_BACKEND_URL).",
        choices=("multiprocess", "in_process", "celery"),
    )
    celery_queue: str = opt(
        "dagster", "Celery queue the pipeline's steps are sent to (workers listen on it)."
    )
    nightly_cron: str = opt(
        "0 2 * * *", "Cron expression (local time) of the schedule that materializes the previous day."
    )
    raw_sensor_interval: int = opt(60, "Least time (s) between two evaluations of the raw files sensor.")

    @property
    def registry_path(self) -> Path:
        return self.station_registry or self.data_dir / "stations.csv"  # type: ignore[attr-defined]

    @property
    def areas_path(self) -> Path:
        return self.areas_geojson or self.data_dir / "areas.geojson"  # type: ignore[attr-defined]
