"""Operator tokens: random bearer tokens, of which the file keeps only a salted hash, a name and a role.

A token is `oo_<id>_<secret>`: the id (8 letters) finds the line, the secret (256 random bits) is
checked against `sha256(salt ‖ secret)` with a constant-time comparison. A slow password hash (as for
chargers' Basic-auth passwords, ingest/auth.py) protects guessable secrets; these are random and
unguessable, so a fast hash loses nothing and keeps every request's check in microseconds.

One line per token: `<id> <name> <role> sha256$<salt hex>$<hash hex>`. Revoking is deleting its line;
the listener reads the file again whenever its modification time or size changes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROLES = ("read", "control")
PREFIX = "oo_"
_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_TOKEN = re.compile(r"^oo_([a-z]{8})_([A-Za-z0-9_-]{43})$")
# Compared against when the token's id is unknown, so that a miss costs what a hit costs.
_DUMMY = ("0" * 32, "0" * 64)


@dataclass(frozen=True)
class Operator:
    name: str
    role: str

    @property
    def may_control(self) -> bool:
        return self.role == "control"


@dataclass(frozen=True)
class _Entry:
    name: str
    role: str
    salt: str
    digest: str


def _digest(salt_hex: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt_hex) + secret.encode()).hexdigest()


def _read(path: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    if not path.exists():
        return entries
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[3].startswith("sha256$"):
            continue  # a comment or a damaged line grants nothing
        _, salt, digest = parts[3].split("$", 2)
        if parts[2] in ROLES:
            entries[parts[0]] = _Entry(parts[1], parts[2], salt, digest)
    return entries


def create_token(path: Path, name: str, role: str) -> str:
    """Add a token for `name` with `role` to the file (created 0600) and return the token, once."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not _NAME.match(name):
        raise ValueError("name: 1 to 64 letters, digits or . _ @ -")
    token_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    lines = path.read_text().splitlines() if path.exists() else []
    lines.append(f"{token_id} {name} {role} sha256${salt}${_digest(salt, secret)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokens-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return f"{PREFIX}{token_id}_{secret}"


class TokenFile:
    """The token file as the listener sees it: re-read when it changes, checked in constant time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, _Entry] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._entries = _read(self.path)
            self._stamp = stamp

    def operator(self, token: str | None) -> Operator | None:
        """Who holds `token`, or None (unknown, revoked, malformed or missing)."""
        self._refresh()
        found = _TOKEN.match(token or "")
        token_id, secret = (found.group(1), found.group(2)) if found else ("", "")
        entry = self._entries.get(token_id)
        salt, digest = (entry.salt, entry.digest) if entry else _DUMMY
        ok = hmac.compare_digest(_digest(salt, secret), digest)
        if entry is None or not ok or not found:
            return None
        return Operator(entry.name, entry.role)
