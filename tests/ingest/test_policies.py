"""Who may charge (idTag policy), how a noisy charger is slowed, and the credentials command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ingest.auth import read_credentials, verify_password
from tests.support.chargers import raw_charger, rows
from tests.support.listener import make_listener

TS = "2026-11-20T08:00:00Z"


async def test_by_default_nobody_is_authorized_but_everything_is_stored(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data")
    running.args[running.args.index("accept-all")] = "allowlist"
    running.start()
    try:
        async with raw_charger(running.url, "POL-1") as charger:
            answer = await charger.call("Authorize", {"idTag": "ANYONE"})
            start = await charger.call(
                "StartTransaction", {"connectorId": 1, "idTag": "ANYONE", "meterStart": 0, "timestamp": TS}
            )
    finally:
        running.stop()
    assert answer[2] == {"idTagInfo": {"status": "Invalid"}}
    assert start[2]["idTagInfo"] == {"status": "Invalid"} and start[2]["transactionId"] > 0
    [event] = rows(running.data_dir, "transaction_events")
    assert (event["id_tag"], event["id_tag_status"]) == ("ANYONE", "Invalid")
    assert "allowlist is empty or missing" in running.log()


async def test_an_allowlist_accepts_its_tags_only(tmp_path: Path) -> None:
    allow = tmp_path / "idtags.txt"
    allow.write_text("# members\nGOOD0001\n")
    running = make_listener(tmp_path / "data", "--allowlist", str(allow))
    running.args[running.args.index("accept-all")] = "allowlist"
    running.start()
    try:
        async with raw_charger(running.url, "POL-2", "ocpp2.0.1") as charger:
            good = await charger.call("Authorize", {"idToken": {"idToken": "GOOD0001", "type": "ISO14443"}})
            bad = await charger.call("Authorize", {"idToken": {"idToken": "BAD00001", "type": "ISO14443"}})
    finally:
        running.stop()
    assert good[2]["idTokenInfo"]["status"] == "Accepted"
    assert bad[2]["idTokenInfo"]["status"] == "Invalid"


async def test_the_rate_limit_slows_a_noisy_charger_without_rejecting_anything(tmp_path: Path) -> None:
    running = make_listener(tmp_path / "data", "--rate-limit", "10", "--rate-burst", "5").start()
    try:
        async with raw_charger(running.url, "POL-3") as charger:
            started = time.monotonic()
            for n in range(25):
                await charger.ws.send(f'[2, "h{n}", "Heartbeat", {{}}]')
            answers = [await charger.ws.recv() for _ in range(25)]
            elapsed = time.monotonic() - started
    finally:
        running.stop()
    assert all(a.startswith("[3,") for a in answers)
    assert elapsed >= 1.5, "20 frames past the burst at 10/s take about 2 s"


def test_the_credentials_command_stores_a_salted_hash(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    password = "a-very-secret-pass-123"
    for _ in range(2):  # the same password twice gives two different salted hashes
        subprocess.run(
            [sys.executable, "-m", "ocpp_opendata.cli", "credentials", "--credentials", str(creds),
             "--password-stdin", "CP-9"],
            input=password + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
        stored = read_credentials(creds)["CP-9"]
        assert password not in creds.read_text()
        assert verify_password(password, stored) and not verify_password("wrong", stored)
    too_short = subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "credentials", "--credentials", str(creds),
         "--password-stdin", "CP-9"],
        input="short\n", text=True, capture_output=True,
    )  # fmt: skip
    assert too_short.returncode != 0 and "16 to 40" in too_short.stderr
