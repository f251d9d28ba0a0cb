"""Serving published files: safe opening, HEAD, Range (206/416), conditional requests (304/412, see
api/conditional.py), Last-Modified.

Multiple ranges in one request are coalesced into the single range covering them (RFC 9110 §14.2 allows
this), which is what remote Parquet readers need and keeps the answer a plain 206.

A file is either on local disk (`OpenFile`) or an object of the shared store (`StoreFile`, read with
S3 Range requests as the client's ranges ask); both answer the same way.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import anyio
import pyarrow as pa
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.conditional import NOT_MODIFIED, PRECONDITION_FAILED, decoded, evaluate
from api.errors import ApiError, error_response

CHUNK = 256 * 1024
STORE_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class OpenFile:
    fd: int
    size: int
    mtime: float
    etag: str
    chunk: int = CHUNK

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)

    def read(self, n: int, offset: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class StoreFile:
    """An object of the shared store, opened for ranged reads; size and ETag come from the manifest."""

    source: pa.NativeFile
    size: int
    mtime: float
    etag: str
    # Each read is one GET to the store: bigger chunks than on local disk keep the request count low.
    chunk: int = STORE_CHUNK

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)

    def read(self, n: int, offset: int) -> bytes:
        return self.source.read_at(n, offset)

    def close(self) -> None:
        self.source.close()


ServedFile = OpenFile | StoreFile


def open_release_file(root: Path, relative: Path, missing: str) -> OpenFile:
    """Open a regular file strictly inside `root`, never through a symlink; 404 with `missing` otherwise."""
    full = root / relative
    real = os.path.realpath(full)
    if not real.startswith(str(root) + os.sep) or real != str(full):
        raise ApiError(404, missing)
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
            raise ApiError(404, missing) from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ApiError(404, missing)
    # Published files are immutable, so size and modification time identify the content.
    return OpenFile(fd, st.st_size, st.st_mtime, f'"{st.st_size:x}-{st.st_mtime_ns:x}"')


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None to ignore the header (send everything), or "unsatisfiable"."""
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    spans: list[tuple[int, int]] = []
    for part in header.split("=", 1)[1].split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            return None
        try:
            if first == "":
                suffix = int(last)
                if suffix < 0:
                    return None
                if suffix == 0 or size == 0:
                    continue
                spans.append((max(0, size - suffix), size - 1))
                continue
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if start >= size:
            continue
        if start < 0 or end < start:
            return None
        spans.append((start, min(end, size - 1)))
    if not spans:
        return "unsatisfiable"
    return min(s for s, _ in spans), max(e for _, e in spans)


class FileAnswer(Response):
    """An ASGI answer for one opened file; it owns `f` and closes it when done."""

    def __init__(
        self,
        f: ServedFile,
        media_type: str,
        filename: str,
        headers: dict[str, str],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(status_code=200)
        self.f = f
        self.media_type = media_type
        self.filename = filename
        self.extra = headers
        self.on_bytes = on_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._answer(scope, send)
            if self.background is not None:
                await self.background()
        finally:
            self.f.close()

    async def _answer(self, scope: Scope, send: Send) -> None:
        f = self.f
        req = decoded(scope["headers"])
        headers = {
            **self.extra,
            "etag": f.etag,
            "last-modified": f.last_modified,
            "accept-ranges": "bytes",
            "content-type": self.media_type,
            "content-disposition": f'attachment; filename="{self.filename}"',
        }
        condition = evaluate(req, f.etag, f.mtime)
        if condition == PRECONDITION_FAILED:
            answer = error_response(
                412,
                "precondition failed: the file is not the one If-Match or If-Unmodified-Since names",
                {"ETag": f.etag},
            )
            await answer(scope, _noop_receive, send)
            return
        if condition == NOT_MODIFIED:
            headers.pop("content-type")
            await self._start(send, 304, headers, None)
            await send({"type": "http.response.body", "body": b""})
            return
        wanted = parse_range(req.get("range"), f.size)
        if_range = req.get("if-range")
        if if_range is not None and if_range.strip() != f.etag:
            wanted = None
        if wanted == "unsatisfiable":
            answer = error_response(
                416,
                f"requested range not satisfiable: the file has {f.size} bytes",
                {"Content-Range": f"bytes */{f.size}"},
            )
            await answer(scope, _noop_receive, send)
            return
        status, start, end = 200, 0, f.size - 1
        if isinstance(wanted, tuple):
            status, (start, end) = 206, wanted
            headers["content-range"] = f"bytes {start}-{end}/{f.size}"
        length = max(0, end - start + 1)
        if scope.get("api.head") or length == 0:
            await self._start(send, status, headers, length)
            await send({"type": "http.response.body", "body": b""})
            return
        # The first chunk is read before the status is sent: a store that cannot be read gets a 503
        # rather than a truncated 200. A failure later can only cut the body short (Content-Length tells).
        try:
            first: bytes | None = await anyio.to_thread.run_sync(f.read, min(f.chunk, length), start)
        except OSError:
            answer = error_response(503, "the file cannot be read right now; try again", {"Retry-After": "5"})
            await answer(scope, _noop_receive, send)
            return
        await self._start(send, status, headers, length)
        offset = start
        while offset <= end:
            n = min(f.chunk, end - offset + 1)
            if first is not None:
                chunk, first = first, None
            else:
                chunk = await anyio.to_thread.run_sync(f.read, n, offset)
            if not chunk:
                break
            offset += len(chunk)
            if self.on_bytes:
                self.on_bytes(len(chunk))
            await send({"type": "http.response.body", "body": chunk, "more_body": offset <= end})
        if offset <= end:
            await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _start(send: Send, status: int, headers: dict[str, str], length: int | None) -> None:
        if length is not None:
            headers["content-length"] = str(length)
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})


async def _noop_receive() -> dict[str, str]:
    return {"type": "http.disconnect"}
