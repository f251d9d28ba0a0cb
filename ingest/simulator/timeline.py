"""Each charger's messages in the order it sends them, derived lazily from the fleet plan.

The stream interleaves the connectors' sessions and faults with offline periods, reboots and
heartbeats. Payloads are built only when a message is about to be sent (a week of a large fleet
would not fit in memory otherwise) and depend on nothing but the plan, so a replay or a retry sends
exactly the same content.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from ingest.simulator import protocol16 as v16
from ingest.simulator import protocol201 as v201
from ingest.simulator.fleet import Charger, Fault, FleetPlan, OfflinePeriod, Session, offline_at
from ingest.simulator.sample import Payload, Sample


@dataclass(slots=True)
class Call:
    t: int  # true time (UTC epoch s); the payload's timestamps carry the charger's clock skew
    action: str
    build: Callable[[], Payload]
    session_id: str | None = None
    tx_ref: str | None = None  # 1.6: the session whose listener-given transactionId goes in
    opens_tx: str | None = None  # 1.6 StartTransaction: remember the transactionId answered
    retry: bool = False  # imperfection: send, lose the answer, resend on a new socket
    ends_session: bool = False


@dataclass(slots=True)
class Marker:
    t: int
    kind: str  # offline_start, offline_end, reboot, heartbeat


Event = Call | Marker
_PRIORITY = {"offline_end": 0, "offline_start": 1, "reboot": 2, "heartbeat": 4}


def _key(e: Event) -> tuple[int, int]:
    return (e.t, 3 if isinstance(e, Call) else _PRIORITY[e.kind])


def charger_events(plan: FleetPlan, charger: Charger) -> Iterator[Event]:
    """Everything the charger does after its first boot, in sending order."""
    sessions, faults, offline, reboots = plan.of(charger.index)
    markers: list[Event] = [Marker(r.at, "reboot") for r in reboots]
    for o in offline:
        markers += [Marker(o.start, "offline_start"), Marker(o.end, "offline_end")]
    markers.sort(key=_key)
    sources: list[Iterator[Event]] = [iter(markers), _heartbeats(plan, offline)]
    for c in range(1, charger.connectors + 1):
        own = [s for s in sessions if s.connector_id == c]
        broken = [f for f in faults if f.connector_id == c]
        sources.append(_connector(plan, charger, own, broken, offline))
    return heapq.merge(*sources, key=_key)


def boot_calls(charger: Charger, t: int) -> list[Call]:
    """BootNotification, then every connector Available (1.6 also reports connector 0)."""
    skewed = t + charger.clock_skew_s
    if charger.ocpp_version == "1.6":
        boot = partial(
            v16.boot, charger.vendor, charger.model, charger.serial_number, charger.firmware_version
        )
        calls = [Call(t, "BootNotification", boot)]
        for c in range(0, charger.connectors + 1):
            calls.append(Call(t, "StatusNotification", partial(v16.status, c, "Available", skewed)))
        return calls
    boot = partial(v201.boot, charger.vendor, charger.model, charger.serial_number, charger.firmware_version)
    calls = [Call(t, "BootNotification", boot)]
    for c in range(1, charger.connectors + 1):
        calls.append(Call(t, "StatusNotification", partial(v201.status, c, "Available", skewed)))
    return calls


def _heartbeats(plan: FleetPlan, offline: list[OfflinePeriod]) -> Iterator[Event]:
    every = plan.options.heartbeat_every
    if every <= 0:
        return
    t = plan.window.start + every
    while t < plan.window.end:
        if not offline_at(offline, t):
            yield Marker(t, "heartbeat")
        t += every


def _connector(
    plan: FleetPlan,
    charger: Charger,
    sessions: list[Session],
    faults: list[Fault],
    offline: list[OfflinePeriod],
) -> Iterator[Event]:
    episodes: list[tuple[int, Session | Fault]] = [(s.plug_in, s) for s in sessions]
    episodes += [(f.start, f) for f in faults if f.session_id is None]  # the rest come with their session
    episodes.sort(key=lambda e: e[0])
    for _, episode in episodes:
        if isinstance(episode, Fault):
            yield from _fault(charger, episode)
        elif charger.ocpp_version == "1.6":
            yield from _session16(plan, charger, episode)
        else:
            yield from _session201(plan, charger, episode, offline)


def _fault(charger: Charger, f: Fault, session_id: str | None = None) -> Iterator[Event]:
    """Faulted (with its error) or Unavailable (maintenance), then Available when it is over."""
    yield _fault_start(charger, f, session_id)
    yield _fault_end(charger, f, session_id)


def _fault_start(charger: Charger, f: Fault, session_id: str | None = None) -> Call:
    t = f.start + charger.clock_skew_s
    if charger.ocpp_version == "1.6":
        code = f.error_code or "NoError"
        build = partial(v16.status, f.connector_id, f.status, t, code, f.vendor_error_code)
    else:
        build = partial(v201.status, f.connector_id, f.status, t)
    return Call(f.start, "StatusNotification", build, session_id)


def _fault_end(charger: Charger, f: Fault, session_id: str | None = None, ends: bool = False) -> Call:
    version = v16 if charger.ocpp_version == "1.6" else v201
    build = partial(version.status, f.connector_id, "Available", f.end + charger.clock_skew_s)
    return Call(f.end, "StatusNotification", build, session_id, ends_session=ends)


def _periodic(plan: FleetPlan, s: Session) -> Iterator[int]:
    step = plan.options.sample_interval
    t = s.charging_start + step
    while t < s.transaction_stop:
        yield t
        t += step


def _session16(plan: FleetPlan, charger: Charger, s: Session) -> Iterator[Event]:
    skew, c, sid = charger.clock_skew_s, s.connector_id, s.session_id
    yield Call(s.plug_in, "StatusNotification", partial(v16.status, c, "Preparing", s.plug_in + skew), sid)
    start = partial(v16.start_transaction, c, s.user.id_tag, s.meter_start_wh, s.charging_start + skew)
    yield Call(s.charging_start, "StartTransaction", start, sid, opens_tx=sid, retry=s.retry_start)
    # A failed start stays Preparing; a car that draws nothing is SuspendedEV from the start.
    first = {"failed_start": None, "zero_energy": "SuspendedEV"}.get(s.kind, "Charging")
    if first is not None:
        build = partial(v16.status, c, first, s.charging_start + skew)
        yield Call(s.charging_start, "StatusNotification", build, sid)
    suspended = s.charging_end >= s.transaction_stop or s.kind != "normal"
    for t in _periodic(plan, s):
        if not suspended and t >= s.charging_end:
            yield _suspended16(s, skew)
            suspended = True
        yield Call(t, "MeterValues", partial(_meter_values16, charger, s, t), sid, tx_ref=sid)
    if not suspended:
        yield _suspended16(s, skew)
    if s.fault is not None:
        # The charger reports the fault, then stops the transaction for it; the cable comes out
        # while the connector is Faulted, so Available follows only when the fault is cleared.
        yield _fault_start(charger, s.fault, sid)
        yield Call(s.transaction_stop, "StopTransaction", partial(_stop16, charger, s), sid, tx_ref=sid)
        yield _fault_end(charger, s.fault, sid, ends=True)
        return
    yield Call(
        s.transaction_stop,
        "StopTransaction",
        partial(_stop16, charger, s),
        sid,
        tx_ref=sid,
        retry=s.retry_stop,
    )
    yield Call(
        s.transaction_stop,
        "StatusNotification",
        partial(v16.status, c, "Finishing", s.transaction_stop + skew),
        sid,
    )
    yield Call(
        s.plug_out,
        "StatusNotification",
        partial(v16.status, c, "Available", s.plug_out + skew),
        sid,
        ends_session=True,
    )


def _suspended16(s: Session, skew: int) -> Call:
    build = partial(v16.status, s.connector_id, "SuspendedEV", s.charging_end + skew)
    return Call(s.charging_end, "StatusNotification", build, s.session_id)


def _meter_values16(charger: Charger, s: Session, t: int) -> Payload:
    sample = sample_at(charger, s, t)
    mv = v16.meter_value(t + charger.clock_skew_s, v16.sampled_values(sample, charger.value_format))
    return v16.meter_values(s.connector_id, mv)


def _stop16(charger: Charger, s: Session) -> Payload:
    skew, fmt = charger.clock_skew_s, charger.value_format
    begin = v16.meter_value(s.charging_start + skew, [v16.energy(s.meter_start_wh, fmt, "Transaction.Begin")])
    end = v16.meter_value(s.transaction_stop + skew, [v16.energy(s.meter_stop_wh, fmt, "Transaction.End")])
    id_tag = s.user.id_tag if s.stop_reason == "Local" else None
    return v16.stop_transaction(s.meter_stop_wh, s.transaction_stop + skew, s.stop_reason, id_tag, begin, end)


def _session201(
    plan: FleetPlan, charger: Charger, s: Session, offline: list[OfflinePeriod]
) -> Iterator[Event]:
    """TxStartPoint EVConnected: the transaction starts at plug-in, the card authorizes it later."""
    skew, evse, fmt, sid = charger.clock_skew_s, s.connector_id, charger.value_format, s.session_id
    assert s.transaction_id is not None
    token = (s.user.id_tag, s.user.token_type)
    seq = iter(range(1_000_000))

    def te(
        t: int, event_type: str, trigger: str, retry: bool = False, ends: bool = False, **kw: object
    ) -> Call:
        build = partial(
            v201.transaction_event, event_type, t + skew, trigger, next(seq), s.transaction_id,
            offline=offline_at(offline, t), **kw,
        )  # fmt: skip
        return Call(t, "TransactionEvent", build, sid, retry=retry, ends_session=ends)

    def energy_mv(t: int, context: str) -> Payload:
        return v201.meter_value(t + skew, [v201.energy(s.register_at(t), fmt, context)])

    yield Call(s.plug_in, "StatusNotification", partial(v201.status, evse, "Occupied", s.plug_in + skew), sid)
    yield te(
        s.plug_in, "Started", "CablePluggedIn", retry=s.retry_start, charging_state="EVConnected", evse=evse,
        meter_value=energy_mv(s.plug_in, "Transaction.Begin"),
    )  # fmt: skip
    first = {"failed_start": "EVConnected", "zero_energy": "SuspendedEV"}.get(s.kind, "Charging")
    yield te(s.charging_start, "Updated", "Authorized", charging_state=first, id_token=token)
    suspended = s.charging_end >= s.transaction_stop or s.kind != "normal"
    for t in _periodic(plan, s):
        if not suspended and t >= s.charging_end:
            yield te(s.charging_end, "Updated", "ChargingStateChanged", charging_state="SuspendedEV")
            suspended = True
        mv = partial(_meter_value201, charger, s, t)
        yield _lazy_te(te(t, "Updated", "MeterValuePeriodic"), mv)
    if not suspended:
        yield te(s.charging_end, "Updated", "ChargingStateChanged", charging_state="SuspendedEV")
    end_mv = energy_mv(s.transaction_stop, "Transaction.End")
    if s.fault is not None:
        yield _fault_start(charger, s.fault, sid)
        reason = s.stop_reason
        yield te(s.transaction_stop, "Ended", "AbnormalCondition", stopped_reason=reason, meter_value=end_mv)
        yield _fault_end(charger, s.fault, sid, ends=True)
    elif s.stop_reason == "Local":
        yield te(
            s.transaction_stop, "Ended", "StopAuthorized", retry=s.retry_stop, charging_state="EVConnected",
            stopped_reason="Local", id_token=token, meter_value=end_mv,
        )  # fmt: skip
        yield Call(
            s.plug_out,
            "StatusNotification",
            partial(v201.status, evse, "Available", s.plug_out + skew),
            sid,
            ends_session=True,
        )
    else:
        yield te(
            s.transaction_stop, "Ended", "EVDeparted", retry=s.retry_stop, charging_state="Idle",
            stopped_reason="EVDisconnected", meter_value=end_mv,
        )  # fmt: skip
        yield Call(
            s.plug_out,
            "StatusNotification",
            partial(v201.status, evse, "Available", s.plug_out + skew),
            sid,
            ends_session=True,
        )


def _lazy_te(call: Call, meter_value: Callable[[], Payload]) -> Call:
    """A periodic TransactionEvent whose (large) meter value is built only when it is sent."""
    base = call.build

    def build() -> Payload:
        payload = base()
        payload["meterValue"] = [meter_value()]
        return payload

    call.build = build
    return call


def _meter_value201(charger: Charger, s: Session, t: int) -> Payload:
    sample = sample_at(charger, s, t)
    return v201.meter_value(t + charger.clock_skew_s, v201.sampled_values(sample, charger.value_format))


def _noise(salt: int, t: int, k: int) -> float:
    """A reproducible pseudo-random number in [0, 1) for (session, time, channel)."""
    x = (salt ^ (t * 0x9E3779B1) ^ (k * 0x85EBCA77)) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x / 2**32


def sample_at(charger: Charger, s: Session, t: int) -> Sample:
    power = s.power_at(t)
    register = s.register_at(t)
    soc = s.soc_at(t)
    if charger.dc:
        assert s.pack_voltage is not None
        volts = round(
            s.pack_voltage * (0.92 + 0.12 * (soc or 0) / 100) + 4 * (_noise(s.noise_salt, t, 0) - 0.5), 1
        )
        amps = round(power / volts, 1) if power else 0.0
        return Sample(register, round(power), (amps,), (volts,), min(100.0, soc or 0.0))
    voltages = tuple(round(230 + 6 * (_noise(s.noise_salt, t, k) - 0.5), 1) for k in range(3))
    currents = tuple(
        round(power / s.phases / v, 1) if power and k < s.phases else 0.0 for k, v in enumerate(voltages)
    )
    return Sample(register, round(power), currents, voltages, None)


def offline_call_counts(plan: FleetPlan, charger: Charger) -> list[int]:
    """Messages the charger queues in each of its offline periods (replayed on reconnect)."""
    periods = plan.of(charger.index)[2]
    counts = [0] * len(periods)
    if not periods:
        return counts
    starts = [p.start for p in periods]
    for e in charger_events(plan, charger):
        if isinstance(e, Call):
            i = bisect.bisect_right(starts, e.t) - 1
            if i >= 0 and e.t < periods[i].end:
                counts[i] += 1
    return counts
