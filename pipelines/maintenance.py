"""Raw-zone upkeep: compaction of closed receipt dates and the raw retention of personal data.

Compaction: the listener rolls a small file every <= 60 s, so a receipt date holds ~1,440 files per
table. Once a date is closed (older than `grace_days`), its files are rewritten as one file
`compacted-<digest>.parquet` (rows sorted, row groups <= 128k) and the inputs removed. Exactly once:
a journal under DATA_DIR/state/pipeline/compaction names the inputs and the output before anything
changes; a run interrupted anywhere is finished (or rolled back) by the next one, so no row is ever
lost or doubled.

Retention: after `raw_retention_days`, raw idTags (transaction_events.id_tag, id_token_extra) and
frame texts (frames.text, quarantine.text) are replaced by keyed pseudonyms in place (same journal).
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
from ocpp_opendata.settings import Settings
from pipelines.privacy import Pseudonymizer, load_master_key
from pipelines.storage import MAX_ROW_GROUP

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


def recover(data_dir: Path) -> int:
    jdir = _journal_dir(data_dir)
    if not jdir.is_dir():
        return 0
    return sum(_finish(j) for j in sorted(jdir.glob("*.json")))


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
    for col in PERSONAL_COLUMNS[table]:
        values = tbl[col].to_pylist()
        cache: dict[str, str] = {}
        red = [None if v is None else cache.setdefault(v, pseudo.raw_text(v)) for v in values]
        tbl = tbl.set_column(tbl.schema.get_field_index(col), col, pa.array(red, pa.string()))
    _rewrite(data_dir, part, files, _sorted(tbl), REDACTED_PREFIX)
    return True


def maintain_raw(settings: Settings, today: date, grace_days: int = 2) -> MaintenanceReport:
    """Compact every receipt date older than `grace_days`; redact personal data past retention."""
    data_dir = settings.data_dir
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
