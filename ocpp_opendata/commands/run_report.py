"""The text tables `ocpp-opendata pipeline run` and `pipeline quality` print for operators."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from pipelines.quality.report import QUALITY_API_PATH, record_keys
from pipelines.runner import CheckOutcome

ACTIONS = ("withheld", "flagged", "overridden")


def _by_rule(counts: dict[str, int]) -> str:
    """`power_above_connector_max: 2 withheld, register_backwards: 1 flagged` from {"rule:action": n}."""
    return ", ".join(f"{key.split(':')[0]}: {n} {key.split(':')[1]}" for key, n in counts.items())


def datasets_table(rows: dict[str, int], quality: dict[str, Any]) -> list[str]:
    """Per dataset: rows published, distinct records withheld / flagged / overridden, and by which rule."""
    per = quality.get("by_dataset", {})
    width = max([len("dataset"), *map(len, rows)])
    lines = [
        f"{'dataset':<{width}}  {'rows':>9}  {'withheld':>8}  {'flagged':>7}  {'overridden':>10}  by rule"
    ]
    for name, n in rows.items():
        q = per.get(name, {})
        lines.append(
            f"{name:<{width}}  {n:>9}  {q.get('withheld_records', 0):>8}  {q.get('flagged_records', 0):>7}  "
            f"{q.get('overridden_records', 0):>10}  {_by_rule(q.get('by_rule', {}))}".rstrip()
        )
    return lines


def checks_table(checks: list[CheckOutcome]) -> list[str]:
    """Blocking checks (ERROR) first, then the quality warnings (WARN)."""
    ordered = sorted(checks, key=lambda c: (c.severity != "ERROR", c.name))
    width = max([len("check"), *(len(c.name) for c in ordered)])
    lines = [f"{'check':<{width}}  severity  result"]
    for c in ordered:
        result = (
            "passed" if c.passed else ("FAILED (blocks the release)" if c.severity == "ERROR" else "warning")
        )
        detail = f"  {c.detail}" if c.detail and not c.passed else ""
        lines.append(f"{c.name:<{width}}  {c.severity:<8}  {result}{detail}")
    return lines


def quality_line(quality: dict[str, Any]) -> str:
    return (
        f"quality: {quality.get('withheld_records', 0)} record(s) withheld, "
        f"{quality.get('flagged_records', 0)} flagged, {quality.get('overridden_records', 0)} overridden "
        f"(dataset quality_issues, {QUALITY_API_PATH})"
    )


def _latest_date(manifest: dict[str, Any]) -> date | None:
    ends = [e["coverage"][1] for e in manifest.get("datasets", {}).values() if e.get("coverage")]
    return date.fromisoformat(max(ends)) if ends else None


def daily_counts(release: Path, manifest: dict[str, Any], days: int) -> tuple[list[date], dict[Any, Any]]:
    """The last `days` local dates the release covers, and (date, rule, record kind) → {action: distinct
    records}; record kinds: session, station_15min (a station's 15-minute interval)."""
    con = duckdb.connect(str(release / "catalog.duckdb"), read_only=True)
    try:
        rows = (
            con.sql("SELECT date, dataset, record, record_id, action, rule FROM quality_issues")
            .to_arrow_table()
            .to_pylist()
        )
    finally:
        con.close()
    latest = _latest_date(manifest) or max((r["date"] for r in rows), default=None)
    if latest is None:
        return [], {}
    window = [latest - timedelta(days=i) for i in range(days - 1, -1, -1)]
    first = window[0]
    seen: dict[tuple[date, str, str], dict[str, set[str]]] = {}
    for r, key in zip(rows, record_keys(rows), strict=True):
        if not first <= r["date"] <= latest:
            continue
        seen.setdefault((r["date"], r["rule"], r["record"]), {}).setdefault(r["action"], set()).add(key)
    counts = {k: {a: len(v.get(a, ())) for a in ACTIONS} for k, v in seen.items()}
    return window, counts


def daily_table(window: list[date], counts: dict[tuple[date, str, str], dict[str, int]]) -> list[str]:
    """Every date of the window (a day without issues shows as such: never silent), rules per date."""
    width = max([len("rule"), *(len(rule) for _, rule, _ in counts)])

    def line(first: str, rule: str, record: str, c: dict[str, Any]) -> str:
        return (
            f"{first:<10}  {rule:<{width}}  {record:<13}  {c['withheld']:>8}  {c['flagged']:>7}  "
            f"{c['overridden']:>10}"
        )

    lines = [line("date", "rule", "record", {a: a for a in ACTIONS})]
    totals = dict.fromkeys(ACTIONS, 0)
    for d in window:
        keys = sorted((rule, record) for day, rule, record in counts if day == d)
        if not keys:
            lines.append(line(d.isoformat(), "-", "-", dict.fromkeys(ACTIONS, 0)))
        for rule, record in keys:
            c = counts[(d, rule, record)]
            for a in ACTIONS:
                totals[a] += c[a]
            lines.append(line(d.isoformat(), rule, record, c))
    lines.append(line("total", "", "", totals))  # a record breaking two rules counts under each
    return lines
