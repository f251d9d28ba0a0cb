"""Connections that never finish a request are closed; the connection cap holds (issue 20, item 8)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiServer, start_api

HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def strict(published: tuple[Path, str]) -> Iterator[ApiServer]:
    data_dir, release_id = published
    server = start_api(data_dir, "--api-header-timeout", str(HEADER_TIMEOUT), "--api-keep-alive", "1")
    try:
        server.wait_for_release(release_id, timeout=30)
        yield server
    finally:
        server.stop()


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes `sock` (reading whatever it sends first)."""
    sock.settimeout(limit)
    started = time.monotonic()
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def test_a_connection_that_sends_half_a_request_is_closed_within_the_header_timeout(
    strict: ApiServer,
) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\n")
        assert _closed_after(sock, 10) < HEADER_TIMEOUT + 1


def test_a_slow_drip_of_header_bytes_does_not_extend_the_timeout(strict: ApiServer) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /v1/datasets HTTP/1.1\r\n")
        closed_at = None
        while time.monotonic() - started < 5:
            time.sleep(0.1)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:  # reset by the server: the connection is gone
                closed_at = time.monotonic() - started
                break
        assert closed_at is not None and closed_at < HEADER_TIMEOUT + 1, closed_at


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response: headers and body may arrive in separate segments."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed_and_a_kept_alive_one_serves_the_next_request(
    strict: ApiServer,
) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        assert _closed_after(sock, 10) < HEADER_TIMEOUT + 1
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        for _ in range(2):
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        # Then idle: closed by the keep-alive (1 s) or the header timeout, whichever is first.
        assert _closed_after(sock, 10) < HEADER_TIMEOUT + 1


def test_connections_beyond_the_cap_get_503(published: tuple[Path, str]) -> None:
    data_dir, release_id = published
    server = start_api(data_dir, "--api-max-connections", "5", "--api-header-timeout", "30")
    idle: list[socket.socket] = []
    try:
        server.wait_for_release(release_id, timeout=30)
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(6)]
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.settimeout(5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 503")
    finally:
        for s in idle:
            s.close()
        server.stop()
