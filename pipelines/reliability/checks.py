"""Blocking checks of the reliability datasets (a failure stops the release, like the privacy checks):

- `outage_minutes_within_period`: no port-month has more outage minutes than observed minutes, no
  exclusion more minutes than its outage, no network cell more not-working minutes than minutes;
- `outages_add_up_to_monthly_totals`: the port_outages rows, cut at local month boundaries, sum to
  port_uptime_monthly's outage and excluded minutes for every port-month (and no outage belongs to a
  port-month that has no row);
- `uptime_follows_the_formula`: uptime_pct = (T − (T_outage − T_excluded)) / T × 100 on every row,
  and uptime_pct_12m the same over the trailing 12 rows of the port.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import pyarrow as pa

from pipelines.checks import CheckReport
from pipelines.partitions import day_bounds, local_date, month_start

TOLERANCE_MIN = 1e-3


def _next_month(m: date) -> date:
    return (m + timedelta(days=32)).replace(day=1)


def check_outage_minutes_within_period(tables: dict[str, pa.Table]) -> CheckReport:
    bad = []
    for r in tables["port_uptime_monthly"].to_pylist():
        if (
            r["outage_minutes"] > r["period_minutes"] + TOLERANCE_MIN
            or r["excluded_minutes"] > r["outage_minutes"] + TOLERANCE_MIN
        ):
            bad.append(f"{r['station_id']}/{r['connector_id']} {r['date']}")
    for r in tables["port_outages"].to_pylist():
        if r["excluded_minutes"] > r["minutes"] + TOLERANCE_MIN or r["minutes"] < 0:
            bad.append(f"outage {r['station_id']}/{r['connector_id']} {r['start']}")
    for name in ("network_reliability_monthly", "network_reliability_yearly"):
        for r in tables[name].to_pylist():
            if r["not_working_minutes"] > r["total_minutes"] + TOLERANCE_MIN:
                bad.append(f"{name} {r['area']} {r.get('date', r.get('year'))}")
    return CheckReport("outage_minutes_within_period", not bad, "; ".join(bad[:5]))


def check_outages_add_up(tables: dict[str, pa.Table], tz: str) -> CheckReport:
    sums: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for o in tables["port_outages"].to_pylist():
        m = month_start(local_date(o["start"], tz))
        while True:
            a, b = day_bounds(m, tz)[0], day_bounds(_next_month(m), tz)[0]
            if a >= o["end"]:
                break
            lo, hi = max(a, o["start"]), min(b, o["end"])
            if lo < hi:
                share = (hi - lo).total_seconds() / 60.0
                cell = sums[(o["station_id"], o["connector_id"], m)]
                cell[0] += share
                # An outage's exclusion lies inside it; its share of a month is checked as a bound.
                cell[1] += min(o["excluded_minutes"], share)
            m = _next_month(m)
    bad = []
    rows = {
        (r["station_id"], r["connector_id"], r["date"]): r for r in tables["port_uptime_monthly"].to_pylist()
    }
    for key, (minutes, excluded_bound) in sums.items():
        r = rows.get(key)
        if r is None:
            bad.append(f"{key[0]}/{key[1]} {key[2]}: outage without a monthly row")
        elif (
            abs(r["outage_minutes"] - minutes) > TOLERANCE_MIN
            or r["excluded_minutes"] > excluded_bound + TOLERANCE_MIN
        ):
            bad.append(f"{key[0]}/{key[1]} {key[2]}: {minutes:.3f} vs {r['outage_minutes']:.3f} min")
    for key, r in rows.items():
        if key not in sums and (r["outage_minutes"] > TOLERANCE_MIN or r["excluded_minutes"] > TOLERANCE_MIN):
            bad.append(f"{key[0]}/{key[1]} {key[2]}: monthly outage minutes without outage rows")
    return CheckReport("outages_add_up_to_monthly_totals", not bad, "; ".join(bad[:5]))


def _mu(t: float, o: float, x: float) -> float:
    return 100.0 * (t - (o - x)) / t


def check_uptime_formula(tables: dict[str, pa.Table]) -> CheckReport:
    bad = []
    by_port: dict[tuple, list[dict]] = defaultdict(list)
    for r in tables["port_uptime_monthly"].to_pylist():
        by_port[(r["station_id"], r["connector_id"])].append(r)
    for rows in by_port.values():
        rows.sort(key=lambda r: r["date"])
        for r in rows:
            t, o, x = r["period_minutes"], r["outage_minutes"], r["excluded_minutes"]
            want = _mu(t, o, x) if t > 0 else None
            if (want is None) != (r["uptime_pct"] is None) or (
                want is not None and abs(want - r["uptime_pct"]) > 1e-6
            ):
                bad.append(f"{r['station_id']}/{r['connector_id']} {r['date']}: uptime_pct")
            n = r["date"].year * 12 + r["date"].month - 1 - 11
            first = date(n // 12, n % 12 + 1, 1)
            window = [w for w in rows if first <= w["date"] <= r["date"]]
            wt = sum(w["period_minutes"] for w in window)
            months = sum(1 for w in window if w["period_minutes"] > 0)
            want12 = _mu(
                wt, sum(w["outage_minutes"] for w in window), sum(w["excluded_minutes"] for w in window)
            )
            got12 = r["uptime_pct_12m"]
            if months >= 12 and wt > 0:
                if got12 is None or abs(got12 - want12) > 1e-6:
                    bad.append(f"{r['station_id']}/{r['connector_id']} {r['date']}: uptime_pct_12m")
            elif got12 is not None:
                bad.append(
                    f"{r['station_id']}/{r['connector_id']} {r['date']}: 12m figure with {months} months"
                )
            if wt > 0 and r["meets_nevi"] != (want12 > 97.0):
                bad.append(f"{r['station_id']}/{r['connector_id']} {r['date']}: meets_nevi")
    return CheckReport("uptime_follows_the_formula", not bad, "; ".join(bad[:5]))


def reliability_checks(tables: dict[str, pa.Table], tz: str) -> list[CheckReport]:
    return [
        check_outage_minutes_within_period(tables),
        check_outages_add_up(tables, tz),
        check_uptime_formula(tables),
    ]
