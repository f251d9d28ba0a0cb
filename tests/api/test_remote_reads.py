"""Researchers read published Parquet remotely with HTTP ranges: one column of one row group is cheap.

DuckDB's httpfs extension cannot be installed on this offline machine; docs/api.md shows the DuckDB
snippet. Polars and pyarrow are exercised here; the server counts the file bytes it sends (/metrics).
The file is the large synthetic release's (tests/api/builder.py): the bound only means something for a
file much larger than the readers' fixed metadata reads (pyarrow ~64 KiB, polars ~256 KiB of footer).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tests.api.conftest import ApiServer

NAME = "station_energy_15min"


class HttpRangeFile(io.RawIOBase):
    """A seekable read-only file over HTTP Range requests, for pyarrow."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(timeout=30)
        self.url = url
        self.size = int(self.client.head(url).headers["content-length"])
        self.pos = 0

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        r = self.client.get(self.url, headers={"Range": f"bytes={self.pos}-{self.pos + n - 1}"})
        assert r.status_code == 206
        buffer[: len(r.content)] = r.content
        self.pos += len(r.content)
        return len(r.content)


def _bytes_sent(api_url: str) -> int:
    text = httpx.get(api_url + "/metrics").text
    found = re.search(rf'api_file_bytes_total{{file="{NAME}"}} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_pyarrow_reads_one_column_of_one_row_group_with_a_tenth_of_the_bytes(
    synthetic_api: ApiServer, synthetic: tuple[Path, str]
) -> None:
    api, release_dir = synthetic_api, synthetic[0] / "published" / "releases" / synthetic[1]
    url = f"{api.url}/v1/datasets/{NAME}/download.parquet"
    size = (release_dir / "downloads" / f"{NAME}.parquet").stat().st_size
    before = _bytes_sent(api.url)
    remote = pq.ParquetFile(pa.PythonFile(HttpRangeFile(url), mode="r"))
    assert remote.metadata.num_row_groups > 1
    column = remote.read_row_group(1, columns=["energy_kwh"])
    sent = _bytes_sent(api.url) - before
    local = pq.ParquetFile(release_dir / "downloads" / f"{NAME}.parquet").read_row_group(
        1, columns=["energy_kwh"]
    )
    assert column.equals(local)
    assert 0 < sent <= size * 0.10, (sent, size)


def test_polars_scans_remote_parquet_and_reads_only_what_it_needs(
    synthetic_api: ApiServer, synthetic: tuple[Path, str]
) -> None:
    api, release_dir = synthetic_api, synthetic[0] / "published" / "releases" / synthetic[1]
    url = f"{api.url}/v1/datasets/{NAME}/download.parquet"
    local_path = release_dir / "downloads" / f"{NAME}.parquet"
    size = local_path.stat().st_size
    rows_per_group = pq.ParquetFile(local_path).metadata.row_group(0).num_rows
    before = _bytes_sent(api.url)
    got = pl.scan_parquet(url).select("energy_kwh").head(rows_per_group).collect()
    sent = _bytes_sent(api.url) - before
    expected = pl.read_parquet(local_path).select("energy_kwh").head(rows_per_group)
    assert got.equals(expected)
    assert 0 < sent <= size * 0.10, (sent, size)
