"""Who may connect (charge point allowlist, Basic-auth credentials) and who may charge (idTags).

Credentials (OCPP security profile 1: username = charge point id) are stored as salted
PBKDF2-SHA256 hashes, one `id:pbkdf2_sha256$iterations$salt$hash` line per charge point. OCPP
passwords are 16–40 random characters, so a moderate iteration count is enough and keeps a
reconnect storm of thousands of chargers affordable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from ocpp_opendata.logs import fields

log = logging.getLogger("ingest.auth")

ITERATIONS = 20_000


def _hash(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = _hash(password, salt, iterations)
    b64 = base64.b64encode
    return f"pbkdf2_sha256${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = base64.b64decode(digest)
        actual = _hash(password, base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def read_credentials(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            cp_id, _, stored = line.rpartition(":")
            entries[cp_id] = stored
    return entries


def set_password(path: Path, charge_point_id: str, password: str) -> None:
    # OCPP 1.6 security whitepaper / 2.0.1 A00.FR.205: passwords are 16 to 40 characters.
    if not 16 <= len(password) <= 40:
        raise ValueError("OCPP Basic-auth passwords are 16 to 40 characters long")
    entries = read_credentials(path) if path.exists() else {}
    entries[charge_point_id] = hash_password(password)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{k}:{v}\n" for k, v in sorted(entries.items())))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_id_list(path: Path | None) -> frozenset[str] | None:
    if path is None:
        return None
    if not path.exists():
        return frozenset()
    return frozenset(
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    )


class IdTagPolicy:
    """The authorization answer for an idTag: the listener decides who charges in standalone mode."""

    def __init__(self, policy: str, allowlist_path: Path | None) -> None:
        self.policy = policy
        self.allowed = read_id_list(allowlist_path) or frozenset()
        if policy == "allowlist" and not self.allowed:
            # Accepting everyone must be a conscious choice (--authorize accept-all).
            log.warning(
                "idTag allowlist is empty or missing: every idTag will be answered Invalid",
                extra=fields(
                    allowlist=str(allowlist_path), hint="--authorize accept-all or --allowlist FILE"
                ),
            )

    def status(self, id_tag: str | None) -> str:
        if self.policy == "accept-all":
            return "Accepted"
        # idTags are case-insensitive identifiers (OCPP 1.6 §7.28 IdToken).
        if id_tag is not None and (id_tag in self.allowed or id_tag.upper() in self.allowed):
            return "Accepted"
        return "Invalid"
