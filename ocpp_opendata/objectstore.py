"""The one storage module: the raw zone and the releases live in a local folder or in S3, used alike.

Every stage reaches the shared store only through `Store`, built on pyarrow's filesystem layer (pyarrow is
already how we write Parquet, and its S3 client needs no extra package). Keys are POSIX paths relative to
the store's root, the same layout in both cases: `raw/<table>/date=.../x.parquet`,
`published/releases/<id>/...`, `published/CURRENT`.

DATA_DIR always stays on local disk: the write-ahead log must be fsync'd locally (durability must not hang
on the network), and DuckDB here cannot read S3 itself (its httpfs extension cannot be downloaded), so the
pipeline and the API work on local copies of the immutable files they need.

S3 settings come from the usual AWS variables, never from our settings or the repository:
AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (an S3-compatible server such as SeaweedFS or MinIO),
AWS_REGION / AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or any other source of the
AWS default credential chain, which pyarrow's client walks when no key is given).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

# Whole-object copies stream in blocks of this size, so memory stays flat for big Parquet files.
_COPY_BLOCK = 8 * 1024 * 1024


class StoreError(RuntimeError):
    """The store could not be reached or refused an operation; the message names the key, never a secret."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    mtime_ns: int


def _s3_filesystem(env: Mapping[str, str]) -> pafs.S3FileSystem:
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    kwargs: dict[str, Any] = {
        "region": region,
        # Bounded waits: a store that is down must surface as an error the caller retries with its own
        # back-off (the listener's uploader), not as a call that hangs the pipeline or the API.
        "connect_timeout": float(env.get("OCPP_OPENDATA_STORE_CONNECT_TIMEOUT", "3")),
        "request_timeout": float(env.get("OCPP_OPENDATA_STORE_REQUEST_TIMEOUT", "30")),
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if endpoint:
        kwargs["endpoint_override"] = endpoint
        # S3-compatible servers are usually addressed by path, not by virtual host.
        kwargs["force_virtual_addressing"] = False
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs["access_key"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = env["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)


class Store:
    """A root (local folder or `s3://bucket/prefix`) with whole-object operations on relative keys."""

    def __init__(self, url: str, fs: pafs.FileSystem, root: str, local_root: Path | None) -> None:
        self.url = url
        self._fs = fs
        self._root = root.rstrip("/")
        # Set for a local store: callers that work on files (DuckDB, hard links) use the path directly.
        self.local_root = local_root

    @property
    def is_remote(self) -> bool:
        return self.local_root is None

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _path(self, key: str) -> str:
        clean = key.strip("/")
        if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
            raise StoreError(f"invalid store key {key!r}")
        return f"{self._root}/{clean}"

    def _key(self, path: str) -> str:
        return path[len(self._root) + 1 :]

    def local_path(self, key: str) -> Path | None:
        """Where a key lives on this machine's disk, for a local store; None for a remote one."""
        return None if self.local_root is None else self.local_root / key

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        return StoreError(f"{action} {self.url.rstrip('/')}/{key}: {exc}")

    def info(self, key: str) -> ObjectInfo | None:
        try:
            fi = self._fs.get_file_info(self._path(key))
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("stat", key, exc) from exc
        if fi.type != pafs.FileType.File:
            return None
        return ObjectInfo(key, fi.size or 0, fi.mtime_ns or 0)

    def exists(self, key: str) -> bool:
        return self.info(key) is not None

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object below `prefix` (recursive), sorted by key; an absent prefix lists nothing."""
        selector = pafs.FileSelector(self._path(prefix), recursive=True, allow_not_found=True)
        try:
            infos = self._fs.get_file_info(selector)
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("list", prefix, exc) from exc
        out = [
            ObjectInfo(self._key(fi.path), fi.size or 0, fi.mtime_ns or 0)
            for fi in infos
            if fi.type == pafs.FileType.File and not _is_temporary(fi.base_name)
        ]
        return sorted(out, key=lambda o: o.key)

    def put_file(self, local: Path, key: str) -> None:
        """Upload a file; readers see the whole object or nothing (S3 PUT; a rename on local disk)."""
        try:
            if self.local_root is not None:
                _copy_local_atomically(local, self.local_root / key)
                return
            with open(local, "rb") as src, self._fs.open_output_stream(self._path(key)) as dst:
                while block := src.read(_COPY_BLOCK):
                    dst.write(block)
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("upload to", key, exc) from exc

    def get_file(self, key: str, local: Path) -> None:
        """Download an object to a local file, atomically (a temporary name, then a rename)."""
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
        try:
            with self._fs.open_input_stream(self._path(key)) as src, open(tmp, "wb") as dst:
                while block := src.read(_COPY_BLOCK):
                    dst.write(block)
            os.replace(tmp, local)
        except (OSError, pa.ArrowException) as exc:
            tmp.unlink(missing_ok=True)
            raise self._fail("download", key, exc) from exc

    def read_bytes(self, key: str) -> bytes:
        try:
            with self._fs.open_input_stream(self._path(key)) as src:
                return src.read()
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("read", key, exc) from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            if self.local_root is not None:
                target = self.local_root / key
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
                return
            with self._fs.open_output_stream(self._path(key)) as dst:
                dst.write(data)
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("write", key, exc) from exc

    def open_input_file(self, key: str) -> pa.NativeFile:
        """A seekable reader: ranges of a remote object are fetched with HTTP Range requests."""
        try:
            return self._fs.open_input_file(self._path(key))
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("open", key, exc) from exc

    def delete(self, key: str) -> None:
        try:
            self._fs.delete_file(self._path(key))
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as exc:
            raise self._fail("delete", key, exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        for obj in self.list(prefix):
            self.delete(obj.key)


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".part")


def _copy_local_atomically(src: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        while block := fin.read(_COPY_BLOCK):
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, target)


def open_store(url: str, data_dir: Path, env: Mapping[str, str] | None = None) -> Store:
    """The store named by `url` ('' or a local path: DATA_DIR or that folder; 's3://bucket/prefix': S3)."""
    env = os.environ if env is None else env
    if not url:
        root = data_dir.resolve()
        return Store(str(root), pafs.LocalFileSystem(), str(root), root)
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not bucket:
            raise StoreError(f"store {url!r}: expected s3://bucket/prefix")
        prefix = parsed.path.strip("/")
        root = f"{bucket}/{prefix}" if prefix else bucket
        return Store(f"s3://{root}", _s3_filesystem(env), root, None)
    if parsed.scheme in ("", "file"):
        root = Path(parsed.path if parsed.scheme else url).resolve()
        return Store(str(root), pafs.LocalFileSystem(), str(root), root)
    raise StoreError(f"store {url!r}: only a local path or s3://bucket/prefix is supported")


def store_for(settings: Any) -> Store:
    """The store of a `Settings` object (its `store` and `data_dir` fields)."""
    return open_store(settings.store, settings.data_dir)


def mirror(store: Store, prefix: str, local_root: Path) -> list[Path]:
    """Copy the objects below `prefix` to `local_root/<key>`, skipping those already there at full size.

    Raw files and release files are immutable once written (names are unique), so a file of the right
    size is the right file. Returns the local paths of all objects below the prefix. For a local store
    whose root is `local_root` already, nothing is copied.
    """
    paths = []
    for obj in store.list(prefix):
        target = local_root / obj.key
        if store.local_root is not None and store.local_root.resolve() == local_root.resolve():
            paths.append(target)
            continue
        if not (target.exists() and target.stat().st_size == obj.size):
            store.get_file(obj.key, target)
        paths.append(target)
    return paths
