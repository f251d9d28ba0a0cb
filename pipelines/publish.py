"""Releases: an immutable `published/releases/<id>/` per publish, switched in atomically.

Order: build the datasets from the work days whose inputs changed (`pipelines/incremental.py`;
the other partitions are hard-linked from the previous release) → write the release under a hidden
staging name → run the blocking checks (privacy, totals against raw) on exactly those bytes →
rename it into place → point `published/current` at it (a new symlink at a temporary name, then
os.replace). A failing blocking check deletes the
staging folder and raises: the previous release stays online. A partition failing a quality check
keeps its previous version, and the manifest says so.

With a remote store (`store` = s3://...), the release is built and checked in DATA_DIR/published exactly
so, then uploaded to `published/releases/<id>/` (datapackage.json last: its presence marks a complete
upload), each object confirmed by its size; only then does one small PUT of `published/CURRENT` switch
readers over. A failed upload leaves CURRENT where it was. The previous release, which incremental reuse
links from, is the store's current one, downloaded when this machine lacks it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, mirror, store_for
from ocpp_opendata.settings import Settings
from pipelines import checks, reconcile
from pipelines.consistency import check_energy_totals_agree
from pipelines.daily import connect
from pipelines.datasets import build_datasets, partitions_of
from pipelines.incremental import Plan, plan_release
from pipelines.privacy import load_master_key
from pipelines.published_schema import (
    CATALOG_FILENAME,
    CURRENT_LINK,
    DATAPACKAGE_FILENAME,
    DATASETS,
    DATASETS_DIRNAME,
    DCAT_FILENAME,
    MANIFEST_FILENAME,
    PARQUET_MEDIA_TYPE,
    RELEASES_DIRNAME,
    SCHEMA_VERSION,
    Dataset,
    current_release_dir,
    download_path,
    partition_path,
    published_root,
)
from pipelines.quality.build import stamp_release
from pipelines.quality.report import QUALITY_API_PATH, quality_summary
from pipelines.raw_index import RawIndex
from pipelines.reliability.checks import reliability_checks
from pipelines.storage import (
    prune_store_releases,
    read_current,
    release_prefix,
    switch_store_current,
    upload_release,
    write_parquet,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    release_id: str
    path: Path
    manifest: dict[str, Any]
    reports: list[checks.CheckReport]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def new_release_id(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _previous_manifest(prev: Path | None) -> dict[str, Any]:
    if prev is None or not (prev / MANIFEST_FILENAME).exists():
        return {}
    return json.loads((prev / MANIFEST_FILENAME).read_text())


def _split(tbl: pa.Table, ds: Dataset) -> dict[str | None, pa.Table]:
    if not ds.partitioned:
        return {None: tbl}
    out: dict[str | None, pa.Table] = {}
    for d in partitions_of(tbl):
        out[d.isoformat()] = tbl.filter(pa.compute.equal(tbl["date"], pa.scalar(d, pa.date32())))
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    """A byte-identical copy of an immutable file of the previous release (a hard link when possible)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_dataset(
    ds: Dataset,
    tbl: pa.Table,
    staging: Path,
    prev: Path | None,
    prev_entry: dict[str, Any],
    prev_files: dict[str, str],
    failed: dict[str, str],
    plan: Plan,
    period: str,
) -> tuple[dict[str, Any], pa.Table]:
    """Write one dataset's partitions: rebuilt ones from `tbl`, the others reused from the previous
    release. Returns its manifest entry and the whole published table."""
    parts = _split(tbl, ds)
    entry: dict[str, Any] = {"added": [], "changed": [], "unchanged": [], "kept_previous": {}, "files": []}
    pieces: dict[str, pa.Table] = {}
    for part, ptbl in sorted(parts.items(), key=lambda kv: kv[0] or ""):
        if not plan.rebuilds(ds.name, part, period):
            continue
        target = partition_path(staging, ds.name, part)
        rel = str(target.relative_to(staging))
        if part is not None and part in failed:
            old = partition_path(prev, ds.name, part) if prev else None
            entry["kept_previous"][part] = failed[part]
            if old is None or not old.exists():
                continue  # nothing trustworthy to keep: the partition is left out
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(old, target)
            ptbl = pq.read_table(old)
        else:
            write_parquet(ptbl, target, ds.sort_keys)
        digest = sha256_file(target)
        kind = "added" if rel not in prev_files else ("unchanged" if prev_files[rel] == digest else "changed")
        if part is not None and part not in failed:
            entry[kind].append(part)
        entry["files"].append(
            {
                "path": rel,
                "partition": part,
                "bytes": target.stat().st_size,
                "hash": digest,
                "rows": ptbl.num_rows,
            }
        )
        pieces[rel] = ptbl
    for f in prev_entry.get("files", []) if prev is not None else []:
        part = f["partition"]
        if part is None or plan.rebuilds(ds.name, part, period):
            continue
        _link_or_copy(prev / f["path"], staging / f["path"])
        entry["unchanged"].append(part)
        entry["files"].append(dict(f))
        pieces[f["path"]] = pq.read_table(staging / f["path"])
    for kind in ("added", "changed", "unchanged"):
        entry[kind].sort()
    entry["files"].sort(key=lambda f: f["path"])
    tables = [pieces[k] for k in sorted(pieces)]
    whole = pa.concat_tables(tables) if tables else tbl.schema.empty_table()
    dl = download_path(staging, ds.name)
    write_parquet(whole, dl, ds.sort_keys)
    entry["rows"] = whole.num_rows
    entry["download"] = {
        "path": str(dl.relative_to(staging)),
        "bytes": dl.stat().st_size,
        "hash": sha256_file(dl),
    }
    if ds.partitioned and whole.num_rows:
        dates = whole["date"].to_pylist()
        entry["coverage"] = [min(dates).isoformat(), max(dates).isoformat()]
    return entry, whole


def _catalog(staging: Path) -> None:
    path = staging / CATALOG_FILENAME
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name in DATASETS:
            src = str(download_path(staging, name)).replace("'", "''")
            con.execute(f"CREATE TABLE \"{name}\" AS SELECT * FROM read_parquet('{src}')")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _datapackage(
    settings: Settings, release_id: str, created: str, entries: dict[str, Any]
) -> dict[str, Any]:
    # A monthly partition's date is the first of its month, not the first data: days only.
    coverage = [
        e["coverage"] for n, e in entries.items() if "coverage" in e and DATASETS[n].partition_period == "day"
    ]
    temporal = (
        {"start": min(c[0] for c in coverage), "end": max(c[1] for c in coverage)} if coverage else None
    )
    resources = []
    for name, ds in DATASETS.items():
        e = entries[name]
        resources.append(
            {
                "name": name,
                "title": ds.title,
                "description": ds.description,
                "path": e["download"]["path"],
                "format": "parquet",
                "mediatype": PARQUET_MEDIA_TYPE,
                "bytes": e["download"]["bytes"],
                "hash": e["download"]["hash"],
                "rows": e["rows"],
                "files": list(e["files"]),
                "schema": {
                    "fields": [
                        {
                            "name": c.name,
                            "type": c.frictionless_type,
                            "unit": c.unit,
                            "description": c.description,
                        }
                        for c in ds.columns
                    ],
                    "primaryKey": list(ds.sort_keys),
                },
                "timeColumn": ds.time_column,
            }
        )
    return {
        "name": "ocpp-opendata",
        "title": "EV charging open data",
        "id": release_id,
        "version": release_id,
        "created": created,
        "schemaVersion": SCHEMA_VERSION,
        "licenses": [
            {"name": settings.license, "path": f"https://spdx.org/licenses/{settings.license}.html"}
        ],
        "publisher": settings.publisher,
        "timezone": settings.timezone,
        "temporalCoverage": temporal,
        "resources": resources,
        # What the quality rules withheld or flagged in this release (docs/pipeline.md).
        "qualityReport": {
            "resource": "quality_issues",
            "path": entries["quality_issues"]["download"]["path"],
            "api": QUALITY_API_PATH,
        },
    }


def _dcat(package: dict[str, Any]) -> dict[str, Any]:
    temporal = package["temporalCoverage"]
    return {
        "@context": {
            "dcat": "http://www.w3.org/ns/dcat#",
            "dct": "http://purl.org/dc/terms/",
            "spdx": "http://spdx.org/rdf/terms#",
            "xsd": "http://www.w3.org/2001/XMLSchema#",
            "dqv": "http://www.w3.org/ns/dqv#",
            "foaf": "http://xmlns.com/foaf/0.1/",
        },
        "@type": "dcat:Catalog",
        "dct:title": package["title"],
        "dct:publisher": {"@type": "foaf:Agent", "foaf:name": package["publisher"]},
        "dct:issued": package["created"],
        "dct:identifier": package["id"],
        # W3C Data Quality Vocabulary: the per-record quality report of this release.
        "dqv:hasQualityAnnotation": {
            "@type": "dqv:QualityAnnotation",
            "dct:identifier": package["qualityReport"]["resource"],
            "dcat:downloadURL": package["qualityReport"]["path"],
            "dcat:accessURL": package["qualityReport"]["api"],
        },
        "dcat:dataset": [
            {
                "@type": "dcat:Dataset",
                "dct:identifier": r["name"],
                "dct:title": r["title"],
                "dct:description": r["description"],
                "dct:license": package["licenses"][0]["path"],
                **(
                    {
                        "dct:temporal": {
                            "@type": "dct:PeriodOfTime",
                            "dcat:startDate": temporal["start"],
                            "dcat:endDate": temporal["end"],
                        }
                    }
                    if temporal
                    else {}
                ),
                "dcat:distribution": [
                    {
                        "@type": "dcat:Distribution",
                        "dcat:downloadURL": r["path"],
                        "dcat:mediaType": r["mediatype"],
                        "dcat:byteSize": r["bytes"],
                        "spdx:checksum": {
                            "spdx:algorithm": "spdx:checksumAlgorithm_sha256",
                            "spdx:checksumValue": r["hash"].split(":", 1)[1],
                        },
                    }
                ],
            }
            for r in package["resources"]
        ],
    }


def _dump(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


def switch_current(root: Path, release_id: str) -> None:
    """Point published/current at releases/<id> atomically: readers see the old or the new, never none."""
    tmp = root / f".{CURRENT_LINK}-{release_id}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(Path(RELEASES_DIRNAME) / release_id, tmp)
    os.replace(tmp, root / CURRENT_LINK)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune_releases(root: Path, keep: int) -> list[str]:
    current = (root / CURRENT_LINK).resolve() if (root / CURRENT_LINK).exists() else None
    releases = sorted(
        p for p in (root / RELEASES_DIRNAME).iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    removed = []
    for old in releases[: max(0, len(releases) - keep)]:
        if current is not None and old.resolve() == current:
            continue
        shutil.rmtree(old)
        removed.append(old.name)
    return removed


def build_base(settings: Settings, store: Store) -> Path:
    """The folder whose published/ holds the releases built here: the local store's root (DATA_DIR by
    default), or DATA_DIR as the build area of a remote store."""
    if settings.store and store.local_root is not None:
        return store.local_root
    return settings.data_dir


def _store_previous(store: Store, base: Path) -> Path | None:
    """The store's current release, as a local folder (its manifest and partitions fetched if missing)."""
    release_id = read_current(store)
    if release_id is None:
        return None
    local = published_root(base) / RELEASES_DIRNAME / release_id
    if not (local / MANIFEST_FILENAME).exists():
        # Only what incremental reuse links from; the downloads and catalog are rebuilt anyway.
        mirror(store, f"{release_prefix(release_id)}/{DATASETS_DIRNAME}", base)
        store.get_file(f"{release_prefix(release_id)}/{MANIFEST_FILENAME}", local / MANIFEST_FILENAME)
    return local


def _ship(store: Store, root: Path, final: Path, keep: int) -> list[str]:
    """Upload a checked release and switch the store's CURRENT to it; prune old releases in the store.

    Locally only the current release stays: it is the base of the next incremental build."""
    sent = upload_release(store, final, DATAPACKAGE_FILENAME)
    switch_store_current(store, final.name)
    switch_current(root, final.name)
    removed = prune_store_releases(store, keep, final.name, DATAPACKAGE_FILENAME)
    prune_releases(root, 1)
    log.info("uploaded release", extra=fields(release=final.name, store=store.url, bytes=sent))
    return removed


def _touched_dates(entry: dict[str, Any]) -> list[date]:
    """Local dates of a dataset's partitions that are new or changed in this release."""
    return sorted(date.fromisoformat(p) for p in entry["added"] + entry["changed"])


def publish(settings: Settings, now: datetime | None = None) -> PublishResult:
    """Build, check and switch in a new release. Raises PseudonymKeyError or PrivacyCheckError."""
    load_master_key(settings)  # refuse early: nothing is published without a pseudonym key
    now = now or datetime.now(UTC)
    store = store_for(settings)
    base = build_base(settings, store)
    root = published_root(base)
    (root / RELEASES_DIRNAME).mkdir(parents=True, exist_ok=True)
    release_id = new_release_id(now)
    staging = root / RELEASES_DIRNAME / f".staging-{release_id}"
    prev = _store_previous(store, base) if store.is_remote else current_release_dir(base)
    prev_manifest = _previous_manifest(prev)
    prev_files = {
        f["path"]: f["hash"] for e in prev_manifest.get("datasets", {}).values() for f in e.get("files", [])
    }
    plan = plan_release(settings, prev_manifest, prev)
    prev_entries = prev_manifest.get("datasets", {}) if not plan.full else {}
    con = connect()
    try:
        built = build_datasets(settings, con, None if plan.full else plan.load_days, now)
    finally:
        con.close()
    # Quality acts per record (pipelines/quality): no partition keeps its previous version any more.
    failures: dict[str, dict[str, str]] = {}
    built.tables["quality_issues"] = stamp_release(built.tables["quality_issues"], release_id)
    try:
        written = {
            name: _write_dataset(
                ds,
                built.tables[name],
                staging,
                prev,
                prev_entries.get(name, {}),
                prev_files,
                failures.get(name, {}),
                plan,
                settings.pseudonym_period,
            )
            for name, ds in DATASETS.items()
        }
        entries = {name: e for name, (e, _) in written.items()}
        # The privacy checks read the whole release, reused partitions included.
        tables = {name: t for name, (_, t) in written.items()}
        reports = [
            checks.check_pseudonyms_single_station(tables["charging_sessions"])
            if settings.pseudonym_scope == "station"
            else checks.CheckReport("pseudonym_single_station", True, "network scope chosen: not applicable"),
            checks.check_no_private_station(tables, built.registry),
            checks.check_suppressed_cells(tables),
            checks.check_hidden_sessions_absent(tables["charging_sessions"], built.hidden_sessions),
            check_energy_totals_agree(tables, float(settings.round_energy_kwh)),
            *reliability_checks(tables, settings.timezone),
        ]
        _catalog(staging)
        created = now.astimezone(UTC).isoformat()
        package = _datapackage(settings, release_id, created, entries)
        _dump(staging / DATAPACKAGE_FILENAME, package)
        _dump(staging / DCAT_FILENAME, _dcat(package))
        index = RawIndex.of(settings)
        index.refresh()
        matcher = checks.forbidden_tokens(
            index.seen_tags(), [s for s, st in built.registry.items() if not st.public]
        )
        leaks = checks.scan_release_for_tokens(staging, matcher)
        reports.append(
            checks.CheckReport(
                "no_idtag_in_release",
                not leaks,
                "; ".join(leaks[:5]) or f"every file scanned, {MANIFEST_FILENAME} right after it is written",
            )
        )
        quality_days = _touched_dates(entries["quality_issues"])
        reports.append(
            reconcile.check_totals_reconcile(
                tables,
                # A day whose quality decisions changed is recounted too: withheld records count there.
                sorted({*_touched_dates(entries["station_energy_15min"]), *quality_days}),
                sorted({*_touched_dates(entries["station_usage_daily"]), *quality_days}),
                {s for s, st in built.registry.items() if st.public},
                index,
                settings,
                withheld=built.quarantine,
                retried_starts=built.retried_starts,
            )
        )
        # The manifest is written last so that it lists every blocking check; it is scanned on its own.
        manifest = {
            "release_id": release_id,
            "created_at": created,
            "previous_release_id": prev_manifest.get("release_id"),
            "schema_version": SCHEMA_VERSION,
            "timezone": settings.timezone,
            "datasets": entries,
            "checks": [r.__dict__ for r in reports],
            "quality": quality_summary(tables["quality_issues"]),
            "inputs": plan.inputs,
            "rebuilt": {
                "full": plan.full,
                "reason": plan.reason,
                "changed_days": sorted(d.isoformat() for d in plan.changed_days),
            },
        }
        _dump(staging / MANIFEST_FILENAME, manifest)
        leak = checks.scan_file_for_tokens(staging / MANIFEST_FILENAME, Path(MANIFEST_FILENAME), matcher)
        if leak:
            reports.append(checks.CheckReport("no_idtag_in_release", False, leak))
        failed = [r for r in reports if not r.passed]
        if failed:
            raise checks.PrivacyCheckError(
                "release blocked by checks: " + "; ".join(f"{r.name} ({r.detail})" for r in failed),
                reports,
            )
        final = root / RELEASES_DIRNAME / release_id
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if store.is_remote:
        removed = _ship(store, root, final, settings.releases_kept)
    else:
        switch_current(root, release_id)
        removed = prune_releases(root, settings.releases_kept)
    log.info(
        "published release",
        extra=fields(release=release_id, previous=manifest["previous_release_id"], pruned=len(removed)),
    )
    return PublishResult(release_id, final, manifest, reports)


def published_dates(settings: Settings) -> list[date]:
    cur = current_release_dir(build_base(settings, store_for(settings)))
    if cur is None:
        return []
    m = _previous_manifest(cur)
    return sorted({date.fromisoformat(p) for e in m.get("datasets", {}).values() for p in e.get("added", [])})
