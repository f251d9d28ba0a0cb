"""The public quality report: `quality_issues` rows from the private decisions of `quarantine.py`.

One row per affected dataset and record, so that `?dataset=` answers "what is missing here":

- a session at a public station: `charging_sessions` (only where that dataset has rows for the
  station: fewer than k users in the pseudonym period leave its sessions out, as there), and, when
  withheld or overridden, `station_usage_daily`, `station_usage_monthly`, `area_usage_daily`;
- an interval at a public station: `station_energy_15min`, `area_peak_15min`;
- a record of a non-public station: only the area datasets, only where its area-day counts
  non-public stations at all (otherwise it never reaches a published byte), and never its id.

`record_id` is a keyed hash (the pseudonym key), the same on every row of one record and matching
nothing else published.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.privacy import letters
from pipelines.quality.quarantine import Quarantine

# The API's answer over quality_issues (api/routes/quality.py), named in datapackage.json and DCAT.
QUALITY_API_PATH = "/v1/quality"


def _keyed(key: bytes, record: str, record_id: str) -> str:
    msg = f"quality-record\x00{record}\x00{record_id}".encode()
    return letters(hmac.new(key, msg, hashlib.sha256).digest(), 24)


def issues_sql() -> str:
    """SELECT of the published rows (without `release`) over `q_issues` and the temp tables of
    `pipelines.datasets.build_datasets` (`reg`, `station_period`, `private_area_day`)."""
    return """
        WITH i AS (
            SELECT q.*, coalesce(r.area, 'unknown') AS area, coalesce(r.access = 'public', false) AS public,
                   coalesce(sp.shown, false) AS shown, p.area IS NOT NULL AS private_counted
            FROM q_issues q LEFT JOIN reg r USING (station_id)
            LEFT JOIN (SELECT DISTINCT station_id, period, shown FROM station_period) sp
                ON sp.station_id = q.station_id AND sp.period = q.period
            LEFT JOIN private_area_day p ON p.area = coalesce(r.area, 'unknown') AND p.date = q.date
        ),
        d AS (
            SELECT i.*, x.dataset FROM i, (VALUES ('charging_sessions'), ('station_usage_daily'),
                ('station_usage_monthly'), ('area_usage_daily'), ('station_energy_15min'),
                ('area_peak_15min')) x(dataset)
            WHERE CASE
                WHEN record = 'session' AND dataset = 'charging_sessions' THEN public AND shown
                WHEN record = 'session' AND dataset IN ('station_usage_daily', 'station_usage_monthly')
                    THEN public AND action <> 'flagged'
                WHEN record = 'session' AND dataset = 'area_usage_daily'
                    THEN (public OR private_counted) AND action <> 'flagged'
                WHEN record = 'station_15min' AND dataset = 'station_energy_15min' THEN public
                WHEN record = 'station_15min' AND dataset = 'area_peak_15min' THEN public OR private_counted
                ELSE false END
        )
        SELECT date, dataset,
               CASE WHEN dataset = 'station_usage_monthly' THEN date_trunc('month', date)::DATE
                    ELSE date END AS dataset_date,
               CASE WHEN public THEN station_id END AS station_id,
               area, record, record_id,
               interval_start, action, rule, round(measured_value, 3) AS measured_value,
               round(limit_value, 3) AS limit_value, unit,
               CASE WHEN action = 'flagged' THEN 0.0 ELSE round(coalesce(energy_wh, 0) / 1000.0, 3) END
                   AS withheld_energy_kwh,
               detail
        FROM d"""


def issues_table(
    con: duckdb.DuckDBPyConnection, quarantine: Quarantine, key: bytes, period_sql: str
) -> pa.Table:
    """The published rows (every column but `release`) of this build's decisions."""
    issues = quarantine.issues
    ids = [
        _keyed(key, rec, rid)
        for rec, rid in zip(issues["record"].to_pylist(), issues["record_id"].to_pylist(), strict=True)
    ]
    issues = issues.set_column(
        issues.schema.get_field_index("record_id"), "record_id", pa.array(ids, pa.string())
    )
    con.register("q_issues_raw", issues)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE q_issues AS SELECT *, {period_sql} AS period FROM q_issues_raw"
    )
    return con.sql(issues_sql()).to_arrow_table()


def record_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The record each row stands for, for counting distinct records: a record has a row per dataset
    it affects, all with its `record_id` (a row without one, from an older release, counts alone)."""
    return [r["record_id"] if r["record_id"] is not None else f"#{i}" for i, r in enumerate(rows)]


def _counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    seen: dict[str, set[str]] = {"withheld": set(), "flagged": set(), "overridden": set()}
    by_rule: dict[str, set[str]] = {}
    by_date: dict[str, dict[str, set[str]]] = {}
    for r, key in zip(rows, record_keys(rows), strict=True):
        seen.setdefault(r["action"], set()).add(key)
        by_rule.setdefault(f"{r['rule']}:{r['action']}", set()).add(key)
        by_date.setdefault(r["date"].isoformat(), {}).setdefault(r["action"], set()).add(key)
    return {
        "withheld_records": len(seen["withheld"]),
        "flagged_records": len(seen["flagged"]),
        "overridden_records": len(seen["overridden"]),
        "by_rule": {k: len(v) for k, v in sorted(by_rule.items())},
        "by_date": {d: {a: len(v) for a, v in sorted(c.items())} for d, c in sorted(by_date.items())},
    }


def quality_summary(table: pa.Table) -> dict[str, Any]:
    """Counts of one release's `quality_issues`: distinct records per action, rule and local date, over
    the whole release and per dataset (`by_dataset`, without `by_date`)."""
    rows = table.select(["date", "dataset", "record_id", "action", "rule"]).to_pylist()
    summary = _counts(rows)
    per: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        per.setdefault(r["dataset"], []).append(r)
    summary["by_dataset"] = {}
    for name, ds_rows in sorted(per.items()):
        counts = _counts(ds_rows)
        del counts["by_date"]
        summary["by_dataset"][name] = counts
    return summary
