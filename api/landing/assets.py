"""The landing page's own static files (`api/landing/static/`), served from memory under `/static/<name>`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC_DIR = Path(__file__).with_name("static")

# The strict allowlist: a request names one of these or gets a 404; nothing else is ever read from disk.
STATIC_FILES: dict[str, str] = {
    "landing.js": "text/javascript; charset=utf-8",
    "landing.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    # Short content hash: the page links `/static/<name>?v=<version>`, so a changed file is a new URL.
    version: str


def static_asset(name: str) -> Asset | None:
    """The allowlisted file `name`, or None for any other name."""
    if name not in STATIC_FILES:
        return None
    return _load(name)


@cache
def _load(name: str) -> Asset:
    body = (STATIC_DIR / name).read_bytes()
    return Asset(name, body, STATIC_FILES[name], hashlib.sha256(body).hexdigest()[:12])


def static_url(name: str) -> str:
    asset = static_asset(name)
    if asset is None:
        raise KeyError(name)
    return f"/static/{name}?v={asset.version}"
