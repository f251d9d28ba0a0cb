"""An index of every raw Parquet file's event-time range, so partition D reads only what overlaps it.

Raw files are partitioned by *receipt* date; an offline charger's replayed queue or a backfill puts
old events into new files. The index records, per file, the range of corrected event times (see
`raw_reader.event_time_sql`), so late data re-materializes exactly the dates it touches.

The raw zone is DATA_DIR/raw, or the `raw/` keys of the shared store (`store` setting). A remote store is
listed, and the files a step reads are fetched into DATA_DIR/cache/raw (DuckDB here cannot read S3): raw
files are immutable, so a cached copy of the listed size is the object. The index then records the cached
paths; a file is fetched again if the cache lost it, and copies unused for `CACHE_IDLE_SECONDS` or whose
object is gone (compacted) are removed.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import TABLES
from ocpp_opendata.objectstore import Store, store_for
from pipelines.raw_reader import clock_corrected_sql, event_time_sql
from pipelines.seen_tags import TAG_TABLES, tags_of_files
from pipelines.storage import RAW_PREFIX, cache_root
from pipelines.transforms.clock import (
    REPLAY_LAG_S,
    ClockRule,
    ConnectionOffset,
    ConnectionStats,
    chunk_stats_sql,
    estimate_offsets,
    register_offsets,
)

INDEX_FILENAME = "raw_index.sqlite"
# Tables whose rows carry the charger's own event time and feed the datasets.
EVENT_TABLES = ("status_notifications", "transaction_events", "meter_values")
# Small tables whose per-connection event spans tell a replay from real time (availability).
SPAN_TABLES = ("status_notifications", "transaction_events")
CLOCK_TABLES = frozenset(t.name for t in TABLES.values() if "timestamp" in t.column_names)
# Cached copies of remote raw files unused this long are removed (a day's runs reuse them meanwhile;
# runs touch what they read, so a copy in use is never idle).
CACHE_IDLE_SECONDS = 24 * 3600
_PRUNE_EVERY_SECONDS = 600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    tbl TEXT NOT NULL,
    receipt_date TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    min_event_us INTEGER,
    max_event_us INTEGER,
    min_received_us INTEGER,
    max_received_us INTEGER,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_range ON files (tbl, min_event_us, max_event_us);
CREATE TABLE IF NOT EXISTS conn_spans (
    path TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    charge_point_id TEXT NOT NULL,
    rows INTEGER NOT NULL,
    min_event_us INTEGER NOT NULL,
    max_event_us INTEGER NOT NULL,
    min_lag_s REAL NOT NULL,
    PRIMARY KEY (path, connection_id)
);
CREATE TABLE IF NOT EXISTS tags (path TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (path, tag));
"""
# Per file and connection, the facts a charger's clock offset is estimated from (transforms/clock.py).
_CLOCK_SCHEMA = """
CREATE TABLE IF NOT EXISTS clock_stats (
    path TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    charge_point_id TEXT NOT NULL,
    live_n INTEGER NOT NULL,
    live_median_s REAL,
    live_q25_s REAL,
    live_q75_s REAL,
    first_received_us INTEGER NOT NULL,
    first_d_s REAL NOT NULL,
    PRIMARY KEY (path, connection_id)
);
CREATE TABLE IF NOT EXISTS clock_backlog (path TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class IndexedFile:
    path: Path
    table: str
    receipt_date: str
    rows: int
    min_event: datetime | None
    max_event: datetime | None


def _us(ts: datetime | None) -> int | None:
    return None if ts is None else int(ts.timestamp() * 1_000_000)


def _ts(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, UTC)


class RawIndex:
    """SQLite file under DATA_DIR/state/pipeline; safe for one writer at a time (sensor or run)."""

    def __init__(
        self,
        data_dir: Path,
        clock_skew_minutes: float = 5.0,
        store: Store | None = None,
        clock_rule: ClockRule | None = None,
    ) -> None:
        # A remote store's files are read from their cached copies; a local one's where they are.
        self.store = store if store is not None and store.is_remote else None
        self.cache = cache_root(data_dir)
        if self.store is not None:
            self.raw_root = self.cache / RAW_PREFIX
        else:
            self.raw_root = (store.local_root if store is not None else data_dir) / RAW_PREFIX  # type: ignore[operator]
        self.path = data_dir / "state" / "pipeline" / INDEX_FILENAME
        self.skew = clock_skew_minutes
        self.clock_rule = clock_rule or ClockRule()
        self._offsets: tuple[float, dict[str, ConnectionOffset]] | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)
            had_clock = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'clock_stats'"
            ).fetchone()[0]
            db.executescript(_CLOCK_SCHEMA)
            if not had_clock:
                # An index from before clock offsets: its span-table files still need their clock
                # facts (gathered by the next refresh, without counting them as new data).
                marks = ",".join("?" * len(SPAN_TABLES))
                db.execute(
                    f"INSERT OR IGNORE INTO clock_backlog SELECT path FROM files WHERE tbl IN ({marks})",
                    SPAN_TABLES,
                )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    @classmethod
    def of(cls, settings: Any) -> RawIndex:
        """The index of the raw zone the settings name (DATA_DIR/raw or the shared store's)."""
        store = store_for(settings) if settings.store else None
        rule = ClockRule(
            min_offset_s=float(settings.clock_offset_min_seconds),
            max_spread_s=float(settings.clock_offset_max_spread_seconds),
        )
        return cls(settings.data_dir, settings.clock_skew_minutes, store, rule)

    def _listing(self) -> dict[str, tuple[str, str, int, int]]:
        if self.store is not None:
            return self._store_listing(self.store)
        found: dict[str, tuple[str, str, int, int]] = {}
        for table in TABLES:
            base = self.raw_root / table
            if not base.is_dir():
                continue
            for part in base.glob("date=*"):
                for f in part.glob("*.parquet"):
                    if f.name.startswith("."):
                        continue  # a writer's temporary file
                    st = f.stat()
                    found[str(f)] = (table, part.name[5:], st.st_size, st.st_mtime_ns)
        return found

    def _store_listing(self, store: Store) -> dict[str, tuple[str, str, int, int]]:
        found: dict[str, tuple[str, str, int, int]] = {}
        for obj in store.list(RAW_PREFIX):
            parts = obj.key.split("/")
            if len(parts) != 4 or parts[1] not in TABLES or not parts[2].startswith("date="):
                continue
            if parts[3].startswith(".") or not parts[3].endswith(".parquet"):
                continue
            found[str(self.cache / obj.key)] = (parts[1], parts[2][5:], obj.size, obj.mtime_ns)
        return found

    def refresh(self) -> list[IndexedFile]:
        """Index new or changed raw files (and forget deleted ones); returns the newly indexed files."""
        listing = self._listing()
        with self._db() as db:
            known = {row[0]: (row[1], row[2]) for row in db.execute("SELECT path, size, mtime_ns FROM files")}
            gone = [p for p in known if p not in listing]
            db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
            db.executemany("DELETE FROM conn_spans WHERE path = ?", [(p,) for p in gone])
            db.executemany("DELETE FROM tags WHERE path = ?", [(p,) for p in gone])
            db.executemany("DELETE FROM clock_stats WHERE path = ?", [(p,) for p in gone])
            db.executemany("DELETE FROM clock_backlog WHERE path = ?", [(p,) for p in gone])
        todo: dict[str, list[str]] = {}
        for path, (table, _day, size, mtime) in listing.items():
            if known.get(path) != (size, mtime):
                todo.setdefault(table, []).append(path)
        if self.store is not None:
            for p in gone:
                Path(p).unlink(missing_ok=True)
            self._fetch([(p, listing[p][2]) for paths in todo.values() for p in paths])
            self._prune_cache()
        added: list[IndexedFile] = []
        for table, paths in todo.items():
            added.extend(self._index_files(table, paths, listing))
        self._gather_clock_backlog(listing)
        self._offsets = None  # estimated again from what is indexed now
        return added

    def _gather_clock_backlog(self, listing: dict[str, tuple[str, str, int, int]]) -> None:
        """Clock facts of files indexed before the index kept them (see __init__)."""
        with self._db() as db:
            backlog = [r[0] for r in db.execute("SELECT path FROM clock_backlog")]
        if not backlog:
            return
        present = [p for p in backlog if p in listing]
        self._fetch([(p, listing[p][2]) for p in present])
        con = duckdb.connect()
        try:
            clocks = self._clock_stats(con, present) if present else []
        finally:
            con.close()
        with self._db() as db:
            db.executemany("DELETE FROM clock_stats WHERE path = ?", [(p,) for p in present])
            db.executemany("INSERT OR REPLACE INTO clock_stats VALUES (?,?,?,?,?,?,?,?,?)", clocks)
            db.executemany("DELETE FROM clock_backlog WHERE path = ?", [(p,) for p in backlog])

    def _fetch(self, files: list[tuple[str, int]]) -> None:
        """Make sure each remote file has a full local copy, and mark it used (its mtime) for the pruning."""
        if self.store is None:
            return
        for path, size in files:
            local = Path(path)
            try:
                fresh = local.stat().st_size == size
            except FileNotFoundError:
                fresh = False
            if fresh:
                os.utime(local)
            else:
                self.store.get_file(local.relative_to(self.cache).as_posix(), local)

    def _prune_cache(self) -> None:
        """Remove cached raw copies idle for CACHE_IDLE_SECONDS (checked at most every ten minutes)."""
        mark = self.cache / ".raw-pruned"
        now = time.time()
        try:
            if now - mark.stat().st_mtime < _PRUNE_EVERY_SECONDS:
                return
        except FileNotFoundError:
            pass
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
        for f in self.raw_root.glob("*/date=*/*"):
            try:
                if now - f.stat().st_mtime > CACHE_IDLE_SECONDS:
                    f.unlink()
            except FileNotFoundError:
                continue

    def _local(self, rows: list[tuple[str, int]]) -> list[Path]:
        """The paths of indexed files, fetched into the cache first for a remote store."""
        self._fetch(rows)
        return [Path(r[0]) for r in rows]

    def _index_files(
        self, table: str, paths: list[str], listing: dict[str, tuple[str, str, int, int]]
    ) -> list[IndexedFile]:
        ev = event_time_sql(table, self.skew)
        con = duckdb.connect()
        out: list[IndexedFile] = []
        rows_by_path: dict[str, tuple[int, datetime | None, datetime | None, datetime, datetime]] = {}
        slow: list[str] = []
        for p in paths:
            facts = self._from_statistics(p, table)
            if facts is None:
                slow.append(p)
            else:
                rows_by_path[p] = facts
        for i in range(0, len(slow), 500):
            chunk = slow[i : i + 500]
            query = f"""
                SELECT filename, count(*), min({ev}), max({ev}), min(received_at), max(received_at)
                FROM read_parquet($files, filename = true, union_by_name = true)
                GROUP BY filename
            """
            for fn, n, lo, hi, rlo, rhi in con.execute(query, {"files": chunk}).fetchall():
                rows_by_path[fn] = (n, lo, hi, rlo, rhi)
        spans = self._connection_spans(con, table, paths) if table in SPAN_TABLES else []
        clocks = self._clock_stats(con, paths) if table in SPAN_TABLES else []
        tags = []
        if table in TAG_TABLES:
            for i in range(0, len(paths), 500):
                tags.extend(tags_of_files(con, table, paths[i : i + 500]))
        con.close()
        now = time.time()
        records = []
        for p in paths:
            _table, day, size, mtime = listing[p]
            n, lo, hi, rlo, rhi = rows_by_path.get(p, (0, None, None, None, None))
            records.append((p, table, day, size, mtime, n, _us(lo), _us(hi), _us(rlo), _us(rhi), now))
            out.append(IndexedFile(Path(p), table, day, n, lo, hi))
        with self._db() as db:
            db.executemany("DELETE FROM conn_spans WHERE path = ?", [(p,) for p in paths])
            db.executemany("INSERT OR REPLACE INTO conn_spans VALUES (?,?,?,?,?,?,?)", spans)
            db.executemany("DELETE FROM clock_stats WHERE path = ?", [(p,) for p in paths])
            db.executemany("INSERT OR REPLACE INTO clock_stats VALUES (?,?,?,?,?,?,?,?,?)", clocks)
            db.executemany("DELETE FROM tags WHERE path = ?", [(p,) for p in paths])
            db.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)", tags)
            db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?,?)", records)
        return out

    def _from_statistics(self, path: str, table: str) -> tuple | None:
        """(rows, min event, max event, min receipt, max receipt) from the Parquet footer alone, when
        the statistics prove that no row needs its clock corrected; None otherwise (rows are read)."""
        try:
            md = pq.read_metadata(path)
        except (OSError, pa.ArrowInvalid):
            return None
        stats: dict[str, list] = {"timestamp": [], "received_at": []}
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                if col.path_in_schema in stats:
                    st = col.statistics
                    if st is None or not st.has_min_max:
                        if rg.num_rows:
                            return None
                        continue
                    stats[col.path_in_schema].append((st.min, st.max, st.null_count))
        if md.num_rows == 0:
            return (0, None, None, None, None)
        if not stats["received_at"]:
            return None
        rlo = min(x[0] for x in stats["received_at"])
        rhi = max(x[1] for x in stats["received_at"])
        if table not in CLOCK_TABLES:
            return (md.num_rows, rlo, rhi, rlo, rhi)
        ts = stats["timestamp"]
        if not ts or any(x[2] for x in ts):
            return None  # null timestamps fall back to the receipt time row by row
        tlo, thi = min(x[0] for x in ts), max(x[1] for x in ts)
        if thi > rlo + timedelta(minutes=self.skew):
            return None  # some row may be corrected
        return (md.num_rows, tlo, thi, rlo, rhi)

    def _connection_spans(self, con: duckdb.DuckDBPyConnection, table: str, paths: list[str]) -> list[tuple]:
        """Per file and connection: the event-time span of its messages and their smallest receipt lag."""
        ev = event_time_sql(table, self.skew)
        cc = clock_corrected_sql(table, self.skew)
        out = []
        for i in range(0, len(paths), 500):
            rows = con.execute(
                f"""SELECT filename, connection_id, any_value(charge_point_id), count(*),
                           min({ev}), max({ev}), min(epoch(received_at) - epoch({ev}))
                    FROM read_parquet($files, filename = true, union_by_name = true)
                    WHERE NOT {cc} GROUP BY filename, connection_id""",
                {"files": paths[i : i + 500]},
            ).fetchall()
            out.extend((fn, c, cp, n, _us(lo), _us(hi), lag) for fn, c, cp, n, lo, hi, lag in rows)
        return out

    def _clock_stats(self, con: duckdb.DuckDBPyConnection, paths: list[str]) -> list[tuple]:
        """Per file and connection: the clock facts of its timestamped messages (clock.chunk_stats_sql)."""
        d = 'epoch("timestamp") - epoch(received_at)'
        out = []
        for i in range(0, len(paths), 500):
            rows = con.execute(
                f"""SELECT filename, connection_id, any_value(charge_point_id),
                           {chunk_stats_sql(d, f"{d} >= -{REPLAY_LAG_S}")}
                    FROM read_parquet($files, filename = true, union_by_name = true)
                    WHERE "timestamp" IS NOT NULL AND connection_id IS NOT NULL
                      AND charge_point_id IS NOT NULL
                    GROUP BY filename, connection_id""",
                {"files": paths[i : i + 500]},
            ).fetchall()
            out.extend((*r[:7], _us(r[7]), r[8]) for r in rows)
        return out

    def clock_offsets(self) -> dict[str, ConnectionOffset]:
        """connection id → the charger clock offset applied to its timestamps (transforms/clock.py)."""
        stamp = self.max_indexed_at()
        if self._offsets is not None and self._offsets[0] == stamp:
            return self._offsets[1]
        with self._db() as db:
            # One row per connection, aggregated here (the per-file rows grow with the raw zone).
            rows = db.execute(
                """WITH c AS (
                       SELECT connection_id, min(charge_point_id) AS cp, sum(live_n) AS n,
                              sum(live_median_s * live_n) / nullif(sum(live_n), 0) AS med,
                              max(live_median_s) - min(live_median_s) AS med_spread,
                              max(live_q75_s - live_q25_s) AS iqr, min(first_received_us) AS first_us
                       FROM clock_stats GROUP BY connection_id
                   )
                   SELECT c.connection_id, cp, n, med, med_spread, iqr, first_us, min(s.first_d_s)
                   FROM c JOIN clock_stats s
                     ON s.connection_id = c.connection_id AND s.first_received_us = c.first_us
                   GROUP BY c.connection_id"""
            ).fetchall()
        stats = [
            ConnectionStats(c, cp, n, med, spread, iqr, _ts(first), d0)  # type: ignore[arg-type]
            for c, cp, n, med, spread, iqr, first, d0 in rows
        ]
        offsets = estimate_offsets(stats, self.clock_rule)
        self._offsets = (stamp, offsets)
        return offsets

    def register_clock_offsets(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make `con`'s raw views (raw_reader.register_view) shift timestamps by the clock offsets."""
        register_offsets(con, self.clock_offsets())

    def offset_margin(self) -> timedelta:
        """How far a clock offset can move an event from the time the file index recorded for it."""
        offsets = self.clock_offsets()
        return timedelta(seconds=max((abs(o.offset_s) for o in offsets.values()), default=0.0))

    def seen_tags(self) -> set[str]:
        """Every idTag in the raw files indexed so far (refresh first)."""
        with self._db() as db:
            return {r[0] for r in db.execute("SELECT DISTINCT tag FROM tags")}

    def connection_spans(self) -> dict[str, tuple[str, datetime, datetime, float]]:
        """connection id → (station, first event, last event, smallest receipt lag in s), over all files."""
        with self._db() as db:
            rows = db.execute(
                """SELECT connection_id, min(charge_point_id), min(min_event_us), max(max_event_us),
                          min(min_lag_s)
                   FROM conn_spans GROUP BY connection_id"""
            ).fetchall()
        offsets = self.clock_offsets()
        out: dict[str, tuple[str, datetime, datetime, float]] = {}
        for c, cp, lo, hi, lag in rows:
            shift = offsets[c].offset_s if c in offsets else 0.0
            step = timedelta(seconds=shift)
            out[c] = (cp, _ts(lo) - step, _ts(hi) - step, lag + shift)  # type: ignore[operator]
        return out

    def files_overlapping(self, table: str, start: datetime, end: datetime) -> list[Path]:
        """Files of `table` with any event in [start, end), in a deterministic order (widened by the
        largest clock offset: the index records event times before the offsets are known)."""
        margin = self.offset_margin() // timedelta(microseconds=1) if table in CLOCK_TABLES else 0
        with self._db() as db:
            rows = db.execute(
                "SELECT path, size FROM files WHERE tbl = ? AND rows > 0 AND min_event_us < ?"
                " AND max_event_us >= ? ORDER BY path",
                (table, _us(end) + margin, _us(start) - margin),  # type: ignore[operator]
            ).fetchall()
        return self._local(rows)

    def files_received_before(self, table: str, before: datetime) -> list[Path]:
        with self._db() as db:
            rows = db.execute(
                "SELECT path, size FROM files WHERE tbl = ? AND min_received_us < ? ORDER BY path",
                (table, _us(before)),
            ).fetchall()
        return self._local(rows)

    def all_files(self, table: str) -> list[Path]:
        with self._db() as db:
            rows = db.execute("SELECT path, size FROM files WHERE tbl = ? ORDER BY path", (table,)).fetchall()
        return self._local(rows)

    def event_range(self, tables: tuple[str, ...] = EVENT_TABLES) -> tuple[datetime, datetime] | None:
        """Range of charger event times (tables without a charger clock only say when we received)."""
        marks = ",".join("?" * len(tables))
        with self._db() as db:
            lo, hi = db.execute(
                f"SELECT min(min_event_us), max(max_event_us) FROM files WHERE rows > 0 AND tbl IN ({marks})",
                tables,
            ).fetchone()
        if lo is None:
            return None
        return _ts(lo), _ts(hi)  # type: ignore[return-value]

    def max_indexed_at(self) -> float:
        with self._db() as db:
            (v,) = db.execute("SELECT coalesce(max(indexed_at), 0) FROM files").fetchone()
        return float(v)
