"""Conditional GET/HEAD (RFC 9110 §13): one evaluation of the four preconditions for every answer.

The order is the RFC's (§13.2.2): If-Match, else If-Unmodified-Since (412 Precondition Failed when false),
then If-None-Match, else If-Modified-Since (304 Not Modified when false). Preconditions apply only to an
answer that would be a 200; a 404 stays a 404.

If-Match compares strongly (§13.1.1): the weak ETags of computed answers (`W/"..."`) never match it, so
only `If-Match: *` passes there, while downloads carry strong ETags (content digests) that do.
If-None-Match compares weakly (§13.1.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

PRECONDITION_FAILED = 412
NOT_MODIFIED = 304


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def _strong_match(header: str, etag: str) -> bool:
    tags = _tags(header)
    return "*" in tags or (not etag.startswith("W/") and etag in tags)


def _weak_match(header: str, etag: str) -> bool:
    opaque = etag.removeprefix("W/")
    return any(t == "*" or t.removeprefix("W/") == opaque for t in _tags(header))


def _http_date(value: str) -> float | None:
    """Seconds since the epoch, or None for a value that is not an HTTP-date (then it is ignored)."""
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def evaluate(headers: Mapping[str, str], etag: str | None, last_modified: float | None) -> int | None:
    """412, 304 or None (answer normally) for a request's lower-cased `headers` and the answer's
    validators (`etag` as sent, `last_modified` in seconds; None where the answer has none)."""
    if_match = headers.get("if-match")
    if if_match is not None:
        if etag is None or not _strong_match(if_match, etag):
            return PRECONDITION_FAILED
    elif last_modified is not None and "if-unmodified-since" in headers:
        since = _http_date(headers["if-unmodified-since"])
        if since is not None and int(last_modified) > since:
            return PRECONDITION_FAILED
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return NOT_MODIFIED if etag is not None and _weak_match(if_none_match, etag) else None
    if last_modified is not None and "if-modified-since" in headers:
        since = _http_date(headers["if-modified-since"])
        if since is not None and int(last_modified) <= since:
            return NOT_MODIFIED
    return None


def decoded(raw: list[tuple[bytes, bytes]] | Mapping[bytes, bytes]) -> dict[str, str]:
    """ASGI headers as a dict of lower-cased strings (the last value of a repeated header wins)."""
    items = raw.items() if isinstance(raw, Mapping) else raw
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in items}
