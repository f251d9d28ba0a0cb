"""Blocking checks run on a staged release before it goes online.

Privacy (any failure stops the whole release; the previous one stays online):
  (a) no idTag ever seen appears in any published byte (decoded Parquet strings, catalog.duckdb,
      metadata, manifest), case-insensitively as a substring, also in hex/decimal UID forms and including
      2.0.1 groupIdToken / additionalInfo;
  (b) no unkeyed MD5 / SHA-1 / SHA-256 of a raw or case-folded tag appears;
  (c) no suppressed distinct-user cell can be rebuilt from other published data;
  (d) no pseudonym appears at two stations;
  (e) no non-public station appears by id or coordinates;
  (f) no session of a station with fewer than k users in the pseudonym period has a row.
Quality acts per record, before the datasets are built (pipelines/quality/): it never blocks a
release nor keeps a partition at its previous version.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ocpp_opendata.registry import RegistryStation

NGRAM = 4
# Random bytes of compressed files match short ASCII strings by chance; only longer forms are looked
# for in undecoded bytes (decoded strings are searched for every form of at least NGRAM characters).
MIN_BYTES_TOKEN = 8
_TAG_FIELDS = re.compile(
    r'"(?:idTag|parentIdTag|idToken|additionalIdToken|groupIdToken)"\s*:\s*"((?:[^"\\]|\\.)*)"'
)


@dataclass
class CheckReport:
    name: str
    passed: bool
    detail: str = ""
    partitions: list[str] = field(default_factory=list)


class PrivacyCheckError(RuntimeError):
    """A privacy check failed: nothing is published."""

    def __init__(self, message: str, reports: list[CheckReport] | None = None) -> None:
        super().__init__(message)
        self.reports = reports or []


def tags_in_json(text: str | None) -> Iterator[str]:
    """idTags inside a frame or an id_token_extra JSON (idToken, groupIdToken, additionalInfo...)."""
    if not text:
        return
    for m in _TAG_FIELDS.finditer(text):
        yield m.group(1)
    # groupIdToken is an object in 2.0.1: {"groupIdToken": {"idToken": "...", "type": ...}}, caught
    # above through its inner idToken field.


def tag_forms(tag: str) -> set[str]:
    """Every form of a tag the leak check looks for (lower-cased)."""
    t = tag.strip()
    if not t:
        return set()
    forms = {t}
    compact = re.sub(r"[\s:\-]", "", t)
    forms.add(compact)
    if re.fullmatch(r"[0-9a-fA-F]+", compact) and len(compact) % 2 == 0:
        value = int(compact, 16)
        forms.add(str(value))
        forms.add(bytes.fromhex(compact)[::-1].hex())  # little-endian UID
        forms.add(str(int.from_bytes(bytes.fromhex(compact)[::-1], "big")))
    if compact.isdigit():
        value = int(compact)
        forms.add(format(value, "x"))
        forms.add(format(value, "08x"))
    for variant in {t, t.upper(), t.lower(), compact.upper(), compact.lower()}:
        b = variant.encode()
        forms.add(hashlib.md5(b).hexdigest())
        forms.add(hashlib.sha1(b).hexdigest())
        forms.add(hashlib.sha256(b).hexdigest())
    return {f.lower() for f in forms if f}


class TokenMatcher:
    """Substring search for many tokens at once (an n-gram index of the tokens' first characters)."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self.by_gram: dict[str, list[str]] = defaultdict(list)
        self.short: list[str] = []
        for tok in set(tokens):
            if len(tok) >= NGRAM:
                self.by_gram[tok[:NGRAM]].append(tok)
            else:
                self.short.append(tok)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_gram.values())

    def find(self, haystack: str, min_len: int = NGRAM) -> str | None:
        text = haystack.lower()
        grams = self.by_gram
        for i in range(len(text) - NGRAM + 1):
            cands = grams.get(text[i : i + NGRAM])
            if cands:
                for tok in cands:
                    if len(tok) >= min_len and text.startswith(tok, i):
                        return tok
        return None


def forbidden_tokens(tags: Iterable[str], private_ids: Iterable[str]) -> TokenMatcher:
    tokens: set[str] = set()
    for tag in tags:
        tokens |= tag_forms(tag)
    tokens |= {p.lower() for p in private_ids if p}
    return TokenMatcher(tokens)


def _strings_of(values: Iterable[object]) -> Iterator[str]:
    for v in values:
        if isinstance(v, str):
            yield v
        elif isinstance(v, list):
            yield from _strings_of(v)


def _parquet_strings(path: Path) -> Iterator[str]:
    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata or {}
    for k, v in meta.items():
        yield k.decode(errors="replace")
        yield v.decode(errors="replace")
    tbl = pf.read()
    for name in tbl.column_names:
        col = tbl[name]
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_list(t):
            yield name
            yield from _strings_of(col.unique().to_pylist() if not pa.types.is_list(t) else col.to_pylist())
        else:
            yield name


def _duckdb_strings(path: Path) -> Iterator[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cols = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
        ).fetchall()
        for table, column, dtype in cols:
            yield table
            yield column
            if dtype.startswith("VARCHAR"):
                for (v,) in con.execute(f'SELECT DISTINCT "{column}" FROM "{table}"').fetchall():
                    if v is not None:
                        yield v
    finally:
        con.close()


def scan_file_for_tokens(path: Path, rel: Path, matcher: TokenMatcher) -> str | None:
    """How a forbidden token appears in one staged file (`rel`: bytes or value), or None when clean."""
    raw = path.read_bytes().decode("latin-1")
    if matcher.find(raw, MIN_BYTES_TOKEN):
        return f"{rel}: bytes"
    strings: Iterable[str] = ()
    if path.suffix == ".parquet":
        strings = _parquet_strings(path)
    elif path.suffix == ".duckdb":
        strings = _duckdb_strings(path)
    elif path.suffix in (".json", ".jsonld"):
        strings = [path.read_text(errors="replace")]
    for s in set(strings):
        if matcher.find(s):
            return f"{rel}: value"
    return None


def scan_release_for_tokens(release: Path, matcher: TokenMatcher) -> list[str]:
    """Where a forbidden token appears in the staged release (file and how); empty when clean."""
    findings = []
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        hit = scan_file_for_tokens(path, path.relative_to(release), matcher)
        if hit:
            findings.append(hit)
    return findings


def check_hidden_sessions_absent(sessions: pa.Table, hidden: set[str]) -> CheckReport:
    """Sessions at stations with fewer than k users in the period have no row: a row with only its
    area is tied back to its station by the station's own 15-minute and daily series (issue 20)."""
    bad = [
        f"{sid or 'no station'} {sess}"
        for sess, sid in zip(
            sessions["session_id"].to_pylist(), sessions["station_id"].to_pylist(), strict=True
        )
        if sid is None or sess in hidden
    ]
    return CheckReport("hidden_sessions_absent", not bad, "; ".join(bad[:5]))


def check_pseudonyms_single_station(sessions: pa.Table) -> CheckReport:
    stations: dict[str, set[str]] = defaultdict(set)
    for p, s in zip(sessions["user_pseudonym"].to_pylist(), sessions["station_id"].to_pylist(), strict=True):
        if p is not None and s is not None:
            stations[p].add(s)
    linked = sum(1 for v in stations.values() if len(v) > 1)
    return CheckReport(
        "pseudonym_single_station", linked == 0, f"{linked} pseudonyms appear at more than one station"
    )


def check_no_private_station(
    tables: dict[str, pa.Table], registry: dict[str, RegistryStation]
) -> CheckReport:
    public = {sid for sid, st in registry.items() if st.public}
    private_coords = {
        (round(st.latitude, 6), round(st.longitude, 6))
        for st in registry.values()
        if not st.public and st.latitude is not None and st.longitude is not None
    }
    bad: list[str] = []
    for name, tbl in tables.items():
        if "station_id" in tbl.column_names:
            ids = {s for s in tbl["station_id"].to_pylist() if s is not None}
            if ids - public:
                bad.append(f"{name}: {len(ids - public)} non-public station ids")
        if "latitude" in tbl.column_names:
            coords = {
                (round(a, 6), round(b, 6))
                for a, b in zip(tbl["latitude"].to_pylist(), tbl["longitude"].to_pylist(), strict=True)
                if a is not None and b is not None
            }
            if coords & private_coords:
                bad.append(f"{name}: coordinates of a non-public station")
    return CheckReport("no_private_station", not bad, "; ".join(bad))


def check_suppressed_cells(tables: dict[str, pa.Table]) -> CheckReport:
    """Try to rebuild each suppressed distinct-user cell from the rest of the release."""
    sessions = tables["charging_sessions"].to_pylist()
    by_station_day: dict[tuple[str, date], list[dict]] = defaultdict(list)
    by_station_month: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for r in sessions:
        if r["station_id"] is not None:
            by_station_day[(r["station_id"], r["date"])].append(r)
            by_station_month[(r["station_id"], r["date"].replace(day=1))].append(r)
    rebuilt: list[str] = []

    def from_rows(rows: list[dict], sessions_count: int) -> bool:
        return bool(rows) and len(rows) == sessions_count and all(r["user_pseudonym"] for r in rows)

    daily = tables["station_usage_daily"].to_pylist()
    monthly = tables["station_usage_monthly"].to_pylist()
    area = tables["area_usage_daily"].to_pylist()
    for r in daily:
        rows = by_station_day[(r["station_id"], r["date"])]
        if r["distinct_users_suppressed"] and r["sessions"] > 0 and from_rows(rows, r["sessions"]):
            rebuilt.append(f"station_usage_daily {r['station_id']} {r['date']}: from session rows")
        # Any pseudonym on a station-day with fewer than k users is a lower bound of the hidden count;
        # the session count is its only published upper bound (docs/privacy.md).
        if r["distinct_users_suppressed"] and any(x["user_pseudonym"] for x in rows):
            rebuilt.append(f"station_usage_daily {r['station_id']} {r['date']}: pseudonyms on a hidden day")
    for r in monthly:
        rows = by_station_month[(r["station_id"], r["date"])]
        if r["distinct_users_suppressed"] and r["sessions"] > 0 and from_rows(rows, r["sessions"]):
            rebuilt.append(f"station_usage_monthly {r['station_id']} {r['date']}: from session rows")
    # Month minus its days: a month with one day of sessions has that day's count.
    days_with_sessions: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for r in daily:
        if r["sessions"] > 0:
            days_with_sessions[(r["station_id"], r["date"].replace(day=1))].append(r)
    for r in monthly:
        days = days_with_sessions.get((r["station_id"], r["date"]), [])
        if len(days) == 1 and r["distinct_users_suppressed"] != days[0]["distinct_users_suppressed"]:
            rebuilt.append(f"station_usage_monthly {r['station_id']} {r['date']}: month equals its only day")
    # Area minus its stations: an area-day of one station equals that station's cell.
    stations_per_area_day: dict[tuple[str, date], list[dict]] = defaultdict(list)
    for r in daily:
        stations_per_area_day[(r["area"], r["date"])].append(r)
    for r in area:
        members = stations_per_area_day.get((r["area"], r["date"]), [])
        single = r["stations"] == 1 and len(members) == 1
        if single and r["distinct_users_suppressed"] != members[0]["distinct_users_suppressed"]:
            rebuilt.append(f"area_usage_daily {r['area']} {r['date']}: area equals its only station")
    return CheckReport("suppressed_cells_not_rebuildable", not rebuilt, "; ".join(rebuilt[:5]))
