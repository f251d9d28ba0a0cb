"""The fleet and everything it will do: a pure function of the options and the seed.

`plan_fleet` decides every charger, user, session, fault, offline period and reboot before a single
frame is sent, so the ground truth does not depend on network timing. Each random stream is seeded
from (seed, purpose, charger, connector): adding chargers leaves the existing ones unchanged, and the
imperfection switches use streams of their own or draws that are always made, so turning one on or
off changes the raw data without changing the sessions.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from statistics import NormalDist

from ingest.simulator import profiles as P
from ingest.simulator.options import SimulationOptions, Window, window_for
from ingest.simulator.registry import place, station_name

MIN_GAP_S = 60  # a connector stays Available at least this long between sessions
VALUE_FORMATS = ("standard", "json_numbers", "kwh", "multiplier")

# A model per way of reporting values: the imperfection is a property of the charger model.
MODELS = {
    ("standard", "AC"): ("Voltaic", "VX-AC22"),
    ("standard", "DC"): ("Voltaic", "VX-DC300"),
    ("json_numbers", "AC"): ("Numerique", "N-Charge 2"),
    ("json_numbers", "DC"): ("Numerique", "N-Rapid"),
    ("kwh", "AC"): ("KiloWatt Systems", "KWS-11"),
    ("kwh", "DC"): ("KiloWatt Systems", "KWS-HPC"),
    ("multiplier", "AC"): ("Multiplex Energy", "MX-201"),
    ("multiplier", "DC"): ("Multiplex Energy", "MX-201-DC"),
}


def stream(seed: int, *parts: object) -> random.Random:
    """An independent, reproducible random stream (string seeds hash with SHA-512, not hash())."""
    return random.Random("/".join(str(p) for p in (seed, *parts)))


@dataclass(frozen=True)
class User:
    id_tag: str
    token_type: str  # 2.0.1 idToken type: ISO14443 (RFID card) or eMAID (one-time roaming contract)
    user_id: str | None  # stable id of a population member; None for one-time tokens
    home: int | None = None  # index of the user's home charger


@dataclass(frozen=True)
class Charger:
    index: int
    charge_point_id: str
    ocpp_version: str  # "1.6" or "2.0.1"
    profile: str
    access: str  # public, private, home, fleet
    connectors: int
    current: str  # AC or DC
    max_power_kw: float  # per connector
    vendor: str
    model: str
    serial_number: str
    firmware_version: str
    value_format: str  # one of VALUE_FORMATS
    clock_skew_s: int
    initial_register_wh: tuple[int, ...]
    name: str
    latitude: float
    longitude: float
    area: str

    @property
    def dc(self) -> bool:
        return self.current == "DC"


@dataclass(frozen=True)
class PowerCurve:
    """Constant power, then a linear taper to p_end_w, then nothing (the car is full)."""

    p_max_w: float
    p_end_w: float
    hold_s: float
    taper_s: float

    @property
    def full_s(self) -> float:
        return self.hold_s + self.taper_s

    def energy_wh(self, t: float) -> float:
        if t <= 0:
            return 0.0
        if t <= self.hold_s:
            return self.p_max_w * t / 3600
        x = min(t - self.hold_s, self.taper_s)
        slope = (self.p_max_w - self.p_end_w) / self.taper_s if self.taper_s > 0 else 0.0
        return (self.p_max_w * self.hold_s + self.p_max_w * x - slope * x * x / 2) / 3600

    def power_w(self, t: float) -> float:
        if t < 0 or t >= self.full_s:
            return 0.0
        if t <= self.hold_s:
            return self.p_max_w
        return self.p_max_w - (self.p_max_w - self.p_end_w) * (t - self.hold_s) / self.taper_s

    def time_for(self, wh: float) -> float:
        """Seconds of charging until `wh` are delivered (the full time if never)."""
        lo, hi = 0.0, self.full_s
        for _ in range(60):
            mid = (lo + hi) / 2
            if self.energy_wh(mid) < wh:
                lo = mid
            else:
                hi = mid
        return hi

    @classmethod
    def for_energy(cls, p_max_w: float, p_end_w: float, demand_wh: float, hold_wh: float) -> PowerCurve:
        hold_wh = min(max(hold_wh, 0.0), demand_wh)
        taper_wh = demand_wh - hold_wh
        return cls(p_max_w, p_end_w, hold_wh / p_max_w * 3600, 2 * taper_wh / (p_max_w + p_end_w) * 3600)


@dataclass(frozen=True)
class Session:
    session_id: str
    charger_index: int
    connector_id: int  # 1.6 connectorId; 2.0.1 evseId (each EVSE has one connector, connectorId 1)
    user: User
    plug_in: int  # epoch seconds, true UTC
    charging_start: int
    charging_end: int
    transaction_stop: int
    plug_out: int
    stop_reason: str  # Local (card swiped) or EVDisconnected (cable pulled)
    curve: PowerCurve
    phases: int  # phases the car draws on; 0 for DC
    energy_wh: int
    transaction_id: str | None  # 2.0.1 only: chosen by the charger
    retry_start: bool
    retry_stop: bool
    noise_salt: int
    soc_start: float | None = None  # DC only
    capacity_wh: float | None = None  # DC only
    pack_voltage: float | None = None  # DC only
    meter_start_wh: int = 0  # filled in once reboots are known
    # What the visit really was: normal, failed_start (the transaction starts, no energy ever flows,
    # the driver gives up), zero_energy (plugged in for the whole visit, the car draws nothing) or
    # fault_end (a charger fault stops the transaction mid-charge; `fault` is that fault).
    kind: str = "normal"
    fault: Fault | None = None

    @property
    def meter_stop_wh(self) -> int:
        return self.meter_start_wh + self.energy_wh

    def delivered_wh(self, t: int) -> int:
        """Whole Wh delivered by time t: the register counts whole Wh and never goes backwards."""
        if t <= self.charging_start:
            return 0
        if t >= self.charging_end:
            return self.energy_wh
        return min(self.energy_wh, math.floor(self.curve.energy_wh(t - self.charging_start)))

    def register_at(self, t: int) -> int:
        return self.meter_start_wh + self.delivered_wh(t)

    def power_at(self, t: int) -> float:
        if not self.charging_start <= t < self.charging_end:
            return 0.0
        return self.curve.power_w(t - self.charging_start)

    def soc_at(self, t: int) -> float | None:
        if self.soc_start is None or self.capacity_wh is None:
            return None
        return self.soc_start + 100 * self.delivered_wh(t) / self.capacity_wh


@dataclass(frozen=True)
class Fault:
    """A connector out of service: Faulted (an error), or Unavailable (a maintenance window)."""

    charger_index: int
    connector_id: int
    start: int
    end: int
    error_code: str | None
    vendor_error_code: str | None
    status: str = "Faulted"  # or Unavailable
    session_id: str | None = None  # the session this fault ended (its messages come with the session)


@dataclass(frozen=True)
class OfflinePeriod:
    charger_index: int
    start: int
    end: int


@dataclass(frozen=True)
class Reboot:
    """A power cycle that resets every energy register of the charger to 0 (an imperfection)."""

    charger_index: int
    at: int
    registers_before: tuple[int, ...] = ()


@dataclass(frozen=True)
class FleetPlan:
    options: SimulationOptions
    window: Window
    chargers: tuple[Charger, ...]
    users: tuple[User, ...]
    sessions: tuple[Session, ...]  # by charger, connector, plug-in
    faults: tuple[Fault, ...]
    offline: tuple[OfflinePeriod, ...]
    reboots: tuple[Reboot, ...]
    _by_charger: dict[int, tuple[list[Session], list[Fault], list[OfflinePeriod], list[Reboot]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def of(self, index: int) -> tuple[list[Session], list[Fault], list[OfflinePeriod], list[Reboot]]:
        """Sessions, faults, offline periods and reboots of one charger, in time order."""
        if not self._by_charger:
            groups: dict[int, tuple[list[Session], list[Fault], list[OfflinePeriod], list[Reboot]]] = {
                c.index: ([], [], [], []) for c in self.chargers
            }
            for s in self.sessions:
                groups[s.charger_index][0].append(s)
            for f in self.faults:
                groups[f.charger_index][1].append(f)
            for o in self.offline:
                groups[o.charger_index][2].append(o)
            for r in self.reboots:
                groups[r.charger_index][3].append(r)
            self._by_charger.update(groups)
        return self._by_charger[index]


def plan_fleet(options: SimulationOptions, now: float | None = None) -> FleetPlan:
    """Everything the run will play, decided up front."""
    options.validate()
    window = window_for(options, now)
    chargers = tuple(_charger(options, window, i) for i in range(options.chargers))
    users, regulars = _users(options, chargers)
    sessions: list[Session] = []
    faults: list[Fault] = []
    offline: list[OfflinePeriod] = []
    reboots: list[Reboot] = []
    for charger in chargers:
        charger_faults = [
            f
            for c in range(1, charger.connectors + 1)
            for f in _with_maintenance(options, window, charger, c, _faults(options, window, charger, c))
        ]
        busy_by_connector: dict[int, list[tuple[int, int]]] = {}
        for c in range(1, charger.connectors + 1):
            blocked = [(f.start, f.end) for f in charger_faults if f.connector_id == c]
            connector_sessions = _sessions(options, window, charger, c, blocked, users, regulars)
            connector_sessions = _outcomes(options, window, charger, c, connector_sessions, blocked)
            sessions.extend(connector_sessions)
            charger_faults += [s.fault for s in connector_sessions if s.fault is not None]
            busy_by_connector[c] = sorted(
                [(f.start, f.end) for f in charger_faults if f.connector_id == c]
                + [(s.plug_in, s.plug_out) for s in connector_sessions]
            )
        faults.extend(charger_faults)
        charger_offline = _offline(options, window, charger)
        offline.extend(charger_offline)
        reboots.extend(_reboots(options, window, charger, busy_by_connector, charger_offline))
    sessions, reboots = _registers(chargers, sessions, reboots)
    return FleetPlan(
        options=options,
        window=window,
        chargers=chargers,
        users=users,
        sessions=tuple(sessions),
        faults=tuple(sorted(faults, key=lambda f: (f.charger_index, f.connector_id, f.start))),
        offline=tuple(offline),
        reboots=tuple(reboots),
    )


def _charger(options: SimulationOptions, window: Window, i: int) -> Charger:
    rng = stream(options.seed, "charger", i)
    profile = P.PROFILES[P.weighted(rng, options.profiles)]
    version = "2.0.1" if rng.random() < options.share_ocpp201 else "1.6"
    connectors = 2 if rng.random() < options.share_two_connectors else 1
    private_draw, kind_draw = rng.random(), rng.random()
    access = "public"
    if private_draw < options.private_share and profile.name != "hub":
        access = "home" if profile.name == "street" else ("private" if kind_draw < 0.5 else "fleet")
    if access == "home":
        connectors = 1
    station_kw = P.weighted(rng, profile.station_kw)
    fmt_draw, skew_draw, skew_size = rng.random(), rng.random(), rng.random()
    value_format = _value_format(options, version, fmt_draw)
    skew = 0
    if skew_draw < options.clock_skew_share:
        lo, hi = P.CLOCK_SKEW_S
        skew = round(math.exp(math.log(lo) + skew_size * (math.log(hi) - math.log(lo))))
    top = 20_000_000 if profile.current == "DC" else 3_000_000
    registers = tuple(rng.randrange(top) for _ in range(connectors))
    districts = (("Noord", 1.0), ("Zuid", 1.0), ("West", 1.0)) if access == "home" else profile.districts
    area = P.weighted(rng, districts)
    lat, lon = place(rng, area)
    vendor, model = MODELS[(value_format, profile.current)]
    width = max(4, len(str(options.chargers)))
    cp_id = f"{options.id_prefix}{i + 1:0{width}d}"
    return Charger(
        index=i,
        charge_point_id=cp_id,
        ocpp_version=version,
        profile=profile.name,
        access=access,
        connectors=connectors,
        current=profile.current,
        max_power_kw=station_kw,
        vendor=vendor,
        model=model,
        serial_number=f"{model.split()[0].upper()}-{rng.getrandbits(32):08X}",
        firmware_version=f"{1 + rng.randrange(4)}.{rng.randrange(10)}.{rng.randrange(20)}",
        value_format=value_format,
        clock_skew_s=skew,
        initial_register_wh=registers,
        name=station_name(rng, profile.name, access, area, i),
        latitude=lat,
        longitude=lon,
        area=area,
    )


def _value_format(options: SimulationOptions, version: str, u: float) -> str:
    special = options.numbers_share if version == "1.6" else options.multiplier_share
    if u < special:
        return "json_numbers" if version == "1.6" else "multiplier"
    if u < special + options.kwh_share:
        return "kwh"
    return "standard"


def _rfid(rng: random.Random) -> str:
    return f"{rng.getrandbits(56):014X}"  # a 7-byte ISO 14443 card UID


def _users(
    options: SimulationOptions, chargers: Sequence[Charger]
) -> tuple[tuple[User, ...], dict[int, tuple[User, ...]]]:
    """A population of card holders; each has a home station where most of their sessions happen."""
    rng = stream(options.seed, "users")
    users: list[User] = []
    regulars: dict[int, list[User]] = {}

    def add(home: int | None) -> None:
        user = User(_rfid(rng), "ISO14443", f"U{len(users) + 1:06d}", home)
        users.append(user)
        if home is not None:
            regulars.setdefault(home, []).append(user)

    for c in chargers:
        if c.access == "home":
            for _ in range(1 + (rng.random() < 0.4)):  # a household of one or two drivers
                add(c.index)
    homes = [c.index for c in chargers if c.access != "home" and c.profile != "hub"]
    wanted = max(1, round(options.users_per_charger * len(chargers)))
    while len(users) < wanted:
        add(homes[rng.randrange(len(homes))] if homes else None)
    return tuple(users), {k: tuple(v) for k, v in regulars.items()}


def _pick_user(
    rng: random.Random, charger: Charger, users: Sequence[User], regulars: dict[int, tuple[User, ...]]
) -> User:
    """A regular (home-station affinity, frequent ones first), a visitor, or a one-time roaming token."""
    mine = regulars.get(charger.index, ())
    u, v = rng.random(), rng.random()
    regular, visitor, _ = P.USER_MIX["hub" if charger.profile == "hub" else charger.access]
    if not mine:
        regular = 0.0
    if u < regular:
        weights = [1 / (k + 1) for k in range(len(mine))]
        return mine[_index_of(v, weights)]
    if users and u < regular + visitor:
        return users[math.floor(v * len(users)) % len(users)]
    return User(f"NLVLDC{rng.getrandbits(32):08X}", "eMAID", None)


def _arrivals(rng: random.Random, window: Window, profile: P.SiteProfile) -> list[int]:
    """Arrival times: a Poisson process whose rate follows the local hour and the day of the week."""
    times: list[int] = []
    hour = window.start - window.start % 3600
    while hour < window.end:
        local = datetime.fromtimestamp(hour + 1800, window.tz)
        rate = profile.sessions_per_day(local.weekday() >= 5) * profile.hour_shares[local.hour]
        times.extend(sorted(hour + math.floor(rng.random() * 3600) for _ in range(P.poisson(rng, rate))))
        hour += 3600
    return times


def _sessions(
    options: SimulationOptions,
    window: Window,
    charger: Charger,
    connector: int,
    blocked: list[tuple[int, int]],
    users: Sequence[User],
    regulars: dict[int, tuple[User, ...]],
) -> list[Session]:
    rng = stream(options.seed, "sessions", charger.index, connector)
    profile = P.PROFILES[charger.profile]
    out: list[Session] = []
    free_at = window.start + MIN_GAP_S
    for arrival in _arrivals(rng, window, profile):
        if arrival < free_at:
            continue
        session = _session(rng, options, charger, connector, arrival, len(out) + 1, users, regulars)
        if session.plug_out >= window.end - MIN_GAP_S:
            continue  # it would not be over by the end of the window
        if any(s - MIN_GAP_S < session.plug_out and session.plug_in < e + MIN_GAP_S for s, e in blocked):
            continue
        out.append(session)
        free_at = session.plug_out + MIN_GAP_S
    return out


def _session(
    rng: random.Random,
    options: SimulationOptions,
    charger: Charger,
    connector: int,
    arrival: int,
    number: int,
    users: Sequence[User],
    regulars: dict[int, tuple[User, ...]],
) -> Session:
    profile = P.PROFILES[charger.profile]
    user = _pick_user(rng, charger, users, regulars)
    local_stop = rng.random() < 0.6
    if charger.dc:
        auth = rng.randint(10, 45)
        capacity = rng.uniform(*P.DC_BATTERY_KWH) * 1000
        soc0 = rng.uniform(*P.DC_SOC_START)
        target = rng.uniform(*P.DC_SOC_TARGET)
        taper_soc = rng.uniform(*P.DC_TAPER_SOC)
        car_kw = P.weighted(rng, P.DC_CARS)
        p_max = min(car_kw, charger.max_power_kw) * 1000 * rng.uniform(0.85, 0.98)
        demand = (target - soc0) / 100 * capacity
        curve = PowerCurve.for_energy(p_max, 0.25 * p_max, demand, (taper_soc - soc0) / 100 * capacity)
        early, share, idle = rng.random() < P.DC_LEAVES_EARLY, rng.uniform(0.6, 0.95), P.DC_IDLE_MIN.draw(rng)
        charge_window = math.ceil(curve.full_s * share) if early else math.ceil(curve.full_s + idle * 60)
        phases, pack_v = 0, (800.0 if car_kw >= 250 else 400.0)
        extra: dict[str, float | None] = {"soc_start": soc0, "capacity_wh": capacity, "pack_voltage": pack_v}
    else:
        assert profile.energy_kwh is not None and profile.idle_h is not None
        auth = rng.randint(15, 90)
        # Energy and the car's power are drawn together (a Gaussian copula, P.AC_ENERGY_POWER_RHO):
        # cars that take a lot of energy tend to have the bigger, three-phase on-board chargers.
        z_energy = rng.gauss(0.0, 1.0)
        energy = profile.energy_kwh.at_z(z_energy) * 1000
        leaves_charging, more, idle = (
            rng.random() < profile.no_idle_share,
            rng.uniform(*P.AC_LEAVE_DEMAND),
            profile.idle_h.draw(rng),
        )
        rho = P.AC_ENERGY_POWER_RHO
        z_car = rho * z_energy + math.sqrt(1 - rho * rho) * rng.gauss(0.0, 1.0)
        phases, amps, _ = P.AC_CARS[_index_of(NormalDist().cdf(z_car), [w for *_, w in P.AC_CARS])]
        station_amps = 16 if charger.max_power_kw <= 11 else 32
        p_max = phases * min(amps, station_amps) * P.NOMINAL_VOLTAGE * P.AC_DRAW_FACTOR
        demand = energy * more if leaves_charging else energy
        hold = demand * rng.uniform(*P.AC_HOLD_SHARE)
        curve = PowerCurve.for_energy(p_max, P.AC_TAPER_END * p_max, demand, hold)
        if leaves_charging:
            charge_window = max(120, math.ceil(curve.time_for(energy)))
        else:
            charge_window = max(120, math.ceil(curve.full_s + idle * 3600))
        extra = {}
    # Finishing lasts from the stop until the cable is out. A 2.0.1 charger ends the transaction on
    # the cable's removal itself (TxStopPoint EVConnected), so there is no Finishing then.
    gap = rng.randint(20, 180) if local_stop else rng.randint(1, 5)
    if not local_stop and charger.ocpp_version == "2.0.1":
        gap = 0
    retry_start, retry_stop = rng.random() < options.retry_rate, rng.random() < options.retry_rate
    tx_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    salt = rng.getrandbits(32)
    charging_start = arrival + auth
    stop = charging_start + charge_window
    charging_end = min(stop, charging_start + math.ceil(curve.full_s))
    delivered = curve.energy_wh(charging_end - charging_start)
    return Session(
        session_id=f"{charger.charge_point_id}-{connector}-{number:04d}",
        charger_index=charger.index,
        connector_id=connector,
        user=user,
        plug_in=arrival,
        charging_start=charging_start,
        charging_end=charging_end,
        transaction_stop=stop,
        plug_out=stop + gap,
        stop_reason="Local" if local_stop else "EVDisconnected",
        curve=curve,
        phases=phases,
        energy_wh=math.floor(delivered),
        transaction_id=tx_id if charger.ocpp_version == "2.0.1" else None,
        retry_start=retry_start,
        retry_stop=retry_stop,
        noise_salt=salt,
        **extra,  # type: ignore[arg-type]
    )


def _index(rng: random.Random, weights: Sequence[float]) -> int:
    return _index_of(rng.random(), weights)


def _index_of(u: float, weights: Sequence[float]) -> int:
    x = u * sum(weights)
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def _faults(options: SimulationOptions, window: Window, charger: Charger, connector: int) -> list[Fault]:
    rng = stream(options.seed, "faults", charger.index, connector)
    span = window.end - window.start
    count = P.poisson(rng, options.fault_rate * span / 86400)
    draws = sorted(
        (
            window.start + math.floor(rng.random() * span),
            round(P.FAULT_MINUTES.draw(rng) * 60),
            _index(rng, [w for *_, w in P.FAULT_CODES]),
        )
        for _ in range(count)
    )
    out: list[Fault] = []
    for start, duration, code in draws:
        end = start + duration
        if end >= window.end - MIN_GAP_S or start < window.start + MIN_GAP_S:
            continue
        if out and start < out[-1].end + MIN_GAP_S:
            continue
        error, vendor_code, _ = P.FAULT_CODES[code]
        out.append(Fault(charger.index, connector, start, end, error, vendor_code))
    return out


def _with_maintenance(
    options: SimulationOptions, window: Window, charger: Charger, connector: int, faults: list[Fault]
) -> list[Fault]:
    """The faults plus maintenance windows (Unavailable) that keep MIN_GAP_S clear of them."""
    rng = stream(options.seed, "maintenance", charger.index, connector)
    span = window.end - window.start
    count = P.poisson(rng, options.maintenance_rate * span / 86400)
    draws = sorted(
        (window.start + math.floor(rng.random() * span), round(P.MAINTENANCE_MINUTES.draw(rng) * 60))
        for _ in range(count)
    )
    out = list(faults)
    for start, duration in draws:
        end = start + duration
        if start < window.start + MIN_GAP_S or end >= window.end - MIN_GAP_S:
            continue
        if any(start < f.end + MIN_GAP_S and f.start < end + MIN_GAP_S for f in out):
            continue
        out.append(Fault(charger.index, connector, start, end, None, None, status="Unavailable"))
    return sorted(out, key=lambda f: f.start)


def _outcomes(
    options: SimulationOptions,
    window: Window,
    charger: Charger,
    connector: int,
    sessions: list[Session],
    blocked: list[tuple[int, int]],
) -> list[Session]:
    """Turn some planned sessions into failed starts, zero-energy visits or fault-ended sessions.

    Applied after the sessions are chosen and only ever shortening them (a fault-ended session's
    fault stays clear of what follows), so the shares change no other session. Every session makes
    the same draws from a stream of its own whatever the shares are.
    """
    rng = stream(options.seed, "outcomes", charger.index, connector)
    out: list[Session] = []
    for i, s in enumerate(sessions):
        kind_u, frac_u, dur_u, code_u, reason_u, giveup_u = (rng.random() for _ in range(6))
        failed, zero = options.failed_start_share, options.zero_energy_share
        if kind_u < failed:
            stop = min(s.transaction_stop, s.charging_start + 60 + math.floor(giveup_u * 180))
            gap = 0 if charger.ocpp_version == "2.0.1" else 1 + math.floor(frac_u * 5)
            out.append(replace(
                s, kind="failed_start", charging_end=s.charging_start, transaction_stop=stop,
                plug_out=min(s.plug_out, stop + gap), energy_wh=0, stop_reason="EVDisconnected",
            ))  # fmt: skip
        elif kind_u < failed + zero:
            out.append(replace(s, kind="zero_energy", charging_end=s.charging_start, energy_wh=0))
        elif kind_u < failed + zero + options.fault_end_share and s.charging_end - s.charging_start > 240:
            # The fault strikes while the car charges and lasts until it is cleared, never into the
            # next session or fault on the connector.
            at = s.charging_start + 120 + math.floor(frac_u * (s.charging_end - s.charging_start - 240))
            following = [a for a, _ in blocked if a > at] + [n.plug_in for n in sessions[i + 1 :]]
            limit = min([window.end, *following]) - MIN_GAP_S
            end = min(at + round(P.FAULT_MINUTES.draw_at(dur_u) * 60), limit)
            if end - at < 300:
                out.append(s)
                continue
            error, vendor_code, _ = P.FAULT_CODES[_index_of(code_u, [w for *_, w in P.FAULT_CODES])]
            reasons = P.FAULT_STOP_REASONS["2.0.1" if charger.ocpp_version == "2.0.1" else "1.6"]
            fault = Fault(charger.index, connector, at, end, error, vendor_code, session_id=s.session_id)
            out.append(replace(
                s, kind="fault_end", charging_end=at, transaction_stop=at, plug_out=at,
                energy_wh=math.floor(s.curve.energy_wh(at - s.charging_start)), fault=fault,
                stop_reason=reasons[math.floor(reason_u * len(reasons)) % len(reasons)], retry_stop=False,
            ))  # fmt: skip
        else:
            out.append(s)
    return out


def _offline(options: SimulationOptions, window: Window, charger: Charger) -> list[OfflinePeriod]:
    rng = stream(options.seed, "offline", charger.index)
    span = window.end - window.start
    count = P.poisson(rng, options.offline_rate * span / 86400)
    draws = sorted(
        (window.start + math.floor(rng.random() * span), round(P.OFFLINE_MINUTES.draw(rng) * 60))
        for _ in range(count)
    )
    out: list[OfflinePeriod] = []
    for start, duration in draws:
        end = start + duration
        if start < window.start + MIN_GAP_S or end >= window.end - MIN_GAP_S:
            continue
        if out and start < out[-1].end + MIN_GAP_S:
            continue
        out.append(OfflinePeriod(charger.index, start, end))
    return out


def _reboots(
    options: SimulationOptions,
    window: Window,
    charger: Charger,
    busy: dict[int, list[tuple[int, int]]],
    offline: list[OfflinePeriod],
) -> list[Reboot]:
    """Reboots happen while every connector is idle and the charger is online."""
    rng = stream(options.seed, "reboots", charger.index)
    span = window.end - window.start
    count = P.poisson(rng, options.register_reset_rate * span / 86400)
    margin = 2 * MIN_GAP_S
    taken: list[int] = []
    for _ in range(count):
        for _attempt in range(50):
            t = window.start + math.floor(rng.random() * span)
            if t < window.start + margin or t > window.end - margin:
                continue
            spans = [*(x for v in busy.values() for x in v), *((o.start, o.end) for o in offline)]
            if any(s - margin <= t <= e + margin for s, e in spans) or any(
                abs(t - r) < margin for r in taken
            ):
                continue
            taken.append(t)
            break
    return [Reboot(charger.index, t) for t in sorted(taken)]


def _registers(
    chargers: Sequence[Charger], sessions: list[Session], reboots: list[Reboot]
) -> tuple[list[Session], list[Reboot]]:
    """Walk each charger's registers through its sessions; a reboot sets them all back to 0."""
    by_charger: dict[int, list[Session]] = {}
    for s in sessions:
        by_charger.setdefault(s.charger_index, []).append(s)
    reboot_times: dict[int, list[int]] = {}
    for r in reboots:
        reboot_times.setdefault(r.charger_index, []).append(r.at)
    out_sessions: list[Session] = []
    out_reboots: list[Reboot] = []
    for charger in chargers:
        times = sorted(reboot_times.get(charger.index, []))
        registers = list(charger.initial_register_wh)
        own = sorted(by_charger.get(charger.index, []), key=lambda s: (s.plug_in, s.connector_id))
        done: list[Session] = []
        reboot_pos = 0
        for s in own:
            while reboot_pos < len(times) and times[reboot_pos] < s.plug_in:
                out_reboots.append(Reboot(charger.index, times[reboot_pos], tuple(registers)))
                registers = [0] * charger.connectors
                reboot_pos += 1
            done.append(replace(s, meter_start_wh=registers[s.connector_id - 1]))
            registers[s.connector_id - 1] += s.energy_wh
        for t in times[reboot_pos:]:
            out_reboots.append(Reboot(charger.index, t, tuple(registers)))
            registers = [0] * charger.connectors
        out_sessions.extend(sorted(done, key=lambda s: (s.connector_id, s.plug_in)))
    return out_sessions, out_reboots


def offline_at(periods: Sequence[OfflinePeriod], t: int) -> bool:
    starts = [p.start for p in periods]
    i = bisect.bisect_right(starts, t) - 1
    return i >= 0 and periods[i].start <= t < periods[i].end
