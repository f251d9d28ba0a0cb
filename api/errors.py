"""Client errors: every bad input becomes a 4xx whose message names the problem, never a server path."""

from __future__ import annotations

import re

import orjson
from starlette.responses import Response

# Absolute paths (POSIX) as they may appear in library messages, e.g. DuckDB's "Cannot access file".
_PATH = re.compile(r"(?<![\w:])/(?:[\w.@+-]+/)*[\w.@*+-]*")


class ApiError(Exception):
    """Raised by routes for anything the client got wrong (or may retry), answered as JSON."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message, "status": status})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def scrub_paths(message: str, allowed: str = "") -> str:
    """Replace absolute paths in a message by `<path>`, except those the client itself wrote in `allowed`."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if len(text) <= 1 or (allowed and text in allowed):
            return text
        return "<path>"

    return _PATH.sub(replace, message)
