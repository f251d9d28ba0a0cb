"""The SQL endpoint's guard: one read-only SELECT over the published tables, on a locked-down DuckDB.

Defence in depth, each layer sufficient for the files on disk:
1. DuckDB's own parser (`extract_statements`) must find exactly one statement, of SELECT type.
2. Its syntax tree (`json_serialize_sql`) may name only published tables, CTEs and a few pure table
   functions, and no function that reveals settings or paths (`current_setting`, `duckdb_*`, ...).
3. The instance is separate from the API's own, attaches the catalogue READ_ONLY, has extension
   autoload/autoinstall off, allowed paths set to the catalogue only, then `enable_external_access=false`
   and finally `lock_configuration=true`, so no statement can read or write a file or undo any of this.
4. Memory and thread caps, a time limit enforced with `interrupt()`, a row cap, at most N queries at once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from api.errors import ApiError, scrub_paths

MAX_QUERY_CHARS = 1_000_000
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
DENIED_FUNCTIONS = frozenset({"current_setting", "getenv", "current_database", "current_catalog"})
DENIED_PREFIXES = ("duckdb_", "pragma_")
BATCH_ROWS = 2048
# A query arriving while both slots are busy waits this long for one before it is refused (429):
# short queries then queue for a moment instead of failing, heavy ones still cannot pile up.
SLOT_WAIT_SECONDS = 0.1


@dataclass(frozen=True)
class SqlLimits:
    time_limit: float = 5.0
    row_cap: int = 10_000
    memory_limit: str = "256MB"
    threads: int = 1
    max_in_flight: int = 2


@dataclass
class SqlResult:
    table: pa.Table
    truncated: bool
    elapsed: float


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class SqlEngine:
    """A DuckDB instance of its own for untrusted SELECTs; never used by the API's other routes."""

    def __init__(self, catalog: Path, limits: SqlLimits) -> None:
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_in_flight)
        con = duckdb.connect(
            ":memory:",
            config={
                "threads": str(limits.threads),
                "memory_limit": limits.memory_limit,
                # No spilling to disk: a query that does not fit fails instead of filling the disk.
                "temp_directory": "",
            },
        )
        try:
            con.execute(f"ATTACH {_sql_string(str(catalog))} AS catalog (READ_ONLY)")
            con.execute("USE catalog")
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute(f"SET allowed_paths = [{_sql_string(str(catalog))}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            self.tables = frozenset(
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'catalog'"
                ).fetchall()
            )
        except Exception:
            con.close()
            raise
        self._con = con

    def close(self) -> None:
        self._con.close()

    def run(self, query: str) -> SqlResult:
        if not self._slots.acquire(timeout=SLOT_WAIT_SECONDS):
            raise ApiError(
                429,
                f"too many SQL queries in flight (at most {self.limits.max_in_flight}); retry shortly",
                {"Retry-After": "1"},
            )
        try:
            cur = self._con.cursor()
            try:
                cur.execute("USE catalog")
                check_statement(cur, query, self.tables)
                return self._execute(cur, query)
            finally:
                cur.close()
        finally:
            self._slots.release()

    def _execute(self, cur: duckdb.DuckDBPyConnection, query: str) -> SqlResult:
        timer = threading.Timer(self.limits.time_limit, cur.interrupt)
        started = time.monotonic()
        timer.start()
        try:
            reader = cur.sql(query).to_arrow_reader(BATCH_ROWS)
            batches: list[pa.RecordBatch] = []
            rows = 0
            truncated = False
            for batch in reader:
                if rows + batch.num_rows > self.limits.row_cap:
                    batches.append(batch.slice(0, self.limits.row_cap - rows))
                    truncated = True
                    break
                batches.append(batch)
                rows += batch.num_rows
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException as exc:
            raise ApiError(
                400, f"query exceeded the time limit of {self.limits.time_limit:g} s and was stopped"
            ) from exc
        except duckdb.OutOfMemoryException as exc:
            raise ApiError(
                400, f"query needs more memory than the SQL endpoint's limit ({self.limits.memory_limit})"
            ) from exc
        except duckdb.PermissionException as exc:
            raise ApiError(
                403, "file, network and extension access is disabled: query the published tables only"
            ) from exc
        except duckdb.Error as exc:
            raise ApiError(400, "query failed: " + scrub_paths(str(exc), query)[:500]) from exc
        finally:
            timer.cancel()
        return SqlResult(table, truncated, time.monotonic() - started)


def check_statement(cur: duckdb.DuckDBPyConnection, query: str, tables: frozenset[str]) -> None:
    """Raise ApiError(400) unless `query` is exactly one SELECT touching published tables only."""
    if not query.strip():
        raise ApiError(400, "parameter q is empty: give one SELECT statement")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(400, f"query is longer than {MAX_QUERY_CHARS} characters")
    try:
        statements = cur.extract_statements(query)
    except duckdb.Error as exc:
        raise ApiError(400, "SQL syntax error: " + scrub_paths(str(exc), query)[:500]) from exc
    if len(statements) != 1:
        raise ApiError(400, f"exactly one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ApiError(400, f"only SELECT statements are allowed, got {kind.name}")
    _check_tree(cur, query, tables)


def _check_tree(cur: duckdb.DuckDBPyConnection, query: str, tables: frozenset[str]) -> None:
    try:
        raw = cur.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0]
        tree = json.loads(raw[0]) if raw else None
    except (duckdb.Error, RecursionError, ValueError) as exc:
        raise ApiError(400, "query is too deeply nested or cannot be analysed") from exc
    if not isinstance(tree, dict) or tree.get("error"):
        message = tree.get("error_message", "") if isinstance(tree, dict) else ""
        raise ApiError(400, "query cannot be analysed: " + scrub_paths(str(message), query)[:300])
    nodes = list(_walk(tree))
    ctes = {entry.get("key") for node in nodes for entry in node.get("cte_map", {}).get("map", []) or []}
    for node in nodes:
        _check_node(node, tables, ctes)


def _walk(tree: Any) -> Any:
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_node(node: dict[str, Any], tables: frozenset[str], ctes: set[Any]) -> None:
    kind = node.get("type")
    if kind == "BASE_TABLE":
        name = str(node.get("table_name", ""))
        schema = str(node.get("schema_name", "")).lower()
        catalog = str(node.get("catalog_name", "")).lower()
        published = catalog in ("", "catalog") and schema in ("", "main") and name in tables
        if not (published or (not catalog and not schema and name in ctes)):
            raise ApiError(
                400, f"table {name[:60]!r} is not a published table; see /v1/datasets for what can be queried"
            )
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS:
            raise ApiError(
                400,
                f"table function {name[:60]!r} is not allowed; only "
                + ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
                + " and the published tables",
            )
    elif kind == "SHOW_REF":
        name = str(node.get("table_name", ""))
        if node.get("query") is None and name not in tables:
            raise ApiError(400, "DESCRIBE/SHOW/SUMMARIZE work on published tables or queries only")
    if node.get("class") == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
            raise ApiError(400, f"function {name[:60]!r} is not available in this API")
