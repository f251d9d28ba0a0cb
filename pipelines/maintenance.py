"""Raw-zone upkeep: compaction of closed receipt dates and the raw retention of personal data.

Compaction: the listener rolls a small file every <= 60 s, so a receipt date holds ~1,440 files per
table. Once a date is closed (older than `grace_days`), its files are rewritten as one file
`compacted-<digest>.parquet` (rows sorted, row groups <= 128k) and the inputs removed. Exactly once:
a journal under DATA_DIR/state/pipeline/compaction names the inputs and the output before anything
changes; a run interrupted anywhere is finished (or rolled back) by the next one, so no row is ever
lost or doubled.

Retention: after `raw_retention_days`, raw idTags (transaction_events.id_tag, id_token_extra) and
frame texts (frames.text, quarantine.text) are replaced by keyed pseudonyms in place (same journal).

With a remote store (`store` = s3://...) the same runs on the store's `raw/` keys: the inputs are fetched
into DATA_DIR/cache, the output is written there and uploaded, and only once the store confirms it are the
input objects deleted. The journal (still local, naming keys and the store) makes an interrupted run
finish the same way. Listeners only ever add new names, so a file uploaded meanwhile is left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import TABLES
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, store_for
from ocpp_opendata.settings import Settings
from pipelines.privacy import Pseudonymizer, load_master_key
from pipelines.storage import MAX_ROW_GROUP, RAW_PREFIX, cache_root

log = logging.getLogger(__name__)

COMPACTED_PREFIX = "compacted-"
REDACTED_PREFIX = "redacted-"
PERSONAL_COLUMNS = {
    "transaction_events": ("id_tag", "id_token_extra"),
    "frames": ("text",),
    "quarantine": ("text",),
}


@dataclass
class MaintenanceReport:
    compacted_partitions: int = 0
    files_removed: int = 0
    redacted_partitions: int = 0


def _journal_dir(data_dir: Path) -> Path:
    return data_dir / "state" / "pipeline" / "compaction"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=MAX_ROW_GROUP, write_statistics=True)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _finish(journal: Path) -> int:
    """Complete a journalled rewrite: if its output exists, remove the inputs; else drop the journal."""
    entry = json.loads(journal.read_text())
    out = Path(entry["output"])
    removed = 0
    if out.exists():
        for name in entry["inputs"]:
            p = out.parent / name
            if p.exists() and p != out:
                p.unlink()
                removed += 1
        _fsync_dir(out.parent)
    journal.unlink()
    return removed


def recover(data_dir: Path, store: Store | None = None) -> int:
    """Finish interrupted rewrites: of the local raw zone, or (given a remote store) of that store's."""
    jdir = _journal_dir(data_dir)
    if not jdir.is_dir():
        return 0
    done = 0
    for journal in sorted(jdir.glob("*.json")):
        of_store = json.loads(journal.read_text()).get("store")
        if of_store is None and store is None:
            done += _finish(journal)
        elif store is not None and of_store == store.url:
            done += _finish_store(journal, store, data_dir)
    return done


def _finish_store(journal: Path, store: Store, data_dir: Path) -> int:
    """As `_finish`, on store keys: inputs are deleted only when the output object is there."""
    entry = json.loads(journal.read_text())
    out = entry["output"]
    removed = 0
    if store.exists(out):
        for key in entry["inputs"]:
            if key != out and store.exists(key):
                store.delete(key)
                removed += 1
            (cache_root(data_dir) / key).unlink(missing_ok=True)
    journal.unlink()
    return removed


def _rewrite(data_dir: Path, part: Path, inputs: list[Path], table: pa.Table, prefix: str) -> int:
    digest = hashlib.sha256("\n".join(sorted(p.name for p in inputs)).encode()).hexdigest()[:16]
    out = part / f"{prefix}{digest}.parquet"
    jdir = _journal_dir(data_dir)
    jdir.mkdir(parents=True, exist_ok=True)
    journal = jdir / f"{part.parent.name}-{part.name}-{digest}.json"
    journal.write_text(json.dumps({"output": str(out), "inputs": [p.name for p in inputs]}))
    _fsync_dir(jdir)
    _write(table, out)
    return _finish(journal)


def _sorted(tbl: pa.Table) -> pa.Table:
    keys = [k for k in ("charge_point_id", "received_at") if k in tbl.column_names]
    return tbl.sort_by([(k, "ascending") for k in keys]) if keys and tbl.num_rows else tbl


def compact_partition(data_dir: Path, table: str, part: Path) -> int:
    """Files removed (0 when the partition is already a single compacted file)."""
    files = sorted(p for p in part.glob("*.parquet") if not p.name.startswith("."))
    if len(files) <= 1:
        return 0
    schema = TABLES[table].schema
    tbl = pa.concat_tables([pq.read_table(f).select(schema.names).cast(schema) for f in files])
    return _rewrite(data_dir, part, files, _sorted(tbl), COMPACTED_PREFIX)


def redact_partition(data_dir: Path, table: str, part: Path, pseudo: Pseudonymizer) -> bool:
    files = sorted(p for p in part.glob("*.parquet") if not p.name.startswith("."))
    if not files or all(p.name.startswith(REDACTED_PREFIX) for p in files):
        return False
    schema = TABLES[table].schema
    tbl = pa.concat_tables([pq.read_table(f).select(schema.names).cast(schema) for f in files])
    _rewrite(data_dir, part, files, _sorted(_redacted(tbl, table, pseudo)), REDACTED_PREFIX)
    return True


def _redacted(tbl: pa.Table, table: str, pseudo: Pseudonymizer) -> pa.Table:
    for col in PERSONAL_COLUMNS[table]:
        values = tbl[col].to_pylist()
        cache: dict[str, str] = {}
        red = [None if v is None else cache.setdefault(v, pseudo.raw_text(v)) for v in values]
        tbl = tbl.set_column(tbl.schema.get_field_index(col), col, pa.array(red, pa.string()))
    return tbl


def _read_keys(store: Store, data_dir: Path, table: str, keys: list[str]) -> pa.Table:
    schema = TABLES[table].schema
    tables = []
    for key in keys:
        local = cache_root(data_dir) / key
        info = store.info(key)
        if info is None:
            raise FileNotFoundError(f"{store.url}/{key} vanished during maintenance")
        if not (local.exists() and local.stat().st_size == info.size):
            store.get_file(key, local)
        tables.append(pq.read_table(local).select(schema.names).cast(schema))
    return pa.concat_tables(tables)


def _rewrite_store(
    store: Store, data_dir: Path, part: str, keys: list[str], table: pa.Table, prefix: str
) -> int:
    """`_rewrite` on store keys: journal, write and upload the output, then delete the inputs."""
    digest = hashlib.sha256("\n".join(sorted(k.rsplit("/", 1)[1] for k in keys)).encode()).hexdigest()[:16]
    out = f"{part}/{prefix}{digest}.parquet"
    jdir = _journal_dir(data_dir)
    jdir.mkdir(parents=True, exist_ok=True)
    table_name, day = part.split("/")[1:3]
    journal = jdir / f"{table_name}-{day}-{digest}.json"
    journal.write_text(json.dumps({"store": store.url, "output": out, "inputs": keys}))
    _fsync_dir(jdir)
    local = cache_root(data_dir) / out
    local.parent.mkdir(parents=True, exist_ok=True)
    _write(table, local)
    store.put_file(local, out)
    return _finish_store(journal, store, data_dir)


def _maintain_store(
    settings: Settings, store: Store, today: date, grace_days: int, report: MaintenanceReport
) -> MaintenanceReport:
    data_dir = settings.data_dir
    pseudo: Pseudonymizer | None = None
    for table in TABLES:
        parts: dict[str, list[str]] = {}
        for obj in store.list(f"{RAW_PREFIX}/{table}"):
            pieces = obj.key.split("/")
            if len(pieces) == 4 and pieces[2].startswith("date=") and pieces[3].endswith(".parquet"):
                parts.setdefault("/".join(pieces[:3]), []).append(obj.key)
        for part, keys in sorted(parts.items()):
            try:
                day = date.fromisoformat(part.rsplit("date=", 1)[1])
            except ValueError:
                continue
            if day > today - timedelta(days=grace_days):
                continue
            keys.sort()
            names = [k.rsplit("/", 1)[1] for k in keys]
            if table in PERSONAL_COLUMNS and day <= today - timedelta(days=settings.raw_retention_days):
                if all(n.startswith(REDACTED_PREFIX) for n in names):
                    continue
                pseudo = pseudo or Pseudonymizer(load_master_key(settings))
                tbl = _redacted(_read_keys(store, data_dir, table, keys), table, pseudo)
                _rewrite_store(store, data_dir, part, keys, _sorted(tbl), REDACTED_PREFIX)
                report.redacted_partitions += 1
                continue
            if len(keys) <= 1:
                continue
            tbl = _read_keys(store, data_dir, table, keys)
            removed = _rewrite_store(store, data_dir, part, keys, _sorted(tbl), COMPACTED_PREFIX)
            if removed:
                report.compacted_partitions += 1
                report.files_removed += removed
    log.info("raw maintenance", extra=fields(store=store.url, **report.__dict__))
    return report


def maintain_raw(settings: Settings, today: date, grace_days: int = 2) -> MaintenanceReport:
    """Compact every receipt date older than `grace_days`; redact personal data past retention."""
    data_dir = settings.data_dir
    store = store_for(settings)
    if store.is_remote:
        return _maintain_store(
            settings, store, today, grace_days, MaintenanceReport(files_removed=recover(data_dir, store))
        )
    report = MaintenanceReport(files_removed=recover(data_dir))
    pseudo: Pseudonymizer | None = None
    for table in TABLES:
        base = data_dir / "raw" / table
        if not base.is_dir():
            continue
        for part in sorted(base.glob("date=*")):
            try:
                day = date.fromisoformat(part.name[5:])
            except ValueError:
                continue
            if day > today - timedelta(days=grace_days):
                continue
            if table in PERSONAL_COLUMNS and day <= today - timedelta(days=settings.raw_retention_days):
                if pseudo is None:
                    pseudo = Pseudonymizer(load_master_key(settings))
                if redact_partition(data_dir, table, part, pseudo):
                    report.redacted_partitions += 1
                continue
            removed = compact_partition(data_dir, table, part)
            if removed:
                report.compacted_partitions += 1
                report.files_removed += removed
    log.info("raw maintenance", extra=fields(**report.__dict__))
    return report
