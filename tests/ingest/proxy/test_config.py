"""Per-charger upstream overrides, credentials kept out of the file, and the profile 3 refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from tests.support.chargers import raw_charger, rows
from tests.support.csms import RunningCsms
from tests.support.listener import free_port, make_listener


def test_a_profile_3_upstream_is_refused_at_startup_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "upstreams.toml"
    config.write_text('[default]\nurl = "wss://csms.example/ocpp"\nclient_cert = "/etc/cp.pem"\n')
    result = subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "listen", "--data-dir", str(tmp_path / "d"),
         "--upstream-config", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "security profile 3 (client certificates) cannot be relayed" in result.stderr


def test_a_password_written_in_the_upstream_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "upstreams.toml"
    config.write_text('[charge_points.CP-1]\nurl = "ws://127.0.0.1:1/ocpp"\nusername = "u"\npassword = "p"\n')
    result = subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "listen", "--data-dir", str(tmp_path / "d"),
         "--upstream-config", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "no passwords in the file" in result.stderr


@pytest.fixture
def guarded_csms(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = RunningCsms(free_port(), tmp_path / "guarded.jsonl", password="s3cret").start()
    try:
        yield running
    finally:
        running.stop()


async def test_chargers_credentials_pass_through_or_are_mapped_per_charger_from_the_environment(
    tmp_path: Path, guarded_csms: RunningCsms
) -> None:
    config = tmp_path / "upstreams.toml"
    config.write_text(
        f'[charge_points.MAPPED]\nurl = "{guarded_csms.url}"\nusername = "MAPPED"\n'
        'password_env = "CSMS_PASSWORD_MAPPED"\n'
    )
    proxy = make_listener(
        tmp_path / "data", "--upstream", guarded_csms.url, "--upstream-config", str(config),
        env={"CSMS_PASSWORD_MAPPED": "s3cret"},
    ).start()  # fmt: skip
    try:
        async with raw_charger(proxy.url, "MAPPED") as mapped:
            assert (await mapped.call("Heartbeat", {}))[0] == 3
        passing = {"additional_headers": {"Authorization": "Basic UEFTUzpzM2NyZXQ="}}  # PASS:s3cret
        async with raw_charger(proxy.url, "PASS", **passing) as passed:
            assert (await passed.call("Heartbeat", {}))[0] == 3
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with raw_charger(proxy.url, "NOPASS"):
                pass
        assert refused.value.response.status_code == 401, "the CSMS refused it, so the proxy does too"
    finally:
        assert proxy.stop() == 0
    assert {f[2] for f in guarded_csms.frames("MAPPED")} == {"Heartbeat"}
    assert {f[2] for f in guarded_csms.frames("PASS")} == {"Heartbeat"}
    refusals = rows(proxy.data_dir, "connections", "event = 'refused'")
    assert [r["charge_point_id"] for r in refusals] == ["NOPASS"]
