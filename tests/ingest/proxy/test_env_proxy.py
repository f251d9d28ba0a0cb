"""Connections to the CSMS honour the environment's proxy settings the way `websockets` does."""

from __future__ import annotations

import pytest

from ingest.proxy.hub import env_proxy


def test_no_proxy_sends_a_named_csms_host_direct_and_others_may_use_the_environments_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "csms.internal,.corp.example")
    assert env_proxy("wss://csms.internal/ocpp") is None
    assert env_proxy("wss://a.corp.example/ocpp") is None
    assert env_proxy("wss://csms.example/ocpp") is True
    monkeypatch.setenv("NO_PROXY", "*")
    assert env_proxy("wss://csms.example/ocpp") is None
