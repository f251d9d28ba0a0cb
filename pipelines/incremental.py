"""Which published partitions a release must rebuild, and which it reuses from the previous release.

Each release records its inputs in its manifest: a fingerprint of everything global (publishing code,
published schema, registry and area files, privacy and rounding settings, time zone) and the sha256 of
each local day's three work files. The next release compares:

- anything global changed, a work day disappeared, or the previous release has no record → rebuild all;
- otherwise a *changed day* is one whose work files are new or differ, or that has a partition the
  previous release kept from an earlier one after a failed quality check (it is tried again).

What a changed day can affect (conservatively):
- daily datasets (station and area series, daily usage): that day only — every value of a daily row,
  suppression included, comes from that day's work rows;
- `station_usage_monthly`: the day's whole month;
- `charging_sessions`: the day's whole pseudonym period (month by default), because whether a station's
  id and pseudonyms are shown depends on its distinct users over the period.
The datasets are built from the work days of the affected periods only (a superset of what is needed);
all other partitions are hard-linked from the previous release with their recorded sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ocpp_opendata import registry
from ocpp_opendata.settings import Settings
from pipelines.partitions import month_start
from pipelines.privacy import letters, period_label
from pipelines.published_schema import DATASETS, SCHEMA_VERSION
from pipelines.quality.overrides import overrides_path
from pipelines.storage import work_dates, work_path

WORK_TABLES = ("sessions", "availability", "station_minutes")
# Source files whose logic shapes published rows: a change to any of them rebuilds everything.
_CODE = (
    "datasets.py", "published_schema.py", "publish.py", "privacy.py", "incremental.py", "storage.py",
    "checks.py", "quality/rules.py", "quality/quarantine.py", "quality/report.py", "quality/build.py",
)  # fmt: skip
PERIOD_DATASETS = {"charging_sessions"}
MONTH_DATASETS = {"station_usage_monthly"}
# Built from every work day each time (trailing 12-month uptime, outages across days): see
# pipelines/reliability/build.py. Unchanged partitions keep identical bytes.
ALWAYS_REBUILT = {"port_outages", "port_uptime_monthly", "network_reliability_monthly",
                  "station_session_outcomes_daily"}  # fmt: skip


def _file_digest(path: Path) -> str:
    # Written in the pseudonym alphabet (no digits, no a-f): a hex digest in the manifest could hold a
    # hex or decimal idTag form by chance, which the leak check would rightly refuse.
    if not path.exists():
        return "-"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return letters(h.digest())


def _max_connectors(data_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in work_dates(data_dir, "availability"):
        tbl = pq.read_table(work_path(data_dir, "availability", d), columns=["station_id", "connectors"])
        for sid, n in zip(tbl["station_id"].to_pylist(), tbl["connectors"].to_pylist(), strict=True):
            out[sid] = max(out.get(sid, 0), n)
    return out


def global_fingerprint(settings: Settings) -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CODE:
        h.update(name.encode() + b"\0" + _file_digest(here / name).encode())
    # The registry reader lives in the foundation (the API reads it too) but shapes published rows.
    h.update(b"registry.py\0" + _file_digest(Path(registry.__file__)).encode())
    facts = {
        "schema": SCHEMA_VERSION,
        "registry": _file_digest(Path(settings.registry_path)),
        "areas": _file_digest(Path(settings.areas_path)),
        "k": settings.privacy_k,
        "round": [settings.round_minutes, settings.round_energy_kwh, settings.round_power_kw],
        "pseudonyms": [settings.pseudonym_period, settings.pseudonym_scope],
        "timezone": settings.timezone,
        # A reviewed override changes which records are published.
        "quality_overrides": _file_digest(overrides_path(settings.data_dir)),
        # The quality check's power limit per station scales with its connectors over all days.
        "connectors": _max_connectors(settings.data_dir),
    }
    h.update(json.dumps(facts, sort_keys=True, default=str).encode())
    return letters(h.digest())


def work_day_digests(data_dir: Path) -> dict[str, str]:
    days = sorted({d for name in WORK_TABLES for d in work_dates(data_dir, name)})
    out = {}
    for d in days:
        h = hashlib.sha256()
        for name in WORK_TABLES:
            h.update(name.encode() + b"\0" + _file_digest(work_path(data_dir, name, d)).encode())
        out[d.isoformat()] = letters(h.digest())
    return out


@dataclass
class Plan:
    inputs: dict[str, Any]
    full: bool
    reason: str
    changed_days: set[date] = field(default_factory=set)
    load_days: list[date] = field(default_factory=list)

    def rebuilds(self, dataset: str, partition: str | None, period: str) -> bool:
        """True when this release writes the partition afresh (False: reuse the previous file)."""
        if self.full or partition is None or dataset in ALWAYS_REBUILT:
            return True
        day = date.fromisoformat(partition)
        if dataset in PERIOD_DATASETS:
            return any(period_label(c, period) == period_label(day, period) for c in self.changed_days)
        if dataset in MONTH_DATASETS:
            return any(month_start(c) == day for c in self.changed_days)
        return day in self.changed_days


def plan_release(settings: Settings, prev_manifest: dict[str, Any], prev: Path | None) -> Plan:
    inputs = {"global": global_fingerprint(settings), "days": work_day_digests(settings.data_dir)}
    all_days = [date.fromisoformat(d) for d in inputs["days"]]
    before = prev_manifest.get("inputs")

    def full(reason: str) -> Plan:
        return Plan(inputs, True, reason, set(all_days), all_days)

    if prev is None or not before:
        return full("no previous release with recorded inputs")
    if before.get("global") != inputs["global"]:
        return full("code, schema, registry, areas or settings changed")
    if set(before.get("days", {})) - set(inputs["days"]):
        return full("a work day disappeared")
    for name, e in prev_manifest.get("datasets", {}).items():
        for f in e.get("files", []):
            if name in DATASETS and not (prev / f["path"]).exists():
                return full("the previous release is incomplete")
    changed = {date.fromisoformat(d) for d, h in inputs["days"].items() if before["days"].get(d) != h}
    for e in prev_manifest.get("datasets", {}).values():
        changed |= {date.fromisoformat(p) for p in e.get("kept_previous", {})}
    periods = {period_label(d, settings.pseudonym_period) for d in changed}
    load = [d for d in all_days if period_label(d, settings.pseudonym_period) in periods]
    return Plan(inputs, False, f"{len(changed)} changed days", changed, load)
