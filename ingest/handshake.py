"""Opening handshake: who is connecting (URL path, Basic auth) and which OCPP version they speak."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import unicodedata
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from ingest.auth import verify_password

MAX_ID_LENGTH = 48  # OCPP 2.0.1 identifierString[48] for the charging station identity


class HandshakeRefused(Exception):
    def __init__(self, status: int, reason: str, requested_id: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.requested_id = requested_id


def charge_point_id_from_path(path: str) -> str:
    """`/ocpp/{id}` or `/{id}`, percent-decoded and validated. Never used to build a file path."""
    raw_path = urlsplit(path).path
    encoded = raw_path.removeprefix("/ocpp/") if raw_path.startswith("/ocpp/") else raw_path[1:]
    shown = encoded[:100]
    if not encoded:
        raise HandshakeRefused(404, "no charge point id in the URL path", shown)
    if "/" in encoded:
        raise HandshakeRefused(404, "charge point id contains '/'", shown)
    try:
        cp_id = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        raise HandshakeRefused(
            400, "charge point id is not valid UTF-8 after percent-decoding", shown
        ) from None
    if len(cp_id) > MAX_ID_LENGTH:
        raise HandshakeRefused(400, f"charge point id longer than {MAX_ID_LENGTH} characters", shown)
    if "/" in cp_id:
        raise HandshakeRefused(400, "charge point id contains '/'", shown)
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in cp_id):
        raise HandshakeRefused(400, "charge point id contains control characters", shown)
    return cp_id


def choose_subprotocol(offered: Sequence[str], preference: Sequence[str]) -> str | None:
    """The server's most preferred subprotocol that the client offers, or None."""
    for candidate in preference:
        if candidate in offered:
            return candidate
    return None


class BasicAuth:
    """Security profile 1: HTTP Basic with username = charge point id, against salted hashes.

    Verified passwords are remembered (as a keyed digest, never in clear) so that a reconnect storm
    costs one PBKDF2 per charger per process, not one per connection attempt.
    """

    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = entries
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}

    def _digest(self, cp_id: str, password: str) -> bytes:
        return hashlib.blake2b(f"{cp_id}\0{password}".encode(), key=self._key).digest()

    def check(self, cp_id: str, authorization: str | None) -> None:
        if authorization is None or not authorization.startswith("Basic "):
            raise HandshakeRefused(401, "missing Basic credentials", cp_id)
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HandshakeRefused(401, "malformed Basic credentials", cp_id) from None
        if user != cp_id:
            raise HandshakeRefused(401, "Basic username is not the charge point id", cp_id)
        stored = self.entries.get(cp_id)
        if stored is None:
            raise HandshakeRefused(401, "no credentials on file for this charge point", cp_id)
        digest = self._digest(cp_id, password)
        if self._verified.get(cp_id) == digest:
            return
        if not verify_password(password, stored):
            raise HandshakeRefused(401, "wrong password", cp_id)
        self._verified[cp_id] = digest
