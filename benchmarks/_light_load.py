"""A light OCPP-J 1.6 load generator and stand-in CSMS on picows, for the proxy benchmark.

    python benchmarks/_light_load.py csms PORT
    python benchmarks/_light_load.py paced '<json spec>'

Why not benchmarks/_load.py: on a 2-core machine the load generator and the CSMS share the cores with
the proxy being measured. The `websockets` client and server cost ~0.2 ms of CPU per exchange each
here; picows' compiled WebSocket costs a third of that, so the measured latency is the proxy's and
less its neighbours'. Both halves use picows' callback API (no coroutine per frame).

- ``csms``: answers every CALL with ``[3, id, {}]`` at once (MeterValues.conf is an empty object).
- ``paced``: N chargers send MeterValues (8 sampled values, benchmarks/_load.py's frame) at a fixed
  total rate, one open CALL per charger; prints one JSON line with its results and CPU seconds and
  writes the latencies to ``latency_file`` as uint32 microseconds.
"""

from __future__ import annotations

import array
import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_connect,
    ws_create_server,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import METER_VALUES  # one frame for every benchmark

SUBPROTOCOL = {"Sec-WebSocket-Protocol": "ocpp1.6"}


class CsmsConnection(WSListener):  # type: ignore[misc]
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            message = orjson.loads(frame.get_payload_as_bytes())
            if message[0] == 2:
                transport.send(WSMsgType.TEXT, orjson.dumps([3, message[1], {}]))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


async def serve_csms(port: int) -> None:
    def accept(_request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
        response = WSUpgradeResponse.create_101_response(extra_headers=SUBPROTOCOL)
        return WSUpgradeResponseWithListener(response, CsmsConnection())

    server = await ws_create_server(accept, "127.0.0.1", port)
    await server.serve_forever()


class Charger(WSListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.transport: WSTransport | None = None
        self.answer: asyncio.Future[bytes] | None = None
        self.next_id = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and self.answer is not None and not self.answer.done():
            self.answer.set_result(frame.get_payload_as_bytes())

    async def call(self, action: bytes, payload: bytes) -> None:
        assert self.transport is not None
        self.next_id += 1
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.send(WSMsgType.TEXT, b'[2,"%d","%s",%s]' % (self.next_id, action, payload))
        reply = orjson.loads(await self.answer)
        if reply[0] != 3 or reply[1] != str(self.next_id):
            raise RuntimeError(f"expected CallResult for {self.next_id}, got {reply!r:.200}")


async def paced(spec: dict[str, Any]) -> dict[str, Any]:
    chargers: list[Charger] = []
    for i in range(spec["chargers"]):
        _, charger = await ws_connect(Charger, f"{spec['url']}/BENCH{i:05d}", extra_headers=SUBPROTOCOL)
        chargers.append(charger)
    latencies = array.array("I")
    errors: list[str] = []
    period = spec["chargers"] / spec["rate"]
    begin = time.perf_counter() + 0.2
    deadline = begin + spec["duration"]
    late = 0

    async def run(charger: Charger) -> None:
        nonlocal late
        due = begin + random.uniform(0, period)  # spread over one period, as real chargers are
        while due < deadline:
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -period:
                late += 1  # the previous answer took longer than a period: this frame goes out late
            started = time.perf_counter_ns()
            try:
                await asyncio.wait_for(charger.call(b"MeterValues", METER_VALUES), spec["timeout"])
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            latencies.append(min((time.perf_counter_ns() - started) // 1000, 2**32 - 1))
            due += period

    await asyncio.gather(*(run(c) for c in chargers))
    for charger in chargers:
        if charger.transport is not None:
            charger.transport.send_close()
            charger.transport.disconnect()
    Path(spec["latency_file"]).write_bytes(latencies.tobytes())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"acked": len(latencies), "late_sends": late, "errors": len(errors),
            "first_errors": errors[:3], "cpu_seconds": usage.ru_utime + usage.ru_stime}  # fmt: skip


def main() -> None:
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    if sys.argv[1] == "csms":
        run(serve_csms(int(sys.argv[2])))
    else:
        print(json.dumps(run(paced(json.loads(sys.argv[2])))), flush=True)


if __name__ == "__main__":
    main()
