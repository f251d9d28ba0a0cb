"""The fast lane's own worker threads, the cache of parsed statements and the ETag digest computed off the
event loop, on a real release (tests/api/builder.py) opened with a real DuckDB."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from api import formats
from api.app import sql_limits
from api.errors import ApiError
from api.fastlane import LanePool
from api.formats import page_rows, parsed
from api.middleware import BODY_HASH_KEY, _known_hash, body_hash, hash_off_loop
from api.release import Release
from api.routes.common import RowsFormat
from api.routes.datasets import rows_answer
from ocpp_opendata.settings import load_settings
from pipelines.published_schema import RELEASES_DIRNAME, published_root
from tests.api.builder import Shape, build_release

PAGE = "SELECT station_id, interval_start FROM station_energy_15min ORDER BY station_id, interval_start"


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    data_dir = tmp_path_factory.mktemp("lane") / "data"
    data_dir.mkdir()
    release_id = build_release(data_dir, Shape(stations=4, days=2))
    root: Path = published_root(data_dir) / RELEASES_DIRNAME / release_id
    opened = Release.open(root, sql_limits(load_settings({"data_dir": data_dir})))
    try:
        yield opened
    finally:
        opened.retire()


def _page(rel: Release, limit: int) -> object:
    return rows_answer(rel, "station_energy_15min", [], None, None, None, limit, 0, RowsFormat.json)


async def test_a_lane_call_answers_or_hands_its_error_to_the_request_and_always_ends_its_lease(
    rel: Release,
) -> None:
    pool = LanePool(2)

    def fails() -> object:
        raise ApiError(400, "no such thing")

    try:
        rel.acquire()
        answer = await pool.run(rel, lambda: _page(rel, 3))  # type: ignore[arg-type, return-value]
        assert orjson.loads(answer.body)["returned"] == 3
        rel.acquire()
        with pytest.raises(ApiError, match="no such thing"):
            await pool.run(rel, fails)  # type: ignore[arg-type]
        assert rel._leases == 0
    finally:
        pool.shutdown()


async def test_shutting_the_lane_down_cancels_queued_calls_and_ends_their_leases(rel: Release) -> None:
    pool = LanePool(1)
    gate = threading.Event()
    ran: list[int] = []

    def blocked() -> object:
        gate.wait(10)
        ran.append(0)
        return _page(rel, 1)

    for _ in range(4):
        rel.acquire()
    running = pool.run(rel, blocked)  # type: ignore[arg-type]
    queued = [pool.run(rel, lambda: _page(rel, 1)) for _ in range(3)]  # type: ignore[arg-type, return-value]
    await asyncio.sleep(0.05)  # the one worker is inside `blocked` now
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert orjson.loads((await running).body)["returned"] == 1
    await asyncio.sleep(0)
    assert all(f.cancelled() for f in queued) and ran == [0]
    pool.shutdown(wait=True)
    assert rel._leases == 0


def test_a_parsed_statement_runs_again_on_another_connection_with_new_parameters(rel: Release) -> None:
    sql = PAGE + " LIMIT ? OFFSET ?"
    with rel.cursor() as first:
        page = page_rows(first, sql, [5, 0])
        statement = parsed(first, sql)
    other = rel.db.cursor()
    try:
        assert parsed(other, sql) is statement  # parsed once
        later = page_rows(other, sql, [5, 3])
        expected = other.execute(sql, [5, 3]).fetchall()
    finally:
        other.close()
    assert [tuple(r.values()) for r in later] == expected
    assert later[:2] == page[3:5]


def test_the_cache_of_parsed_statements_stays_bounded(rel: Release, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "STATEMENTS_MAX", 4)
    with rel.cursor() as cur:
        for n in range(1, 11):
            assert page_rows(cur, PAGE + f" LIMIT {n}", []) and len(formats._statements) <= 4


def test_the_lane_s_etag_digest_is_used_only_for_the_very_body_it_was_computed_from() -> None:
    body = orjson.dumps([{"n": n, "name": f"station-{n}"} for n in range(500)])  # over 2 KiB: no GIL
    scope = {BODY_HASH_KEY: (body, hash_off_loop(body))}
    assert hash_off_loop(body) == body_hash(body)
    assert _known_hash(scope, body) == body_hash(body)
    assert _known_hash(scope, gzip.compress(body)) is None  # a gzipped answer is hashed as sent
    assert _known_hash({}, body) is None
