"""`port_outages`: one row per outage of a public port, from the port states and the sessions.

Causes (docs/reliability.md):
- `faulted`: status Faulted, with the OCPP errorCode (1.6) / vendorErrorCode and, when the charger
  follows ChargeX's Minimum Required Error Codes (vendorId `com.evgo.mrec`), the MREC code;
- `unavailable`: status Unavailable (taken out of service, e.g. maintenance);
- `offline`: the station had no connection for longer than OFFLINE_AFTER (port_states.py);
- `no_power`: the port looked usable but a session on it delivered < 1 kWh and never reached the
  port's required minimum power (23 CFR 680.116(b)(1) "successfully dispenses electricity in
  accordance with requirements for minimum power level"): the outage is that session's time.
Consecutive states of the same cause and error are one outage, across midnight too; an outage
belongs to the local date it started on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb

from ocpp_opendata.registry import RegistryStation
from pipelines.reliability.exclusions import Exclusion

OUTAGE_STATES = ("faulted", "unavailable", "offline")
UP_STATES = ("available", "occupied", "charging", "reserved")
MREC_VENDOR_ID = "com.evgo.mrec"
# 680.116(b)(1) refers to the minimum power of 680.106(d): 150 kW per DC port, 6 kW per AC port (or
# the port's own rating when it is lower). A session below it that also delivered < 1 kWh did not
# dispense.
NO_POWER_MAX_WH = 1000.0
DC_MIN_KW, AC_MIN_KW, RAPID_KW = 150.0, 6.0, 50.0


def required_power_kw(max_power_kw: float | None) -> float:
    if max_power_kw is None:
        return AC_MIN_KW
    return min(max_power_kw, DC_MIN_KW if max_power_kw >= RAPID_KW else AC_MIN_KW)


@dataclass
class Outage:
    station_id: str
    connector_id: int
    start: datetime
    end: datetime
    cause: str
    error_code: str | None = None
    vendor_id: str | None = None
    vendor_error_code: str | None = None
    ongoing: bool = False
    excluded_minutes: float = 0.0
    exclusion_reason: str | None = None

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60.0

    @property
    def mrec_code(self) -> str | None:
        return self.vendor_error_code if self.vendor_id == MREC_VENDOR_ID else None

    def key(self) -> tuple:
        return (self.cause, self.error_code, self.vendor_id, self.vendor_error_code)


def _merge(rows: list[tuple]) -> list[Outage]:
    """Rows (station, connector, start, end, cause, code, vendor, vcode) in port/time order; touching
    or overlapping rows of the same cause and error are one outage."""
    out: list[Outage] = []
    for cp, conn, a, b, cause, code, vendor, vcode in rows:
        o = Outage(cp, int(conn), a, b, cause, code, vendor, vcode)
        last = out[-1] if out else None
        if (
            last is not None and last.station_id == cp and last.connector_id == o.connector_id
            and last.key() == o.key() and last.end >= a
        ):  # fmt: skip
            last.end = max(last.end, b)
        else:
            out.append(o)
    return out


def status_outages(con: duckdb.DuckDBPyConnection) -> list[Outage]:
    """Faulted, unavailable and offline outages from the view `w_port_states` (all work days)."""
    states = ", ".join(f"'{s}'" for s in OUTAGE_STATES)
    rows = con.execute(
        f"""SELECT station_id, connector_id, start, "end", state, error_code, vendor_id, vendor_error_code
            FROM w_port_states WHERE state IN ({states}) ORDER BY station_id, connector_id, start"""
    ).fetchall()
    return _merge(rows)


def no_power_outages(con: duckdb.DuckDBPyConnection, round_s: int) -> list[Outage]:
    """Sessions that did not dispense (view `w_all_sessions`, table `reg`), cut to the time their port
    was otherwise up, so no minute counts twice and none falls outside the observed period. The
    session's times are widened to the published rounding grid first (floor / ceiling): exact plug-in
    times are never published (docs/privacy.md), and an outage's edges would otherwise show them."""
    up = ", ".join(f"'{s}'" for s in UP_STATES)
    rows = con.execute(
        f"""WITH bad AS (
                SELECT s.station_id, s.connector_id, s.session_id,
                       to_timestamp(floor(epoch(s.plug_in) / {round_s}) * {round_s}) AS plug_in,
                       to_timestamp(ceil(epoch(s.plug_out) / {round_s}) * {round_s}) AS plug_out
                FROM w_all_sessions s LEFT JOIN reg r USING (station_id)
                WHERE s.connector_id IS NOT NULL AND s.plug_out IS NOT NULL AND s.plug_out > s.plug_in
                  AND s.energy_wh < {NO_POWER_MAX_WH}
                  AND coalesce(s.max_power_w, 0) < 1000 * (CASE
                        WHEN r.max_power_kw IS NULL THEN {AC_MIN_KW}
                        WHEN r.max_power_kw >= {RAPID_KW} THEN least(r.max_power_kw, {DC_MIN_KW})
                        ELSE least(r.max_power_kw, {AC_MIN_KW}) END)
            )
            SELECT b.station_id, b.connector_id, greatest(b.plug_in, p.start) AS a,
                   least(b.plug_out, p."end") AS z,
                   'no_power', NULL, NULL, NULL
            FROM bad b JOIN w_port_states p
              ON p.station_id = b.station_id AND p.connector_id = b.connector_id
             AND p.start < b.plug_out AND p."end" > b.plug_in AND p.state IN ({up})
            ORDER BY 1, 2, 3"""
    ).fetchall()
    return _merge(rows)


def _overlap(a: datetime, b: datetime, spans: list[tuple[datetime, datetime]]) -> float:
    """Minutes of [a, b) covered by the union of spans."""
    total, cursor = 0.0, a
    for x, y in sorted(spans):
        x, y = max(x, cursor), min(y, b)
        if x < y:
            total += (y - x).total_seconds()
            cursor = y
    return total / 60.0


def apply_exclusions(outages: list[Outage], exclusions: list[Exclusion]) -> None:
    """Only the part of a declared exclusion that overlaps an observed outage counts."""
    for o in outages:
        hits = [
            e
            for e in exclusions
            if e.covers(o.station_id, o.connector_id) and e.start < o.end and e.end > o.start
        ]
        if not hits:
            continue
        o.excluded_minutes = round(_overlap(o.start, o.end, [(e.start, e.end) for e in hits]), 6)
        o.exclusion_reason = ",".join(sorted({e.reason for e in hits}))


def excluded_within(o: Outage, a: datetime, b: datetime, exclusions: list[Exclusion]) -> float:
    spans = [(e.start, e.end) for e in exclusions if e.covers(o.station_id, o.connector_id)]
    return _overlap(max(a, o.start), min(b, o.end), spans) if max(a, o.start) < min(b, o.end) else 0.0


def port_outages(
    con: duckdb.DuckDBPyConnection,
    registry: dict[str, RegistryStation],
    exclusions: list[Exclusion],
    round_s: int,
) -> list[Outage]:
    """Every outage of a public port, in port/time order, exclusions applied, `ongoing` set when it
    lasts until the end of the port's data."""
    last_end = dict(
        ((cp, int(c)), t)
        for cp, c, t in con.execute(
            'SELECT station_id, connector_id, max("end") FROM w_port_states GROUP BY ALL'
        ).fetchall()
    )
    outages = [
        o for o in status_outages(con) + no_power_outages(con, round_s)
        if o.station_id in registry and registry[o.station_id].public
    ]  # fmt: skip
    outages.sort(key=lambda o: (o.station_id, o.connector_id, o.start))
    for o in outages:
        o.ongoing = o.end >= last_end.get((o.station_id, o.connector_id), o.end)
    apply_exclusions(outages, exclusions)
    return outages


def by_port(outages: list[Outage]) -> dict[tuple[str, int], list[Outage]]:
    out: dict[tuple[str, int], list[Outage]] = defaultdict(list)
    for o in outages:
        out[(o.station_id, o.connector_id)].append(o)
    return out


def local_start_date(o: Outage, tz: str) -> object:
    return o.start.astimezone(ZoneInfo(tz)).date()
