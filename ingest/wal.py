"""The write-ahead log: length-prefixed, checksummed records, appended and fsync'd in batches.

One folder per listener process (`<wal root>/<instance id>/`), held with an exclusive `flock` for
the process's life. The kernel drops the lock when a process dies, even by `kill -9`, so any
listener starting later can tell an orphaned folder from a live one and recover it.
A record is `<u32 length><u32 crc32><payload>`; a torn or corrupt tail ends the readable log (it
belongs to a batch whose fsync never completed, so nothing in it was acknowledged).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HEADER = struct.Struct("<II")
SEGMENT_SUFFIX = ".wal"
HOST_ID_FILE = "HOST_ID"


def encode(record: dict[str, Any]) -> bytes:
    payload = orjson.dumps(record)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_segment(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = 0
    while pos + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, pos)
        start, end = pos + HEADER.size, pos + HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        records.append(orjson.loads(data[start:end]))
        pos = end
    return records


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def host_id(root: Path) -> str:
    """A random id of this WAL root, made once and kept in it: two machines (two WAL roots) writing
    to one bucket then never produce the same file name, whatever their clocks and random draws."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / HOST_ID_FILE
    if not path.exists():
        tmp = root / f".{HOST_ID_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(uuid.uuid4().hex[:8] + "\n")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if a process starting at the same moment made one first
            fsync_dir(root)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def segment_name(seq: int) -> str:
    return f"{seq:08d}{SEGMENT_SUFFIX}"


def _lock(folder: Path, blocking: bool) -> int | None:
    fd = os.open(folder / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


@dataclass
class ClosedSegment:
    path: Path
    seq: int
    bytes: int


class WriteAheadLog:
    def __init__(self, root: Path, instance_id: str) -> None:
        self.folder = root / instance_id
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = _lock(self.folder, blocking=True)
        assert lock is not None
        self._lock_fd = lock
        self.seq = 0
        self.size = 0
        self._fd = -1
        self._open_next()

    def _open_next(self) -> None:
        self.seq += 1
        self.size = 0
        self._fd = os.open(
            self.folder / segment_name(self.seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
        )
        # The new file's directory entry must be durable before anything in it is acknowledged.
        fsync_dir(self.folder)

    def write_batch(self, data: bytes) -> None:
        """Append and fsync; on failure (e.g. a full disk) cut the partial batch off again."""
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self.size)
            raise
        self.size += len(data)

    def rotate(self) -> ClosedSegment:
        closed = ClosedSegment(self.folder / segment_name(self.seq), self.seq, self.size)
        os.close(self._fd)
        self._open_next()
        return closed

    def close(self) -> None:
        """Close the (empty, already rotated) current segment and release the folder."""
        os.close(self._fd)
        current = self.folder / segment_name(self.seq)
        if current.exists() and current.stat().st_size == 0:
            current.unlink()
        if not any(self.folder.glob("*" + SEGMENT_SUFFIX)):
            shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._lock_fd)


def orphaned_folders(root: Path) -> Iterator[tuple[Path, list[Path]]]:
    """WAL folders of processes that are gone, with their segments in order; locked while yielded."""
    if not root.exists():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        fd = _lock(folder, blocking=False)
        if fd is None:
            continue  # a live listener owns it
        try:
            yield folder, sorted(folder.glob("*" + SEGMENT_SUFFIX))
        finally:
            os.close(fd)
