"""Every idTag the raw zone holds, for the leak check.

Extracted once per raw file when the file index sees it (table `tags` of the index, under the
private DATA_DIR/state), so a publish does not re-read every frame ever received. The index is as
private as the raw zone; after the raw retention period the rewritten files hold no tags, and their
rows leave the index with the old files.
"""

from __future__ import annotations

import duckdb

from pipelines.checks import tags_in_json

TAG_TABLES = ("transaction_events", "frames", "quarantine")
_TAG_REGEX = r'"(?:idTag|parentIdTag|idToken|additionalIdToken)"\s*:\s*"([^"]*)"'


def tags_of_files(con: duckdb.DuckDBPyConnection, table: str, files: list[str]) -> list[tuple[str, str]]:
    """(file, tag) pairs found in raw files of one table."""
    out: set[tuple[str, str]] = set()
    if not files:
        return []
    if table == "transaction_events":
        rows = con.execute(
            """SELECT DISTINCT filename, id_tag, id_token_extra
               FROM read_parquet($f, union_by_name = true, filename = true)
               WHERE id_tag IS NOT NULL OR id_token_extra IS NOT NULL""",
            {"f": files},
        ).fetchall()
        for fn, tag, extra in rows:
            if tag and tag.strip():
                out.add((fn, tag))
            out.update((fn, t) for t in tags_in_json(extra) if t.strip())
    else:
        rows = con.execute(
            f"""SELECT DISTINCT filename, unnest(regexp_extract_all(text, '{_TAG_REGEX}', 1))
                FROM read_parquet($f, union_by_name = true, filename = true)
                WHERE text LIKE '%dTag%' OR text LIKE '%dToken%'""",
            {"f": files},
        ).fetchall()
        out.update((fn, t) for fn, t in rows if t and t.strip())
    return sorted(out)
