"""Settings of the charger-fleet simulator (`ocpp-opendata simulate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class SimulatorSettings:
    sim_url: str = opt(
        "ws://127.0.0.1:9000/ocpp",
        "Listener URL; each charger connects to URL/<charge point id>.",
        flag="--url",
    )
    sim_chargers: int = opt(20, "Number of simulated charge points.", flag="--chargers")
    sim_days: float = opt(7.0, "Simulated days of activity.", flag="--days")
    sim_start: str | None = opt(
        None,
        "First simulated instant (YYYY-MM-DD or ISO datetime, in --timezone unless it has an offset); "
        "default: today minus --days, 00:00.",
        flag="--start",
    )
    sim_speed: float = opt(
        0.0,
        "Simulated seconds per real second (10080: a week per minute); 0: as fast as the listener answers.",
        flag="--speed",
    )
    sim_seed: int = opt(1, "Random seed: the same seed and options give byte-identical truth.", flag="--seed")
    sim_truth: Path | None = opt(None, "Folder for the ground-truth Parquet files.", flag="--truth")
    sim_station_registry: Path | None = opt(
        None, "Folder for stations.csv and areas.geojson of the simulated fleet.", flag="--station-registry"
    )
    sim_timezone: str = opt(
        "Europe/Amsterdam", "Time zone of the simulated city (arrival profiles are local).", flag="--timezone"
    )
    sim_share_ocpp201: float = opt(
        0.4, "Share of charge points speaking OCPP 2.0.1 (the rest speak 1.6).", flag="--share-ocpp201"
    )
    sim_share_two_connectors: float = opt(
        0.6, "Share of charge points with two connectors (EVSEs).", flag="--share-two-connectors"
    )
    sim_profiles: str = opt(
        "street=0.6,workplace=0.25,hub=0.15",
        "Site profile mix, name=weight comma-separated (street, workplace, hub).",
        flag="--profiles",
    )
    sim_private_share: float = opt(
        0.15,
        "Share of street/workplace charge points that are not public (home, private or fleet).",
        flag="--private-share",
    )
    sim_users_per_charger: float = opt(
        6.0, "RFID users per charge point (repeat visitors with a home station).", flag="--users-per-charger"
    )
    sim_sample_interval: int = opt(
        60, "Simulated seconds between MeterValues samples during a transaction.", flag="--sample-interval"
    )
    sim_heartbeat_every: int = opt(
        900, "Simulated seconds between Heartbeats; 0: none.", flag="--heartbeat-every"
    )
    sim_fault_rate: float = opt(
        0.01, "Faults (error code, then recovery) per connector per day.", flag="--fault-rate"
    )
    sim_maintenance_rate: float = opt(
        0.005,
        "Maintenance windows (connector Unavailable, then Available) per connector per day.",
        flag="--maintenance-rate",
    )
    sim_failed_start_share: float = opt(
        0.03,
        "Share of sessions whose transaction starts but never delivers energy (the driver gives up).",
        flag="--failed-start-share",
    )
    sim_zero_energy_share: float = opt(
        0.02,
        "Share of sessions that stay plugged in for their whole visit without the car drawing energy.",
        flag="--zero-energy-share",
    )
    sim_fault_end_share: float = opt(
        0.01,
        "Share of sessions ended by a charger fault (Faulted mid-charge, transaction stopped).",
        flag="--fault-end-share",
    )
    sim_imperfections: bool = opt(
        True, "Inject the imperfections below at their rates; off: a perfect fleet.", flag="--imperfections"
    )
    sim_offline_rate: float = opt(
        0.05,
        "Offline periods per charge point per day (messages queued, replayed on reconnect).",
        flag="--offline-rate",
    )
    sim_clock_skew_share: float = opt(
        0.05, "Share of charge points whose clock runs 2 min to 4 h ahead.", flag="--clock-skew-share"
    )
    sim_numbers_share: float = opt(
        0.1, "Share of 1.6 charge points sending meter values as JSON numbers.", flag="--numbers-share"
    )
    sim_kwh_share: float = opt(
        0.1, "Share of charge points reporting energy and power in kWh and kW.", flag="--kwh-share"
    )
    sim_multiplier_share: float = opt(
        0.2,
        "Share of 2.0.1 charge points reporting energy and power with unitOfMeasure multiplier 3.",
        flag="--multiplier-share",
    )
    sim_register_reset_rate: float = opt(
        0.01,
        "Reboots that reset the energy registers to 0, per charge point per day.",
        flag="--register-reset-rate",
    )
    sim_retry_rate: float = opt(
        0.01,
        "Share of transaction start/stop messages sent twice (same content, new message id, new socket).",
        flag="--retry-rate",
    )
    sim_id_prefix: str = opt("SIM", "Prefix of the simulated charge point ids.", flag="--id-prefix")
    sim_answer_timeout: float = opt(
        30.0, "Seconds to wait for the listener's answer to a CALL.", flag="--answer-timeout"
    )
    sim_dry_run: bool = opt(
        False, "Only write the truth and the station registry; connect to nothing.", flag="--dry-run"
    )
