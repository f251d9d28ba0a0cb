"""What a simulation run is asked to do, validated, with the time window it plays."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingest.simulator.profiles import PROFILES
from ocpp_opendata.settings.simulator import SimulatorSettings as _D

if TYPE_CHECKING:
    from ocpp_opendata.settings import Settings


class SimulationError(Exception):
    """The run cannot go on; the message says why in terms an operator can act on."""


def parse_profiles(text: str) -> tuple[tuple[str, float], ...]:
    """'street=0.6,hub=0.4' → (('street', 0.6), ('hub', 0.4)), checked against the known profiles."""
    mix: list[tuple[str, float]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, weight = part.partition("=")
        name = name.strip()
        if name not in PROFILES:
            raise SimulationError(f"unknown site profile {name!r}; known: {', '.join(PROFILES)}")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            raise SimulationError(f"site profile weight {weight!r} is not a number") from None
        if value < 0:
            raise SimulationError(f"site profile weight for {name} is negative")
        mix.append((name, value))
    if not mix or sum(w for _, w in mix) <= 0:
        raise SimulationError("the site profile mix needs at least one profile with a positive weight")
    return tuple(mix)


def parse_start(text: str, tz: ZoneInfo) -> datetime:
    """A date means local midnight; a datetime without offset is local time."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SimulationError(f"--start {text!r}: expected YYYY-MM-DD or an ISO datetime") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


@dataclass(frozen=True)
class SimulationOptions:
    """Everything a run depends on. The truth is a pure function of these (minus url/speed/paths)."""

    url: str = _D.sim_url
    chargers: int = _D.sim_chargers
    days: float = _D.sim_days
    start: datetime | None = None
    speed: float = _D.sim_speed
    seed: int = _D.sim_seed
    truth: Path | None = None
    station_registry: Path | None = None
    timezone: str = _D.sim_timezone
    share_ocpp201: float = _D.sim_share_ocpp201
    share_two_connectors: float = _D.sim_share_two_connectors
    profiles: tuple[tuple[str, float], ...] = field(default_factory=lambda: parse_profiles(_D.sim_profiles))
    private_share: float = _D.sim_private_share
    users_per_charger: float = _D.sim_users_per_charger
    sample_interval: int = _D.sim_sample_interval
    heartbeat_every: int = _D.sim_heartbeat_every
    fault_rate: float = _D.sim_fault_rate
    maintenance_rate: float = _D.sim_maintenance_rate
    failed_start_share: float = _D.sim_failed_start_share
    zero_energy_share: float = _D.sim_zero_energy_share
    fault_end_share: float = _D.sim_fault_end_share
    offline_rate: float = _D.sim_offline_rate
    clock_skew_share: float = _D.sim_clock_skew_share
    numbers_share: float = _D.sim_numbers_share
    kwh_share: float = _D.sim_kwh_share
    multiplier_share: float = _D.sim_multiplier_share
    register_reset_rate: float = _D.sim_register_reset_rate
    retry_rate: float = _D.sim_retry_rate
    id_prefix: str = _D.sim_id_prefix
    answer_timeout: float = _D.sim_answer_timeout
    progress: bool = False  # a live terminal display (the CLI turns it on for a TTY)

    @classmethod
    def from_settings(cls, settings: Settings) -> SimulationOptions:
        tz = zone(settings.sim_timezone)
        options = cls(
            url=settings.sim_url,
            chargers=settings.sim_chargers,
            days=settings.sim_days,
            start=parse_start(settings.sim_start, tz) if settings.sim_start else None,
            speed=settings.sim_speed,
            seed=settings.sim_seed,
            truth=settings.sim_truth,
            station_registry=settings.sim_station_registry,
            timezone=settings.sim_timezone,
            share_ocpp201=settings.sim_share_ocpp201,
            share_two_connectors=settings.sim_share_two_connectors,
            profiles=parse_profiles(settings.sim_profiles),
            private_share=settings.sim_private_share,
            users_per_charger=settings.sim_users_per_charger,
            sample_interval=settings.sim_sample_interval,
            heartbeat_every=settings.sim_heartbeat_every,
            fault_rate=settings.sim_fault_rate,
            maintenance_rate=settings.sim_maintenance_rate,
            failed_start_share=settings.sim_failed_start_share,
            zero_energy_share=settings.sim_zero_energy_share,
            fault_end_share=settings.sim_fault_end_share,
            offline_rate=settings.sim_offline_rate,
            clock_skew_share=settings.sim_clock_skew_share,
            numbers_share=settings.sim_numbers_share,
            kwh_share=settings.sim_kwh_share,
            multiplier_share=settings.sim_multiplier_share,
            register_reset_rate=settings.sim_register_reset_rate,
            retry_rate=settings.sim_retry_rate,
            id_prefix=settings.sim_id_prefix,
            answer_timeout=settings.sim_answer_timeout,
        )
        return options if settings.sim_imperfections else options.without_imperfections()

    def without_imperfections(self) -> SimulationOptions:
        return dataclasses.replace(
            self,
            offline_rate=0.0,
            clock_skew_share=0.0,
            numbers_share=0.0,
            kwh_share=0.0,
            multiplier_share=0.0,
            register_reset_rate=0.0,
            retry_rate=0.0,
        )

    def validate(self) -> None:
        zone(self.timezone)
        if self.chargers < 1:
            raise SimulationError("--chargers must be at least 1")
        if not self.days > 0:
            raise SimulationError("--days must be positive")
        if self.speed < 0:
            raise SimulationError("--speed must be 0 (as fast as possible) or positive")
        if self.sample_interval < 1:
            raise SimulationError("--sample-interval must be at least 1 second")
        if self.heartbeat_every < 0:
            raise SimulationError("--heartbeat-every must be 0 (none) or positive")
        if not self.url.startswith(("ws://", "wss://")):
            raise SimulationError(f"--url {self.url!r}: expected ws://HOST:PORT/PATH or wss://...")
        shares = {
            "--share-ocpp201": self.share_ocpp201,
            "--share-two-connectors": self.share_two_connectors,
            "--private-share": self.private_share,
            "--clock-skew-share": self.clock_skew_share,
            "--numbers-share": self.numbers_share,
            "--kwh-share": self.kwh_share,
            "--multiplier-share": self.multiplier_share,
            "--retry-rate": self.retry_rate,
            "--failed-start-share": self.failed_start_share,
            "--zero-energy-share": self.zero_energy_share,
            "--fault-end-share": self.fault_end_share,
        }
        for flag, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise SimulationError(f"{flag} must be between 0 and 1, got {value}")
        if self.numbers_share + self.kwh_share > 1 or self.multiplier_share + self.kwh_share > 1:
            raise SimulationError("--numbers-share/--multiplier-share plus --kwh-share must not exceed 1")
        if self.failed_start_share + self.zero_energy_share + self.fault_end_share > 1:
            raise SimulationError(
                "--failed-start-share, --zero-energy-share and --fault-end-share must add up to at most 1"
            )
        for flag, value in {
            "--fault-rate": self.fault_rate,
            "--maintenance-rate": self.maintenance_rate,
            "--offline-rate": self.offline_rate,
            "--register-reset-rate": self.register_reset_rate,
            "--users-per-charger": self.users_per_charger,
        }.items():
            if value < 0:
                raise SimulationError(f"{flag} must not be negative")
        parse_profiles(",".join(f"{n}={w}" for n, w in self.profiles))


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SimulationError(f"--timezone {name!r} is not a known IANA time zone") from None


@dataclass(frozen=True)
class Window:
    """The simulated interval [start, end) in whole UTC epoch seconds."""

    start: int
    end: int
    tz: ZoneInfo

    @property
    def start_dt(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    @property
    def end_dt(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)


def default_start(days: float, tz: ZoneInfo, now: float) -> datetime:
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def window_for(options: SimulationOptions, now: float | None = None) -> Window:
    """The window to play, refusing one whose simulated clock would overtake the real one."""
    tz = zone(options.timezone)
    now = time.time() if now is None else now
    start = options.start if options.start is not None else default_start(options.days, tz, now)
    start_s = int(start.timestamp())
    end_s = start_s + round(options.days * 86400)
    check_never_ahead(start_s, end_s, options.speed, now)
    return Window(start_s, end_s, tz)


def check_never_ahead(start: int, end: int, speed: float, now: float) -> None:
    """Simulated time start + elapsed × speed must stay at or behind the real clock for the whole run.

    The pipeline reads a timestamp ahead of its receipt time as a wrong clock, so a start that would
    overtake real time is refused rather than silently shifted.
    """
    duration = end - start
    if speed == 0:
        latest_ok = now - duration
        how = "as fast as possible (--speed 0), every timestamp must already be past"
    elif speed <= 1:
        latest_ok = now
        how = f"at --speed {speed:g} the simulated clock must start in the past"
    else:
        latest_ok = now + duration / speed - duration
        how = f"at --speed {speed:g} the simulated clock gains {duration * (1 - 1 / speed) / 3600:.1f} h"
    if start > latest_ok:
        latest = datetime.fromtimestamp(int(latest_ok), UTC).isoformat()
        raise SimulationError(
            f"--start {datetime.fromtimestamp(start, UTC).isoformat()} would run the simulated clock ahead "
            f"of the real one ({how}); start at {latest} or earlier"
        )
