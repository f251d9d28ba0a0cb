"""The whole flow through a real S3 store (SeaweedFS): listener → store → pipeline → API.

Three "machines" share nothing but the bucket: the listener's DATA_DIR (write-ahead log, outbox), the
pipeline's (work zone, raw cache, build area) and the API's (release cache). The pipeline finds the raw
files by listing the store and publishes by upload and a `published/CURRENT` switch; the API serves the
catalog from its cache and streams Parquet downloads (with ranges) from the store.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from ocpp_opendata.objectstore import Store, open_store
from ocpp_opendata.settings import Settings, load_settings
from pipelines import runner
from pipelines.maintenance import maintain_raw
from pipelines.publish import publish
from pipelines.storage import RELEASES_PREFIX, read_current, stored_release_ids
from tests.api.conftest import ApiServer, start_api
from tests.support.listener import make_listener
from tests.support.seaweed import SeaweedServer

TIMEZONE = "Europe/Stockholm"
KEY = "object-store-test-pseudonym-key-0123456789"
DOWNLOAD = "/v1/datasets/station_energy_15min/download.parquet"


@dataclass
class Flow:
    seaweed: SeaweedServer
    url: str
    store: Store
    listener_dir: Path
    pipeline_dir: Path
    api: ApiServer
    first_release: str

    def settings(self, **given: object) -> Settings:
        chosen = {"data_dir": self.pipeline_dir, "store": self.url, "timezone": TIMEZONE, **given}
        return load_settings(chosen)


@pytest.fixture
def env_of_store(seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**seaweed.env(), "OCPP_OPENDATA_PSEUDONYM_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OCPP_OPENDATA_PRIVACY_K", "2")


def _outbox_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "outbox").rglob("*.parquet") if not p.name.startswith(".")]


def _feed_listener(seaweed: SeaweedServer, url: str, listener_dir: Path, registry_dir: Path) -> None:
    """A real listener with `--store`, fed by the simulator; returns once its outbox is uploaded."""
    listener = make_listener(listener_dir, "--store", url, env=seaweed.env()).start()
    try:
        sim = subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "simulate", "--url", listener.url,
             "--chargers", "6", "--days", "2", "--start", "2026-03-28", "--seed", "5",
             "--timezone", TIMEZONE, "--station-registry", str(registry_dir),
             "--users-per-charger", "3", "--private-share", "0.4"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr[-2000:]
        deadline = time.monotonic() + 30
        # The last file rolls within a second; the uploader removes it from the outbox once stored.
        while time.monotonic() < deadline:
            time.sleep(1.5)
            if not _outbox_files(listener_dir):
                break
    finally:
        listener.stop()
    assert not _outbox_files(listener_dir), f"files left in the outbox:\n{listener.log()[-3000:]}"


@pytest.fixture(scope="module")
def flow(seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    base = tmp_path_factory.mktemp("flow")
    url = f"s3://{seaweed.create_bucket()}/city"
    listener_dir, pipeline_dir, api_dir = base / "listener", base / "pipeline", base / "api"
    pipeline_dir.mkdir()
    api_dir.mkdir()
    _feed_listener(seaweed, url, listener_dir, pipeline_dir)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**seaweed.env(), "OCPP_OPENDATA_PSEUDONYM_KEY": KEY}.items():
            mp.setenv(name, value)
        mp.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
        settings = load_settings({"data_dir": pipeline_dir, "store": url, "timezone": TIMEZONE})
        with DagsterInstance.ephemeral() as instance:
            summary = runner.run(settings, runner.all_dates(settings), instance=instance)
        assert summary.release_id, "the pipeline published nothing"
        api = start_api(api_dir, "--store", url)
    store = open_store(url, pipeline_dir, seaweed.env())
    try:
        api.wait_for_release(summary.release_id, timeout=30)
        yield Flow(seaweed, url, store, listener_dir, pipeline_dir, api, summary.release_id)
    finally:
        api.stop()


def _manifest(store: Store, release_id: str) -> dict:
    return json.loads(store.read_bytes(f"{RELEASES_PREFIX}/{release_id}/manifest.json"))


def _served(flow: Flow) -> str:
    return httpx.get(flow.api.url + "/health", timeout=5).json()["release"]


def test_raw_files_of_a_real_listener_reach_the_api_through_the_store_only(flow: Flow) -> None:
    raw = flow.store.list("raw")
    assert raw and all(o.key.endswith(".parquet") for o in raw)
    # Nothing of the raw zone or the releases is on the pipeline's disk except its caches.
    assert not (flow.pipeline_dir / "raw").exists()
    assert sorted(p.name for p in (flow.pipeline_dir / "cache" / "raw").rglob("*.parquet")) == sorted(
        o.key.rsplit("/", 1)[1] for o in raw
    )
    assert read_current(flow.store) == flow.first_release == _served(flow)
    manifest = _manifest(flow.store, flow.first_release)
    for entry in manifest["datasets"].values():
        for f in [*entry["files"], entry["download"]]:
            info = flow.store.info(f"{RELEASES_PREFIX}/{flow.first_release}/{f['path']}")
            assert info is not None and info.size == f["bytes"], f["path"]
    sessions = manifest["datasets"]["charging_sessions"]["rows"]
    assert sessions > 0
    page = httpx.get(flow.api.url + "/v1/datasets/charging_sessions/rows", params={"limit": 1}, timeout=10)
    assert page.status_code == 200
    assert int(page.headers["x-total-count"]) == sessions
    # The API's own disk holds the catalog of the release it serves, and no Parquet file.
    cached = flow.api.data_dir / "cache" / "releases" / flow.first_release
    assert (cached / "catalog.duckdb").is_file()
    assert not list(flow.api.data_dir.rglob("*.parquet"))


def test_the_api_streams_byte_ranges_of_published_files_from_the_store(flow: Flow) -> None:
    release = _served(flow)
    entry = _manifest(flow.store, release)["datasets"]["station_energy_15min"]["download"]
    body = flow.store.read_bytes(f"{RELEASES_PREFIX}/{release}/{entry['path']}")
    sha = entry["hash"].split(":", 1)[1]
    with httpx.Client(base_url=flow.api.url, timeout=30) as client:
        head = client.head(DOWNLOAD)
        assert head.status_code == 200
        assert int(head.headers["content-length"]) == entry["bytes"] == len(body)
        assert head.headers["etag"] == f'"{sha}"'
        assert head.headers["accept-ranges"] == "bytes"
        part = client.get(DOWNLOAD, headers={"Range": "bytes=4-1003"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 4-1003/{len(body)}"
        assert part.content == body[4:1004]
        tail = client.get(DOWNLOAD, headers={"Range": "bytes=-8"})
        assert tail.status_code == 206 and tail.content == body[-8:] and tail.content.endswith(b"PAR1")
        beyond = client.get(DOWNLOAD, headers={"Range": f"bytes={len(body)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(body)}"
        assert client.get(DOWNLOAD, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
        whole = client.get(DOWNLOAD)
        assert whole.status_code == 200
        assert hashlib.sha256(whole.content).hexdigest() == sha
        day = sorted(_manifest(flow.store, release)["datasets"]["station_energy_15min"]["added"])[0]
        one = client.get(DOWNLOAD, params={"date": day})
        assert one.status_code == 200 and one.content.startswith(b"PAR1")


def test_the_api_serves_a_release_newly_published_to_the_store_without_a_restart(
    flow: Flow, env_of_store: None
) -> None:
    before = _served(flow)
    statuses: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(base_url=flow.api.url, timeout=30) as client:
            while not stop.is_set():
                statuses.append(client.get(DOWNLOAD, headers={"Range": "bytes=0-4095"}).status_code)
                page = client.get("/v1/datasets/station_usage_daily/rows", params={"limit": 5})
                statuses.append(page.status_code)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        new = publish(flow.settings()).release_id
        flow.api.wait_for_release(new, timeout=20)
        time.sleep(0.5)
    finally:
        stop.set()
        asker.join(30)
    assert new != before and read_current(flow.store) == new
    assert statuses and set(statuses) <= {200, 206}, sorted(set(statuses))
    # The replaced release's cached catalog is removed once no request uses it any more.
    old_cache = flow.api.data_dir / "cache" / "releases" / before
    deadline = time.monotonic() + 10
    while old_cache.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not old_cache.exists()
    assert (flow.api.data_dir / "cache" / "releases" / new / "catalog.duckdb").is_file()


def test_releases_beyond_releases_kept_are_deleted_from_the_store(flow: Flow, env_of_store: None) -> None:
    ids = [publish(flow.settings(releases_kept=2)).release_id for _ in range(2)]
    kept = stored_release_ids(flow.store, "datapackage.json")
    assert kept == ids
    assert read_current(flow.store) == ids[-1]
    # Only the current release stays in the pipeline's local build area (the base of the next build).
    local = flow.pipeline_dir / "published" / "releases"
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".")) == [ids[-1]]
    flow.api.wait_for_release(ids[-1], timeout=20)


def test_a_pipeline_on_a_new_machine_builds_on_the_stores_current_release(
    flow: Flow, env_of_store: None, tmp_path: Path
) -> None:
    """Incremental reuse works from the store's release when the local build area is empty."""
    fresh = tmp_path / "pipeline2"
    fresh.mkdir()
    for name in ("stations.csv", "areas.geojson"):
        if (flow.pipeline_dir / name).exists():
            (fresh / name).write_bytes((flow.pipeline_dir / name).read_bytes())
    settings = load_settings({"data_dir": fresh, "store": flow.url, "timezone": TIMEZONE})
    with DagsterInstance.ephemeral() as instance:
        summary = runner.run(settings, runner.all_dates(settings), instance=instance)
    manifest = _manifest(flow.store, summary.release_id)
    previous = _manifest(flow.store, manifest["previous_release_id"])
    assert manifest["previous_release_id"] == previous["release_id"]
    assert manifest["rebuilt"]["full"] is False, manifest["rebuilt"]
    for name, entry in manifest["datasets"].items():
        assert entry["download"]["hash"] == previous["datasets"][name]["download"]["hash"], name
    flow.api.wait_for_release(summary.release_id, timeout=20)


def test_with_the_store_down_the_api_answers_from_its_cache_and_downloads_say_503(flow: Flow) -> None:
    release = _served(flow)
    flow.seaweed.stop()
    try:
        with httpx.Client(base_url=flow.api.url, timeout=30) as client:
            rows = client.get("/v1/datasets/station_usage_daily/rows", params={"limit": 5})
            assert rows.status_code == 200
            down = client.get(DOWNLOAD)
            assert down.status_code == 503
            assert "retry-after" in down.headers
            assert client.get("/health").json()["release"] == release
    finally:
        flow.seaweed.start()
    # Back once the store is: the restarted server may take a moment before it serves reads again.
    deadline = time.monotonic() + 20
    while True:
        ok = httpx.get(flow.api.url + DOWNLOAD, headers={"Range": "bytes=0-3"}, timeout=30)
        if ok.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert ok.status_code == 206 and ok.content == b"PAR1"


def _raw_rows(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in store.list("raw"):
        table = obj.key.split("/")[1]
        with store.open_input_file(obj.key) as fh:
            counts[table] = counts.get(table, 0) + pq.ParquetFile(fh).metadata.num_rows
    return counts


def test_raw_compaction_in_the_store_keeps_every_row_and_the_published_data(
    flow: Flow, env_of_store: None
) -> None:
    before_rows = _raw_rows(flow.store)
    before = _manifest(flow.store, read_current(flow.store))  # type: ignore[arg-type]
    settings = flow.settings()
    report = maintain_raw(settings, datetime.now(UTC).date() + timedelta(days=3))
    assert report.compacted_partitions > 0 and report.files_removed > 0
    parts: dict[str, list[str]] = {}
    for obj in flow.store.list("raw"):
        parts.setdefault(obj.key.rsplit("/", 1)[0], []).append(obj.key.rsplit("/", 1)[1])
    # One object per receipt date and table (a date that had one file keeps it as it was).
    assert all(len(names) == 1 for names in parts.values()), parts
    assert any(names[0].startswith("compacted-") for names in parts.values())
    assert _raw_rows(flow.store) == before_rows
    with DagsterInstance.ephemeral() as instance:
        summary = runner.run(settings, runner.all_dates(settings), instance=instance)
    after = _manifest(flow.store, summary.release_id)  # type: ignore[arg-type]
    for name, entry in after["datasets"].items():
        assert entry["download"]["hash"] == before["datasets"][name]["download"]["hash"], name


def test_raw_retention_redacts_idtags_in_the_store(flow: Flow, env_of_store: None) -> None:
    settings = flow.settings()
    tags = set()
    for obj in flow.store.list("raw/transaction_events"):
        with flow.store.open_input_file(obj.key) as fh:
            tags |= {t for t in pq.read_table(fh, columns=["id_tag"])["id_tag"].to_pylist() if t}
    assert tags
    later = datetime.now(UTC).date() + timedelta(days=settings.raw_retention_days + 1)
    assert maintain_raw(settings, later).redacted_partitions > 0
    keys = [o.key for o in flow.store.list("raw/transaction_events")]
    assert keys and all(k.rsplit("/", 1)[1].startswith("redacted-") for k in keys)
    for key in keys:
        with flow.store.open_input_file(key) as fh:
            left = set(pq.read_table(fh, columns=["id_tag"])["id_tag"].to_pylist())
        assert not left & tags
