"""Deterministic, atomic Parquet files for the private work zone and the published releases.

Same rows in → same bytes out: rows are sorted by fixed keys, writer settings are fixed, and no
wall-clock or library-version metadata is written (pyarrow's `created_by` is stable per version).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ocpp_opendata.objectstore import Store, StoreError

MAX_ROW_GROUP = 128 * 1024
WORK_DIRNAME = "work"


def write_parquet(table: pa.Table, path: Path, sort_keys: tuple[str, ...] = ()) -> int:
    """Write atomically (temp name, fsync, rename); returns the file size."""
    if sort_keys and table.num_rows:
        table = table.sort_by([(k, "ascending") for k in sort_keys])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        compression_level=3,
        row_group_size=MAX_ROW_GROUP,
        write_statistics=True,
        write_page_index=True,
        use_dictionary=True,
        data_page_version="2.0",
    )
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path.stat().st_size


def work_path(data_dir: Path, name: str, day: date) -> Path:
    return data_dir / WORK_DIRNAME / name / f"date={day.isoformat()}" / "part-0.parquet"


def work_dates(data_dir: Path, name: str) -> list[date]:
    base = data_dir / WORK_DIRNAME / name
    if not base.is_dir():
        return []
    return sorted(
        date.fromisoformat(p.name[5:]) for p in base.glob("date=*") if (p / "part-0.parquet").exists()
    )


def read_work(data_dir: Path, name: str, days: list[date] | None = None) -> pa.Table | None:
    chosen = work_dates(data_dir, name) if days is None else days
    tables = [
        pq.read_table(work_path(data_dir, name, d)) for d in chosen if work_path(data_dir, name, d).exists()
    ]
    if not tables:
        return None
    return pa.concat_tables(tables)


# --- The shared store (ocpp_opendata.objectstore): raw files in, releases out -------------------------
#
# With a remote store, DATA_DIR keeps local copies of what DuckDB must read: raw files under
# DATA_DIR/cache/raw/<table>/date=D/<name> (the store's key below the cache root) and, on the API's side,
# releases under DATA_DIR/cache/releases/<id>. Releases are built in DATA_DIR/published as with a local
# store, then uploaded; `published/CURRENT` (one small object holding the release id) is the switch.

CACHE_DIRNAME = "cache"
RAW_PREFIX = "raw"
CURRENT_KEY = "published/CURRENT"
RELEASES_PREFIX = "published/releases"


def cache_root(data_dir: Path) -> Path:
    return data_dir / CACHE_DIRNAME


def is_missing(exc: StoreError) -> bool:
    """True when the store answered that the key does not exist (not that it could not be reached)."""
    return isinstance(exc.__cause__, FileNotFoundError)


def read_current(store: Store) -> str | None:
    """The release id `published/CURRENT` names; None when nothing was published. StoreError when down."""
    try:
        text = store.read_bytes(CURRENT_KEY).decode("ascii", "replace").strip()
    except StoreError as exc:
        if is_missing(exc):
            return None
        raise
    return text or None


def release_prefix(release_id: str) -> str:
    return f"{RELEASES_PREFIX}/{release_id}"


def stored_release_ids(store: Store, complete_marker: str) -> list[str]:
    """Release ids in the store whose `complete_marker` (uploaded last) is there, oldest first."""
    ids = set()
    for obj in store.list(RELEASES_PREFIX):
        parts = obj.key.split("/")
        if len(parts) == 4 and parts[3] == complete_marker:
            ids.add(parts[2])
    return sorted(ids)


def upload_release(store: Store, release: Path, last: str) -> int:
    """Upload every file of a local release folder to `published/releases/<id>/`, `last` at the end (its
    presence marks a complete upload), each confirmed by its size in the store. Returns bytes uploaded."""
    files = sorted(p for p in release.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name == last)
    total = 0
    for path in files:
        key = f"{release_prefix(release.name)}/{path.relative_to(release).as_posix()}"
        size = path.stat().st_size
        store.put_file(path, key)
        got = store.info(key)
        if got is None or got.size != size:
            raise StoreError(f"upload of {key} not confirmed: {size} bytes sent, store has {got}")
        total += size
    return total


def switch_store_current(store: Store, release_id: str) -> None:
    """Point `published/CURRENT` at a release: one small PUT, which S3 makes visible whole or not at all."""
    store.write_bytes(CURRENT_KEY, (release_id + "\n").encode("ascii"))


def prune_store_releases(store: Store, keep: int, current: str, complete_marker: str) -> list[str]:
    """Delete releases beyond the newest `keep` complete ones (never the current one), and leftovers of
    uploads that never completed (older than the current release)."""
    complete = stored_release_ids(store, complete_marker)
    kept = set(complete[-keep:]) | {current} if keep > 0 else {current}
    every = sorted({obj.key.split("/")[2] for obj in store.list(RELEASES_PREFIX) if obj.key.count("/") >= 3})
    removed = []
    for rid in every:
        if rid in kept or (rid not in complete and rid > current):
            continue
        store.delete_prefix(release_prefix(rid))
        removed.append(rid)
    return removed
