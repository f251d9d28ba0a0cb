"""A listener with its operator API, tokens for it, and chargers that answer operator calls."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from tests.support.chargers import ocpp_charger
from tests.support.listener import RunningListener, free_port, make_listener


def new_token(tokens: Path, name: str, role: str) -> str:
    """`ocpp-opendata operator-token`, as an operator runs it; the token is the last line of stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "ocpp_opendata.cli", "operator-token", "--tokens", str(tokens), name,
         "--role", role],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Operated:
    listener: RunningListener
    api: str
    tokens: Path
    control: str
    read: str
    seen: list[str] = field(default_factory=list)

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.control}"}

    async def call(self, cp_id: str, action: str, payload: Any, token: str | None = None) -> httpx.Response:
        # Async: the chargers answering the call run on the test's own event loop.
        async with httpx.AsyncClient(timeout=60) as client:
            return await client.post(
                f"{self.api}/v1/chargers/{cp_id}/calls/{action}", json=payload, headers=self.headers(token)
            )

    async def get(self, path: str, token: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.get(self.api + path, headers=self.headers(token))


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """A TCP connect only: an unauthenticated request would count as a failed authentication."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the operator API on port {port} did not come up")


@contextmanager
def operated_listener(
    base: Path, *extra: str, data_dir: Path | None = None, port: int | None = None,
    tokens: Path | None = None, log_name: str = "listener.log",
) -> Iterator[Operated]:  # fmt: skip
    tokens = tokens or base / "secrets" / "operators.tokens"  # outside the data root, as deployed
    control = new_token(tokens, "alice", "control")
    read = new_token(tokens, "bob", "read")
    operator_port = free_port()
    listener = make_listener(
        data_dir or base / "data", "--operator-tokens", str(tokens), "--operator-port", str(operator_port),
        *extra, port=port, log_name=log_name,
    )  # fmt: skip
    listener.start()
    try:
        api = f"http://127.0.0.1:{operator_port}"
        wait_for_port(operator_port)
        yield Operated(listener, api, tokens, control, read)
    finally:
        if listener.proc is not None and listener.proc.poll() is None:
            listener.stop()


def connected(url: str, cp_id: str, cls: type, version: str = "1.6") -> Any:
    """A charger of class `cls` (answering operator calls) connected to `url/cp_id`."""
    return ocpp_charger(url, cp_id, version, cls)


class Charger16(ChargePoint16):
    """Answers what an operator asks, like a real 1.6 charger; records what it was asked."""

    asked: list[str]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.asked = []

    @on(Action16.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        self.asked.append("Reset")
        return result16.Reset(status="Accepted")

    @on(Action16.remote_start_transaction)
    def on_remote_start(self, id_tag: str, **kw: Any) -> Any:
        self.asked.append("RemoteStartTransaction")
        return result16.RemoteStartTransaction(status="Accepted")

    @on(Action16.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        self.asked.append("ChangeAvailability")
        return result16.ChangeAvailability(status="Accepted")

    @on(Action16.trigger_message)
    def on_trigger(self, requested_message: str, **_: Any) -> Any:
        self.asked.append("TriggerMessage")
        return result16.TriggerMessage(status="Accepted")

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        self.asked.append("GetConfiguration")
        return result16.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        )


class Charger201(ChargePoint201):
    asked: list[str]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.asked = []

    @on(Action201.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        self.asked.append("Reset")
        return result201.Reset(status="Accepted")

    @on(Action201.request_start_transaction)
    def on_request_start(self, id_token: dict, remote_start_id: int, **_: Any) -> Any:
        self.asked.append("RequestStartTransaction")
        return result201.RequestStartTransaction(status="Accepted", transaction_id="tx-remote-1")

    @on(Action201.get_variables)
    def on_get_variables(self, get_variable_data: list[dict], **_: Any) -> Any:
        self.asked.append("GetVariables")
        return result201.GetVariables(
            get_variable_result=[
                {"attribute_status": "Accepted", "component": d["component"], "variable": d["variable"],
                 "attribute_value": "42"}
                for d in get_variable_data
            ]
        )  # fmt: skip


BOOT16 = call16.BootNotification(charge_point_model="OP16", charge_point_vendor="Acme")
BOOT201 = call201.BootNotification(
    charging_station={"model": "OP201", "vendor_name": "Acme"}, reason="PowerUp"
)
