"""Where each charger is relayed to: the default upstream and per-charger overrides (docs/proxy.md).

The overrides file is the operator's, kept outside the repository and the data root. Passwords are
never written in it: an entry names an environment variable (`password_env`) or a file
(`password_file`, e.g. a mounted secret) that holds the password.
"""

from __future__ import annotations

import base64
import os
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ocpp_opendata.settings import Settings

_KEYS = {"url", "username", "password_env", "password_file", "ca_file"}
# Security profile 3 authenticates the charger by a client certificate whose private key only the
# charger holds: a relay cannot present it to the CSMS, so such a setup is refused outright.
_PROFILE_3_KEYS = {"client_cert", "client_key", "certfile", "keyfile"}


class ProxyConfigError(ValueError):
    """The proxy cannot be run as configured; the message says what to change."""


@dataclass(frozen=True)
class Upstream:
    url: str  # base URL; the charger id is appended as one percent-encoded path segment
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None

    def url_for(self, cp_id: str) -> str:
        return self.url.rstrip("/") + "/" + quote(cp_id, safe="")

    def authorization(self, charger_header: str | None) -> str | None:
        """Mapped credentials when configured, otherwise the charger's own header, unchanged."""
        if self.username is None:
            return charger_header
        password = self._password()
        token = base64.b64encode(f"{self.username}:{password}".encode()).decode()
        return f"Basic {token}"

    def _password(self) -> str:
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ProxyConfigError(f"environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            return self.password_file.read_text().rstrip("\n")
        raise ProxyConfigError("username given without password_env or password_file")

    def ssl_context(self) -> ssl.SSLContext | None:
        if urlsplit(self.url).scheme != "wss":
            return None
        # Verification (chain and host name) is always on: a proxy that trusts any certificate would
        # hand every charger's credentials to whoever sits on the path.
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


@dataclass(frozen=True)
class Upstreams:
    default: Upstream | None
    overrides: dict[str, Upstream]

    def for_charger(self, cp_id: str) -> Upstream | None:
        return self.overrides.get(cp_id, self.default)


def _entry(raw: dict[str, Any], where: str, base: Upstream | None) -> Upstream:
    if not isinstance(raw, dict):
        raise ProxyConfigError(f"{where}: expected a table of settings")
    profile3 = _PROFILE_3_KEYS & raw.keys()
    if profile3:
        raise ProxyConfigError(
            f"{where}: {', '.join(sorted(profile3))}: security profile 3 (client certificates) cannot be "
            "relayed: the CSMS would have to trust the proxy's certificate instead of the charger's. "
            "Use profile 1 or 2 towards the CSMS (docs/proxy.md)."
        )
    if "password" in raw:
        raise ProxyConfigError(f"{where}: no passwords in the file; use password_env or password_file")
    unknown = raw.keys() - _KEYS
    if unknown:
        raise ProxyConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    url = raw.get("url", base.url if base else None)
    if not url:
        raise ProxyConfigError(f"{where}: no url and no default upstream")
    ca_file = raw.get("ca_file")
    password_file = raw.get("password_file")
    entry = Upstream(
        url=url,
        username=raw.get("username"),
        password_env=raw.get("password_env"),
        password_file=Path(password_file) if password_file else None,
        ca_file=Path(ca_file) if ca_file else (base.ca_file if base else None),
    )
    _check_url(entry.url, where)
    if entry.username is not None and entry.password_env is None and entry.password_file is None:
        raise ProxyConfigError(f"{where}: username given without password_env or password_file")
    if entry.ca_file is not None and not entry.ca_file.is_file():
        raise ProxyConfigError(f"{where}: CA bundle {entry.ca_file} does not exist")
    return entry


def _check_url(url: str, where: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ProxyConfigError(f"{where}: upstream URL must be ws:// or wss://host/..., got {url!r}")
    if parts.username or parts.password:
        raise ProxyConfigError(f"{where}: no credentials in the URL; use username and password_env")


def load_upstreams(settings: Settings) -> Upstreams:
    """The default upstream from --upstream and the overrides file; raise ProxyConfigError if unusable."""
    default = None
    if settings.upstream is not None:
        default = _entry({"url": settings.upstream}, "--upstream", None)
        if settings.upstream_ca_file is not None:
            default = _entry(
                {"url": settings.upstream, "ca_file": str(settings.upstream_ca_file)},
                "--upstream-ca-file",
                None,
            )
    overrides: dict[str, Upstream] = {}
    if settings.upstream_config is not None:
        try:
            doc = tomllib.loads(settings.upstream_config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProxyConfigError(f"--upstream-config {settings.upstream_config}: {exc}") from exc
        unknown = doc.keys() - {"default", "charge_points"}
        if unknown:
            raise ProxyConfigError(f"--upstream-config: unknown sections {', '.join(sorted(unknown))}")
        if "default" in doc:
            raw_default = dict(doc["default"])
            if default is not None:
                raw_default.setdefault("url", default.url)
            default = _entry(raw_default, "[default]", default)
        for cp_id, raw in dict(doc.get("charge_points", {})).items():
            overrides[cp_id] = _entry(raw, f"[charge_points.{cp_id!r}]", default)
    if default is None and not overrides:
        raise ProxyConfigError("proxy mode needs --upstream or a [default] url in --upstream-config")
    return Upstreams(default, overrides)
