"""Which release the API serves: the current one (hot-swapped when `published/current` moves) and kept ones.

A `Release` owns one read-only DuckDB instance over its `catalog.duckdb` for the API's own queries; the
SQL endpoint gets a second, locked-down instance (see `sql_guard`). Requests hold a lease on the release
they started with, so a swap never pulls a release from under a running request: the retired release is
closed when its last lease ends, and a request never sees half of one release and half of another.

With a remote store (`store` = s3://...), the manager polls the `published/CURRENT` object instead of the
`published/current` link, downloads the new release's catalog.duckdb and metadata into
DATA_DIR/cache/releases/<id> (datapackage.json last: a folder holding it is complete), and swaps exactly
as above. Parquet downloads are streamed from the store (`RemoteFiles`); cached releases no longer open
are removed after each swap. A store that cannot be reached keeps the release being served.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb
import orjson

from api.catalog import DatasetStats, dataset_stats
from api.errors import ApiError
from api.ranges import StoreFile
from api.sql_guard import SqlLimits
from api.sql_pool import SqlEngine, SqlPool
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import Store, StoreError
from pipelines.published_schema import (
    CATALOG_FILENAME,
    CURRENT_LINK,
    DATAPACKAGE_FILENAME,
    DATASETS,
    DCAT_FILENAME,
    MANIFEST_FILENAME,
    PUBLISHED_DIRNAME,
    RELEASE_ID_PATTERN,
    RELEASES_DIRNAME,
    Dataset,
)
from pipelines.storage import CACHE_DIRNAME, read_current, release_prefix, stored_release_ids

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Europe/Stockholm"
PINNED_OPEN_MAX = 4
# More than the thread pool runs at once is never needed; a few spare ones cost only memory.
CURSOR_POOL_MAX = 64


class ReleaseUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "no release has been published yet", {"Retry-After": "30"})


def _read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


# What the API reads locally of a remote release; datapackage.json comes last and marks it complete.
CACHED_FILES = (CATALOG_FILENAME, MANIFEST_FILENAME, DCAT_FILENAME, DATAPACKAGE_FILENAME)
# Kept releases in a remote store are listed at most this often (a LIST request each time).
LISTING_TTL_SECONDS = 5.0


class StoreUnavailable(ApiError):
    def __init__(self) -> None:
        super().__init__(503, "the file store cannot be reached right now; try again", {"Retry-After": "5"})


@dataclass(frozen=True)
class RemoteFiles:
    """The files of a release in the shared store: their sizes and sha256 from the release's manifest."""

    store: Store
    prefix: str
    files: dict[str, tuple[int, str]]
    created: float

    @classmethod
    def of(cls, store: Store, release_id: str, manifest: dict[str, Any]) -> RemoteFiles:
        files: dict[str, tuple[int, str]] = {}
        for entry in manifest.get("datasets", {}).values():
            for f in [*entry.get("files", []), entry.get("download") or {}]:
                if f.get("path") and f.get("hash"):
                    files[f["path"]] = (int(f["bytes"]), str(f["hash"]))
        try:
            created = datetime.fromisoformat(str(manifest.get("created_at"))).timestamp()
        except ValueError:
            created = 0.0
        return cls(store, release_prefix(release_id), files, created)

    def has(self, relative: PurePosixPath) -> bool:
        return str(relative) in self.files

    def open(self, relative: PurePosixPath, missing: str) -> StoreFile:
        """The object, opened for ranged reads: 404 when the release has no such file, 503 when the store
        cannot be reached. Its content never changes, so its sha256 is a strong ETag."""
        found = self.files.get(str(relative))
        if found is None:
            raise ApiError(404, missing)
        size, digest = found
        try:
            source = self.store.open_input_file(f"{self.prefix}/{relative}")
        except StoreError as exc:
            log.warning("store read failed", extra=fields(key=str(relative), error=str(exc)[:300]))
            raise StoreUnavailable() from exc
        return StoreFile(source, size, self.created, f'"{digest.split(":", 1)[-1]}"')


@dataclass(eq=False)
class Release:
    """One immutable published release, opened for serving."""

    id: str
    root: Path
    datapackage: dict[str, Any]
    manifest: dict[str, Any]
    dcat: Any
    db: duckdb.DuckDBPyConnection
    datasets: dict[str, Dataset]
    sql: SqlEngine
    timezone: str
    stats: dict[str, DatasetStats]
    # Set when the release's files are served from a remote store rather than from `root`.
    remote: RemoteFiles | None = None
    on_close: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cursors: list[duckdb.DuckDBPyConnection] = field(default_factory=list)
    _leases: int = 0
    _retired: bool = False
    _closed: bool = False

    @classmethod
    def open(
        cls,
        root: Path,
        limits: SqlLimits,
        default_timezone: str = DEFAULT_TIMEZONE,
        sql_pool: SqlPool | None = None,
    ) -> Release:
        root = root.resolve(strict=True)
        catalog = root / CATALOG_FILENAME
        datapackage = _read_json(root / DATAPACKAGE_FILENAME)
        manifest = _read_json(root / MANIFEST_FILENAME)
        dcat = _read_json(root / DCAT_FILENAME)
        # One thread per query: answers are small and many run at once, so parallelism comes from
        # concurrent requests; intra-query threads only add scheduling (measured: +7 % req/s, lower p99).
        db = duckdb.connect(
            str(catalog),
            read_only=True,
            config={"threads": "1", "autoinstall_known_extensions": "false"},
        )
        try:
            tables = {r[0] for r in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            # duckdb.connect shares one instance per file, so a release opened twice is locked already.
            if not db.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:  # type: ignore[index]
                db.execute("SET TimeZone = 'UTC'")
                db.execute("SET autoload_known_extensions = false")
                # Late materialization turns `SELECT * ... LIMIT n` into a scan, a semi-join on rowid and a
                # sort: up to 3x slower for the pages the API serves; top-N pages measured the same without.
                db.execute("SET disabled_optimizers = 'late_materialization'")
                # The API's own queries never need a file: keep this instance away from the disk too.
                db.execute("SET enable_external_access = false")
                db.execute("SET lock_configuration = true")
            datasets = {name: d for name, d in DATASETS.items() if name in tables}
            stats = {name: dataset_stats(db, d) for name, d in datasets.items()}
            sql = SqlEngine(catalog, limits, sql_pool)
        except Exception:
            db.close()
            raise
        timezone = str(datapackage.get("timezone") or manifest.get("timezone") or default_timezone)
        return cls(root.name, root, datapackage, manifest, dcat, db, datasets, sql, timezone, stats)

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection of this release for one request, taken from a pool and put back after.

        A fresh connection costs little to make but its first statement pays for setting up a client
        context (~0.1 ms, a tenth of a 100-row answer). A connection is used by one thread at a time, and
        every caller reads its result completely inside the block, so none inherits another's result.
        """
        try:
            cur = self._cursors.pop()  # list.pop and append are atomic: no lock needed
        except IndexError:
            cur = self.db.cursor()
        try:
            yield cur
        finally:
            if len(self._cursors) < CURSOR_POOL_MAX and not self._closed:
                self._cursors.append(cur)
            else:
                cur.close()

    def dataset(self, name: str) -> Dataset:
        found = self.datasets.get(name)
        if found is None:
            raise ApiError(404, f"no dataset named {name[:80]!r}; see /v1/datasets for the catalogue")
        return found

    def resource(self, name: str) -> dict[str, Any]:
        for res in self.datapackage.get("resources", []):
            if res.get("name") == name:
                return res
        return {}

    def acquire(self) -> None:
        with self._lock:
            self._leases += 1

    def release(self) -> None:
        with self._lock:
            self._leases -= 1
            close = self._retired and self._leases == 0
        if close:
            self._close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            close = self._leases == 0
        if close:
            self._close()

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        while self._cursors:
            self._cursors.pop().close()
        self.db.close()
        self.sql.close()
        if self.on_close is not None:
            self.on_close()
        log.info("release closed", extra=fields(release=self.id))


class ReleaseManager:
    """Serves `published/current`, polling the link so that a new release is picked up within seconds."""

    def __init__(
        self,
        data_dir: Path,
        limits: SqlLimits,
        poll_seconds: float = 0.5,
        timezone: str = DEFAULT_TIMEZONE,
        store: Store | None = None,
    ) -> None:
        self.timezone = timezone
        # A local store other than DATA_DIR holds the releases itself; a remote one is cached under DATA_DIR.
        self.store = store if store is not None and store.is_remote else None
        base = store.local_root if store is not None and store.local_root is not None else data_dir
        self.published = base / PUBLISHED_DIRNAME
        self.releases_dir = self.published / RELEASES_DIRNAME
        if self.store is not None:
            self.releases_dir = data_dir / CACHE_DIRNAME / RELEASES_DIRNAME
        self._open_ids: dict[str, int] = {}
        self._cache_lock = threading.Lock()
        self._listing: tuple[float, list[str]] = (0.0, [])
        self._store_down = False
        self.limits = limits
        # One pool of SQL worker processes for every release this manager opens.
        self.sql_pool = SqlPool(limits)
        self.poll_seconds = poll_seconds
        self._lock = threading.Lock()
        self._current: Release | None = None
        self._target: str | None = None
        self._pinned: OrderedDict[str, Release] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    @property
    def current_id(self) -> str | None:
        cur = self._current
        return cur.id if cur is not None else None

    def start(self) -> None:
        self.sql_pool.start()
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="release-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            releases = [r for r in (self._current, *self._pinned.values()) if r is not None]
            self._current = None
            self._pinned.clear()
        for rel in releases:
            rel.retire()
        self.sql_pool.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the watcher must outlive any one bad release
                log.exception("release watcher failed")

    def _link_target(self) -> str | None:
        if self.store is not None:
            return self._store_target(self.store)
        try:
            return os.readlink(self.published / CURRENT_LINK)
        except OSError:
            return None

    def _store_target(self, store: Store) -> str | None:
        """The id in `published/CURRENT`; while the store is down, the one served now (logged once)."""
        try:
            found = read_current(store)
        except StoreError as exc:
            if not self._store_down:
                log.warning(
                    "store unreachable; serving the cached release", extra=fields(error=str(exc)[:300])
                )
            self._store_down = True
            return self._target
        if self._store_down:
            log.info("store reachable again", extra=fields(store=store.url))
        self._store_down = False
        return found

    def _open(self, release_id: str) -> Release:
        """Open a release: in place for a local store; from the cache (downloaded first) for a remote one."""
        if self.store is None:
            return Release.open(self.releases_dir / release_id, self.limits, self.timezone, self.sql_pool)
        with self._cache_lock:
            root = self._fetch(self.store, release_id)
            rel = Release.open(root, self.limits, self.timezone, self.sql_pool)
            with self._lock:
                self._open_ids[release_id] = self._open_ids.get(release_id, 0) + 1
        rel.remote = RemoteFiles.of(self.store, release_id, rel.manifest)
        rel.on_close = lambda: self._closed(release_id)
        return rel

    def _closed(self, release_id: str) -> None:
        """A cached release closed: its folder goes unless it is open again or served (a later sweep
        catches any that a race leaves)."""
        with self._lock:
            left = self._open_ids.get(release_id, 0) - 1
            if left > 0:
                self._open_ids[release_id] = left
                return
            self._open_ids.pop(release_id, None)
        with self._cache_lock:
            with self._lock:
                if release_id in self._open_ids or release_id == self._target:
                    return
            shutil.rmtree(self.releases_dir / release_id, ignore_errors=True)
            log.info("cached release removed", extra=fields(release=release_id))

    def _fetch(self, store: Store, release_id: str) -> Path:
        """Download what the API reads of a release into the cache (datapackage.json last), once."""
        root = self.releases_dir / release_id
        if (root / DATAPACKAGE_FILENAME).is_file():
            return root
        try:
            for name in CACHED_FILES:
                store.get_file(f"{release_prefix(release_id)}/{name}", root / name)
        except StoreError as exc:
            raise OSError(f"cannot download release {release_id}: {exc}") from exc
        log.info("release downloaded", extra=fields(release=release_id, store=store.url))
        return root

    def _sweep(self) -> None:
        """Remove cached releases that are neither served nor open any more (a retired release that still
        has requests stays until a later sweep)."""
        if self.store is None:
            return
        with self._cache_lock:
            with self._lock:
                keep = set(self._open_ids)
            try:
                names = os.listdir(self.releases_dir)
            except OSError:
                return
            for name in names:
                if name not in keep:
                    shutil.rmtree(self.releases_dir / name, ignore_errors=True)
                    log.info("cached release removed", extra=fields(release=name))

    def refresh(self) -> bool:
        """Open the release `current` points at when it changed; True when a new one is now served."""
        target = self._link_target()
        if target is None or target == self._target:
            return False
        release_id = Path(target).name
        if not RELEASE_ID_PATTERN.match(release_id):
            log.error("current does not point at a release", extra=fields(target=release_id))
            self._target = target
            return False
        try:
            new = self._open(release_id)
        except (OSError, ValueError, duckdb.Error):
            # Leave the previous release online; the next poll tries again.
            log.exception("cannot open release", extra=fields(release=release_id))
            return False
        with self._lock:
            old, self._current, self._target = self._current, new, target
            self.swaps += 1
        if old is not None:
            old.retire()
        self._listing = (0.0, [])
        self._sweep()
        log.info("serving release", extra=fields(release=new.id))
        return True

    @contextmanager
    def lease(self, release_id: str | None = None) -> Iterator[Release]:
        rel = self.acquire(release_id)
        try:
            yield rel
        finally:
            rel.release()

    def acquire(self, release_id: str | None = None) -> Release:
        """The current release (or the kept release `release_id`), leased: call `.release()` after use."""
        rel = self.acquire_open(release_id)
        return rel if rel is not None else self._open_pinned(release_id)  # type: ignore[arg-type]

    def acquire_open(self, release_id: str | None = None) -> Release | None:
        """Like `acquire`, but None instead of opening a kept release (which reads files): never blocks."""
        with self._lock:
            cur = self._current
            if release_id is None or (cur is not None and cur.id == release_id):
                if cur is None:
                    raise ReleaseUnavailable()
                cur.acquire()
                return cur
            pinned = self._pinned.get(release_id)
            if pinned is not None:
                self._pinned.move_to_end(release_id)
                pinned.acquire()
                return pinned
        return None

    def _open_pinned(self, release_id: str) -> Release:
        if not RELEASE_ID_PATTERN.match(release_id) or release_id not in self.release_ids():
            raise ApiError(404, f"no kept release named {release_id[:40]!r}; see /v1/releases")
        try:
            rel = self._open(release_id)
        except (OSError, ValueError, duckdb.Error) as exc:
            raise ApiError(404, f"release {release_id} is no longer complete on this server") from exc
        evicted: list[Release] = []
        with self._lock:
            existing = self._pinned.get(release_id)
            if existing is not None:  # another request opened it meanwhile
                evicted.append(rel)
                rel = existing
            else:
                self._pinned[release_id] = rel
                while len(self._pinned) > PINNED_OPEN_MAX:
                    evicted.append(self._pinned.popitem(last=False)[1])
            rel.acquire()
        for old in evicted:
            old.retire()
        return rel

    def release_ids(self) -> list[str]:
        """Kept, complete releases, newest first."""
        if self.store is not None:
            return self._stored_ids(self.store)
        try:
            names = os.listdir(self.releases_dir)
        except OSError:
            return []
        kept = [
            n
            for n in names
            if RELEASE_ID_PATTERN.match(n) and (self.releases_dir / n / DATAPACKAGE_FILENAME).is_file()
        ]
        return sorted(kept, reverse=True)

    def _stored_ids(self, store: Store) -> list[str]:
        """Complete releases in the store, newest first (listed at most every LISTING_TTL_SECONDS; while
        the store is down, the last listing, or the release served)."""
        listed_at, ids = self._listing
        if time.monotonic() - listed_at < LISTING_TTL_SECONDS and ids:
            return ids
        try:
            found = stored_release_ids(store, DATAPACKAGE_FILENAME)
        except StoreError:
            return ids or ([self.current_id] if self.current_id else [])
        ids = sorted((n for n in found if RELEASE_ID_PATTERN.match(n)), reverse=True)
        self._listing = (time.monotonic(), ids)
        return ids

    def _manifest(self, release_id: str) -> dict[str, Any]:
        if self.store is None:
            return _read_json(self.releases_dir / release_id / MANIFEST_FILENAME)  # type: ignore[no-any-return]
        with self._lock:
            opened = [
                r for r in (self._current, *self._pinned.values()) if r is not None and r.id == release_id
            ]
        if opened:
            return opened[0].manifest
        try:
            return orjson.loads(self.store.read_bytes(f"{release_prefix(release_id)}/{MANIFEST_FILENAME}"))  # type: ignore[no-any-return]
        except StoreError as exc:
            raise OSError(str(exc)) from exc

    def release_summary(self, release_id: str) -> dict[str, Any]:
        try:
            manifest = self._manifest(release_id)
        except (OSError, ValueError):
            manifest = {}
        return {
            "id": release_id,
            "created_at": manifest.get("created_at"),
            "previous_release_id": manifest.get("previous_release_id", manifest.get("previous_release")),
            "current": release_id == self.current_id,
        }
