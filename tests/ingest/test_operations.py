"""What operators look at: /health, /metrics, and a clean exit on SIGTERM."""

from __future__ import annotations

import urllib.request

import orjson

from tests.support.chargers import raw_charger
from tests.support.listener import RunningListener


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, resp.headers["Content-Type"], resp.read().decode()


async def test_health_reports_connections_and_storage(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "OPS-1") as charger:
        await charger.call("Heartbeat", {})
        status, ctype, body = fetch(listener.http + "/health")
    assert status == 200 and ctype == "application/json"
    health = orjson.loads(body)
    assert health["status"] == "ok" and health["connections"] == 1


async def test_metrics_count_frames_quarantine_and_rows_in_prometheus_format(
    listener: RunningListener,
) -> None:
    async with raw_charger(listener.url, "OPS-2") as charger:
        await charger.call("Heartbeat", {})
        await charger.call("Heartbeat", {})
        await charger.send_text("not json")
    status, ctype, body = fetch(listener.http + "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    lines = set(body.splitlines())
    assert 'ocpp_opendata_frames_total{direction="in",action="Heartbeat"} 2' in lines
    assert 'ocpp_opendata_quarantined_total{reason="invalid_json"} 1' in lines
    assert "ocpp_opendata_connections 0" in lines or "ocpp_opendata_connections 1" in lines
    assert any(line.startswith("ocpp_opendata_fsync_seconds_count ") for line in lines)


async def test_sigterm_exits_cleanly_and_leaves_no_wal_behind(listener: RunningListener) -> None:
    async with raw_charger(listener.url, "OPS-3") as charger:
        await charger.call("Heartbeat", {})
    assert listener.stop() == 0
    assert not list((listener.data_dir / "wal").glob("*/*.wal"))
    assert "stopped" in listener.log()
