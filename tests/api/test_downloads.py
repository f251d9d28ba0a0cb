"""Downloads: HEAD, Range/206/416, ETag/304, Last-Modified, media type, CSV, and no way out of a release."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import httpx
import pyarrow.parquet as pq

PARQUET = "application/vnd.apache.parquet"
URL = "/v1/datasets/station_energy_15min/download.parquet"


def test_head_gives_the_length_and_get_the_exact_bytes_of_the_published_file(
    client: httpx.Client, release_dir: Path
) -> None:
    data = (release_dir / "downloads" / "station_energy_15min.parquet").read_bytes()
    head = client.head(URL)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["content-type"] == PARQUET
    assert head.headers["accept-ranges"] == "bytes" and head.headers["last-modified"]
    got = client.get(URL)
    assert got.content == data and "content-encoding" not in got.headers


def test_ranges_give_206_with_the_requested_bytes_and_416_past_the_end(
    client: httpx.Client, release_dir: Path
) -> None:
    data = (release_dir / "downloads" / "station_energy_15min.parquet").read_bytes()
    part = client.get(URL, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = client.get(URL, headers={"Range": "bytes=-8"})
    assert tail.status_code == 206 and tail.content == data[-8:] and tail.content.endswith(b"PAR1")
    beyond = client.get(URL, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
    assert "range" in beyond.json()["error"]


def test_an_etag_revalidates_to_304_and_a_stale_if_range_gets_the_whole_file(client: httpx.Client) -> None:
    first = client.get(URL)
    etag = first.headers["etag"]
    again = client.get(URL, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    stale = client.get(URL, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and len(stale.content) == len(first.content)


def _partitions(release_dir: Path, name: str) -> list[Path]:
    return sorted((release_dir / "datasets" / name).glob("date=*/part-0.parquet"))


def test_one_partition_can_be_downloaded_by_date(client: httpx.Client, release_dir: Path) -> None:
    expected = _partitions(release_dir, "station_energy_15min")[-1]
    r = client.get(URL, params={"date": expected.parent.name.removeprefix("date=")})
    assert r.headers["content-type"] == PARQUET and r.content == expected.read_bytes()
    assert client.get(URL, params={"date": "2025-01-01"}).status_code == 404
    assert client.get(URL, params={"date": "not-a-date"}).status_code == 400
    assert (
        client.get("/v1/datasets/stations/download.parquet", params={"date": "2026-03-28"}).status_code == 400
    )


def test_csv_downloads_stream_every_row_and_have_an_excel_friendly_form(
    client: httpx.Client, release_dir: Path
) -> None:
    expected = pq.read_table(release_dir / "downloads" / "station_availability_hourly.parquet").num_rows
    r = client.get("/v1/datasets/station_availability_hourly/download.csv")
    assert r.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == expected
    excel = client.get("/v1/datasets/stations/download.csv", params={"excel": "true"})
    assert excel.content.startswith(b"\xef\xbb\xbf") and b"\r\n" in excel.content
    date = _partitions(release_dir, "charging_sessions")[0].parent.name.removeprefix("date=")
    day = client.get("/v1/datasets/charging_sessions/download.csv", params={"date": date})
    assert {row["date"] for row in csv.DictReader(io.StringIO(day.text))} == {date}


def test_head_of_a_streamed_csv_claims_no_length_and_matches_the_get_headers(client: httpx.Client) -> None:
    url = "/v1/datasets/station_availability_hourly/download.csv"
    head = client.head(url, headers={"Accept-Encoding": "identity"})
    got = client.get(url, headers={"Accept-Encoding": "identity"})
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert "content-length" not in head.headers and "content-length" not in got.headers
    assert got.headers["transfer-encoding"] == "chunked" and len(got.content) > 0
    for name in ("content-type", "content-disposition", "etag", "x-release", "cache-control"):
        assert head.headers[name] == got.headers[name], name


def test_traversal_encoded_slashes_absolute_paths_and_symlinks_lead_nowhere(
    client: httpx.Client,
    release_dir: Path,
    api,  # type: ignore[no-untyped-def]
) -> None:
    raw = api.data_dir / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "secret.parquet").write_bytes(b"PAR1 raw zone PAR1")
    link = _partitions(release_dir, "station_energy_15min")[0]
    date = link.parent.name.removeprefix("date=")
    original = link.read_bytes()
    attempts = [
        "/v1/datasets/../raw/download.parquet",
        "/v1/datasets/..%2F..%2Fraw/download.parquet",
        "/v1/datasets/%2Fetc%2Fpasswd/download.parquet",
        "/v1/datasets/station_energy_15min/download.parquet?date=../../raw",
        "/v1/releases/..%2F..%2Fraw/datasets/stations/download.parquet",
        "/v1/datasets/station_energy_15min%2F..%2F..%2F..%2Fraw/download.parquet",
    ]
    for path in attempts:
        r = httpx.get(api.url + path)
        assert r.status_code in (400, 404), path
        assert b"raw zone" not in r.content and str(api.data_dir) not in r.text
    # A symlink planted inside a release (it never should be) is not followed.
    moved = link.with_suffix(".orig")
    os.replace(link, moved)
    try:
        os.symlink(raw / "secret.parquet", link)
        r = client.get(URL, params={"date": date})
        assert r.status_code == 404 and b"raw zone" not in r.content
    finally:
        link.unlink()
        os.replace(moved, link)
    assert link.read_bytes() == original
