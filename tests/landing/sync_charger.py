"""An OCPP 1.6 charger speaking plain OCPP-J frames over a synchronous WebSocket.

Synchronous on purpose: Playwright's sync API holds the test thread's event loop, so an asyncio client
cannot run beside it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from websockets.sync.client import ClientConnection, connect


class SyncCharger:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    def call(self, action: str, payload: dict[str, Any]) -> Any:
        """Send one CALL and return the payload of its CALLRESULT."""
        message_id = f"m{next(self._ids)}"
        self.ws.send(orjson.dumps([2, message_id, action, payload]).decode())
        while True:
            frame = orjson.loads(self.ws.recv(timeout=10))
            if frame[0] == 2:  # a call from the listener: not expected here, answered empty
                self.ws.send(orjson.dumps([3, frame[1], {}]).decode())
            elif frame[1] == message_id:
                assert frame[0] == 3, frame
                return frame[2]

    def boot(self) -> None:
        answer = self.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert answer["status"] == "Accepted", answer

    def status(self, connector: int, status: str, error_code: str = "NoError") -> None:
        self.call("StatusNotification", {"connectorId": connector, "errorCode": error_code, "status": status})


@contextmanager
def sync_charger(url: str, cp_id: str) -> Iterator[SyncCharger]:
    """A 1.6 charger connected to `url/cp_id`, booted."""
    with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:
        charger = SyncCharger(ws)
        charger.boot()
        yield charger
