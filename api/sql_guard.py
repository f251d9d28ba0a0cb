"""The SQL endpoint's guard: which statements may run, judged from DuckDB's own parse tree before planning.

Defence in depth, each layer sufficient for the files on disk:
1. DuckDB's own parser (`extract_statements`) must find exactly one statement, of SELECT type.
2. Its syntax tree (`json_serialize_sql`) may name only published tables, CTEs *visible in that scope*
   and a few pure table functions, and no function that reveals settings or paths (`current_setting`,
   `duckdb_*`, ...). CTE names are resolved as DuckDB's binder resolves them: a CTE is visible in the
   query that defines it and in that query's subqueries, to the CTEs after it in the same WITH, and to
   itself only in the recursive part of a recursive CTE. A name defined in one subquery does not unlock
   the same name elsewhere (issue 20, item 6).
3. Bounds from the tree, before the planner sees the query: at most MAX_TABLE_REFS table references
   (joins), MAX_QUERY_DEPTH nested queries, string literals of MAX_LITERAL_CHARS, and no list or
   string builder (`range`, `repeat`, ...) with a constant size above MAX_GENERATED (issue 20, items 1
   and 2: a 200-way join chain planned for 17 s, `range(100000000)` took 6 GB).
4. The statement runs in a worker process of `api.sql_pool` whose memory the OS limits and which is
   killed at the time limit (see there); its DuckDB instance attaches the catalogue READ_ONLY with
   external access off and the configuration locked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from api.errors import ApiError, scrub_paths

MAX_QUERY_CHARS = 1_000_000
ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
DENIED_FUNCTIONS = frozenset({"current_setting", "getenv", "current_database", "current_catalog"})
DENIED_PREFIXES = ("duckdb_", "pragma_")
# Measured on this DuckDB: a 32-way join of range(2) plans in ~0.03 s, 64 in ~0.5 s, 200 in 17 s.
MAX_TABLE_REFS = 32
MAX_QUERY_DEPTH = 32
MAX_LITERAL_CHARS = 10_000
# Scalar functions whose result grows with a numeric argument: a list of n elements, a string of n
# characters. As table functions (`FROM range(n)`) they stream and the row cap applies instead.
SIZED_FUNCTIONS = frozenset(
    {"range", "generate_series", "repeat", "lpad", "rpad", "list_resize", "array_resize"}
)
MAX_GENERATED = 1_000_000
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_REFS = frozenset({"BASE_TABLE", "TABLE_FUNCTION", "SUBQUERY"})
ARITHMETIC = frozenset({"+", "-", "*", "/", "//", "^", "**", "pow", "power", "multiply", "add"})


@dataclass(frozen=True)
class SqlLimits:
    time_limit: float = 5.0
    row_cap: int = 10_000
    memory_limit: str = "256MB"
    threads: int = 1
    max_in_flight: int = 2
    answer_bytes: int = 16 * 1024 * 1024


def check_statement(cur: duckdb.DuckDBPyConnection, query: str, tables: frozenset[str]) -> None:
    """Raise ApiError(400) unless `query` is exactly one bounded SELECT touching published tables only."""
    if not query.strip():
        raise ApiError(400, "parameter q is empty: give one SELECT statement")
    if len(query) > MAX_QUERY_CHARS:
        raise ApiError(400, f"query is longer than {MAX_QUERY_CHARS} characters")
    try:
        statements = cur.extract_statements(query)
    except duckdb.OutOfMemoryException as exc:
        # The parser recurses per nesting level; the worker's memory limit ends it first.
        raise ApiError(
            400, "query is too large or nested too deep (depth) to parse within the limits"
        ) from exc
    except duckdb.Error as exc:
        raise ApiError(400, "SQL syntax error: " + scrub_paths(str(exc), query)[:500]) from exc
    if len(statements) != 1:
        raise ApiError(400, f"exactly one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ApiError(400, f"only SELECT statements are allowed, got {kind.name}")
    check_tree(parse_tree(cur, query), tables)


def parse_tree(cur: duckdb.DuckDBPyConnection, query: str) -> dict[str, Any]:
    try:
        raw = cur.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0]
        tree = json.loads(raw[0]) if raw else None
    except (duckdb.Error, RecursionError, ValueError) as exc:
        raise ApiError(400, "query is too deeply nested or cannot be analysed") from exc
    if not isinstance(tree, dict) or tree.get("error"):
        message = tree.get("error_message", "") if isinstance(tree, dict) else ""
        raise ApiError(400, "query cannot be analysed: " + scrub_paths(str(message), query)[:300])
    return tree


def check_tree(tree: dict[str, Any], tables: frozenset[str]) -> None:
    """Walk the tree once (no recursion: trees can be deep), each node with the CTE names it can see."""
    refs = 0
    # (item, CTE names in scope, nested query depth, is the function node of a TABLE_FUNCTION)
    stack: list[tuple[Any, frozenset[str], int, bool]] = [(tree, frozenset(), 0, False)]
    while stack:
        item, scope, depth, table_function = stack.pop()
        if isinstance(item, list):
            stack.extend((x, scope, depth, False) for x in item)
            continue
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind in QUERY_NODES:
            depth += 1
            if depth > MAX_QUERY_DEPTH:
                raise ApiError(400, f"query nests more than {MAX_QUERY_DEPTH} queries; flatten it")
        if kind in TABLE_REFS:
            refs += 1
            if refs > MAX_TABLE_REFS:
                raise ApiError(
                    400, f"query has more than {MAX_TABLE_REFS} table references (joins, subqueries)"
                )
        _check_node(item, tables, scope, table_function)
        stack.extend(_children(item, scope, depth))


def _children(
    node: dict[str, Any], scope: frozenset[str], depth: int
) -> list[tuple[Any, frozenset[str], int, bool]]:
    """`node`'s values, each with the CTE scope DuckDB's binder gives it."""
    out: list[tuple[Any, frozenset[str], int, bool]] = []
    entries = (node.get("cte_map") or {}).get("map") or []
    names = [str(e.get("key")) for e in entries]
    inner = scope | frozenset(names)
    for i, entry in enumerate(entries):
        # A CTE sees the ones before it in its WITH, not itself (unless recursive, below) nor later ones:
        # those names bind to the catalogue there.
        out.append((entry.get("value"), scope | frozenset(names[:i]), depth, False))
    recursive = node.get("type") == "RECURSIVE_CTE_NODE"
    for key, value in node.items():
        if key == "cte_map":
            continue
        if recursive and key == "right":
            out.append((value, inner | {str(node.get("cte_name"))}, depth, False))
        else:
            out.append((value, inner, depth, key == "function" and node.get("type") == "TABLE_FUNCTION"))
    return out


def _check_node(
    node: dict[str, Any], tables: frozenset[str], ctes: frozenset[str], table_function: bool
) -> None:
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
    cls = node.get("class")
    if cls == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
            raise ApiError(400, f"function {name[:60]!r} is not available in this API")
        if name in SIZED_FUNCTIONS and not table_function:
            _check_size(name, node)
    elif cls == "CONSTANT":
        text = _literal_text(node)
        if text is not None and len(text) > MAX_LITERAL_CHARS:
            raise ApiError(400, f"a literal of more than {MAX_LITERAL_CHARS:,} characters is not accepted")


def _check_size(name: str, node: dict[str, Any]) -> None:
    for arg in _arguments(node):
        value = _constant_number(arg, 0)
        if value is not None and abs(value) > MAX_GENERATED:
            raise ApiError(
                400,
                f"{name}() with a size of {value:.0f} would build a list or string of more than "
                f"{MAX_GENERATED:,} elements; use the table function (FROM range(n)) or a smaller size",
            )


def _arguments(node: dict[str, Any]) -> list[Any]:
    args = node.get("arguments")
    if isinstance(args, list):
        return [a.get("expression") if isinstance(a, dict) and "expression" in a else a for a in args]
    children = node.get("children")
    return children if isinstance(children, list) else []


def _literal_text(node: dict[str, Any]) -> str | None:
    literal = node.get("literal")
    if isinstance(literal, dict):
        return str(literal.get("text", ""))
    value = node.get("value")
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return value["value"]  # type: ignore[no-any-return]
    return None


def _constant_number(node: Any, depth: int) -> float | None:
    """The value of a constant numeric expression (literals, casts, arithmetic), or None if not one."""
    if not isinstance(node, dict) or depth > 40:
        return None
    cls = node.get("class")
    if cls == "CONSTANT":
        literal = node.get("literal")
        raw = literal.get("text") if isinstance(literal, dict) else (node.get("value") or {}).get("value")
        try:
            return float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    if cls == "CAST":
        return _constant_number(node.get("child"), depth + 1)
    if cls == "FUNCTION" and str(node.get("function_name", "")).lower() in ARITHMETIC:
        values = [_constant_number(a, depth + 1) for a in _arguments(node)]
        if not values or any(v is None for v in values):
            return None
        return _arithmetic(str(node["function_name"]).lower(), values)  # type: ignore[arg-type]
    return None


def _arithmetic(op: str, values: list[float]) -> float | None:
    try:
        if len(values) == 1:
            return -values[0] if op == "-" else values[0]
        a, b = values[0], values[1]
        if op in ("+", "add"):
            return a + b
        if op == "-":
            return a - b
        if op in ("*", "multiply"):
            return a * b
        if op in ("/", "//"):
            return a / b if b else None
        return math.pow(a, b)
    except (OverflowError, ValueError):
        return math.inf
