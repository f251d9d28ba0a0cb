"""Keyed pseudonyms, key periods, rounding and small-cell suppression.

- `user_pseudonym` = HMAC-SHA256(K_period, station_id ‖ normalised idTag), K_period = HKDF(master key,
  period label such as "2026-03"). Repeat visits at one station are visible within a period; visits at
  two stations never share a pseudonym (unless the network scope is explicitly chosen).
- Pseudonyms and session ids are written in a 16-letter alphabet without digits or the letters a-f,
  so that no hex or decimal idTag form can ever appear inside one by chance (the leak check looks for
  those forms as substrings in every published byte).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from ocpp_opendata.settings import Settings, env_name

_ALPHABET = "ghjkmnpqrstvwxyz"
_HEX_TO_LETTER = str.maketrans("0123456789abcdef", _ALPHABET)
MIN_KEY_BYTES = 16


class PseudonymKeyError(RuntimeError):
    """No usable pseudonym master key: publishing is refused."""


def load_master_key(settings: Settings) -> bytes:
    """The master key from OCPP_OPENDATA_PSEUDONYM_KEY or --pseudonym-key-file; never from the data dir."""
    if settings.pseudonym_key:
        key = settings.pseudonym_key.encode()
    elif settings.pseudonym_key_file is not None:
        path = Path(settings.pseudonym_key_file)
        data_dir = Path(settings.data_dir).resolve()
        if path.resolve().is_relative_to(data_dir):
            raise PseudonymKeyError(
                f"the pseudonym key file must live outside the data directory ({data_dir}), "
                "where published or raw data could expose it"
            )
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise PseudonymKeyError(f"cannot read the pseudonym key file: {exc.strerror}") from exc
    else:
        raise PseudonymKeyError(
            f"no pseudonym key: set {env_name('pseudonym_key')} or --pseudonym-key-file "
            "(a secret of at least 16 bytes kept outside the repository and the data directory); "
            "nothing is published without one"
        )
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"the pseudonym key is too short: at least {MIN_KEY_BYTES} bytes are needed")
    return key


def hkdf(master: bytes, info: str, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) with a fixed salt: the same master key and label give the same key."""
    prk = hmac.new(b"ocpp-opendata/hkdf-salt/v1", master, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info.encode() + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def period_label(day: date, period: str) -> str:
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return f"{day.year:04d}"
    raise ValueError(f"unknown pseudonym period {period!r}")


def normalise_tag(tag: str) -> str:
    """Case and surrounding blanks are not part of a card's identity (readers differ in both)."""
    return tag.strip().upper()


def letters(digest: bytes, n: int = 32) -> str:
    return digest.hex()[:n].translate(_HEX_TO_LETTER)


class Pseudonymizer:
    """Keys derived once per period label from the master key."""

    def __init__(self, master: bytes, period: str = "month", scope: str = "station") -> None:
        self._master = master
        self.period = period
        self.scope = scope
        self._keys: dict[str, bytes] = {}

    def _key(self, purpose: str, label: str) -> bytes:
        name = f"{purpose}/{label}"
        if name not in self._keys:
            self._keys[name] = hkdf(self._master, name)
        return self._keys[name]

    def user(self, station_id: str, tag: str, day: date) -> str:
        """The published pseudonym: per station (default) or network-wide (opt-in), per period."""
        scope = "*" if self.scope == "network" else station_id
        key = self._key("user", period_label(day, self.period))
        msg = scope.encode() + b"\x00" + normalise_tag(tag).encode()
        return letters(hmac.new(key, msg, hashlib.sha256).digest())

    def area_user(self, area: str, tag: str, day: date) -> str:
        """Internal only (never published): counts distinct users per area."""
        key = self._key("area-user", period_label(day, self.period))
        msg = area.encode() + b"\x00" + normalise_tag(tag).encode()
        return letters(hmac.new(key, msg, hashlib.sha256).digest())

    def session_id(self, station_id: str, transaction_id: str, start: datetime) -> str:
        key = self._key("session", "v1")
        msg = f"{station_id}\x00{transaction_id}\x00{start.astimezone(UTC).isoformat()}".encode()
        return letters(hmac.new(key, msg, hashlib.sha256).digest(), 24)

    def raw_text(self, text: str) -> str:
        """Replacement for a raw idTag or frame text after the raw retention period."""
        key = self._key("raw-retention", "v1")
        return "redacted:" + letters(hmac.new(key, text.encode(), hashlib.sha256).digest())


def round_time(ts: datetime | None, minutes: int) -> datetime | None:
    if ts is None or minutes <= 0:
        return ts
    step = minutes * 60
    epoch = ts.timestamp()
    rounded = math.floor(epoch / step + 0.5) * step
    return datetime.fromtimestamp(rounded, UTC)


def round_to(value: float | None, step: float) -> float | None:
    if value is None or step <= 0:
        return value
    return round(math.floor(value / step + 0.5) * step, 6)


def minutes_between(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a) / timedelta(minutes=1)
