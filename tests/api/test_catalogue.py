"""The catalogue: datasets, one dataset's schema and checksums, metadata files, releases."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from pipelines.published_schema import DATASETS


def test_the_catalogue_lists_every_published_dataset_with_rows_coverage_licence_and_links(
    client: httpx.Client, release_dir: Path
) -> None:
    body = client.get("/v1/datasets").json()
    assert [d["name"] for d in body["datasets"]] == list(DATASETS)
    for d in body["datasets"]:
        assert (
            d["rows"] == pq.ParquetFile(release_dir / "downloads" / f"{d['name']}.parquet").metadata.num_rows
        )
        assert d["licenses"][0]["name"] == "CC-BY-4.0"
        assert d["links"]["parquet"] == f"/v1/datasets/{d['name']}/download.parquet"
    sessions = next(d for d in body["datasets"] if d["name"] == "charging_sessions")
    plug_ins = pq.read_table(release_dir / "downloads" / "charging_sessions.parquet").column("plug_in")
    assert sessions["temporal_coverage"]["start"] == min(plug_ins.to_pylist()).isoformat()


def test_a_dataset_documents_its_columns_units_partitions_and_checksums(
    client: httpx.Client, release_dir: Path
) -> None:
    body = client.get("/v1/datasets/station_energy_15min").json()
    ds = DATASETS["station_energy_15min"]
    assert [f["name"] for f in body["schema"]["fields"]] == ds.column_names
    energy = next(f for f in body["schema"]["fields"] if f["name"] == "energy_kwh")
    assert energy["unit"] == "kWh" and energy["description"]
    package = json.loads((release_dir / "datapackage.json").read_text())
    resource = next(r for r in package["resources"] if r["name"] == "station_energy_15min")
    assert body["checksums"]["hash"] == resource["hash"]
    on_disk = sorted(
        p.parent.name.removeprefix("date=") for p in (release_dir / "datasets" / ds.name).glob("*/*")
    )
    assert [p["date"] for p in body["partitions"]] == on_disk


def test_metadata_files_are_served_as_published(client: httpx.Client, release_dir: Path) -> None:
    assert client.get("/v1/datapackage.json").json() == json.loads(
        (release_dir / "datapackage.json").read_text()
    )
    dcat = client.get("/v1/dcat.jsonld")
    assert dcat.headers["content-type"].startswith("application/ld+json")
    assert dcat.json() == json.loads((release_dir / "dcat.jsonld").read_text())
    assert client.get("/v1/manifest.json").json()["release_id"] == release_dir.name


def test_each_kept_release_is_listed_and_servable_under_its_own_id(
    client: httpx.Client, release_dir: Path
) -> None:
    listing = client.get("/v1/releases").json()
    assert listing["current"] == release_dir.name
    assert release_dir.name in [r["id"] for r in listing["releases"]]
    pinned = client.get(f"/v1/releases/{release_dir.name}/datasets/stations/rows")
    current = client.get("/v1/datasets/stations/rows")
    assert pinned.json()["rows"] == current.json()["rows"]
    assert "immutable" in pinned.headers["cache-control"]
    assert client.get(f"/v1/releases/{release_dir.name}").json()["manifest"]["release_id"] == release_dir.name


def test_unknown_datasets_and_releases_are_404_with_a_message(client: httpx.Client) -> None:
    for path in ("/v1/datasets/no_such", "/v1/releases/20990101T000000Z-abcdef/datasets", "/v1/nothing"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]
    bad_id = client.get("/v1/releases/..%2F..%2Fraw/datasets")
    assert bad_id.status_code in (400, 404)
