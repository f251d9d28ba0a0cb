"""Listener processes behind one port (--reuse-port) share the store-and-forward state."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ingest.proxy.queue import LOCAL_BASE, ForwardQueue


def map_in_another_process(state_dir: Path, cp: str, start_key: tuple[str, int]) -> int:
    """A second process answers a StartTransaction locally and later learns the CSMS's id."""
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from ingest.proxy.queue import ForwardQueue\n"
        "async def main():\n"
        f"    q = ForwardQueue(Path({str(state_dir)!r}))\n"
        f"    local, _ = await q.assign({start_key!r})\n"
        f"    await q.map({cp!r}, local, 4242)\n"
        "    q.close()\n"
        "    print(local)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_transaction_id_mapping_learnt_by_another_process_is_found_by_this_one(tmp_path: Path) -> None:
    queue = ForwardQueue(tmp_path)  # opened first, so its in-memory cache cannot hold the mapping
    try:
        assert queue.csms_id("CP-1", LOCAL_BASE) is None
        local = map_in_another_process(tmp_path, "CP-1", ("CP-1", 1, "TAG", "2026-11-25T10:00:00Z"))
        assert local >= LOCAL_BASE
        # The charger reconnected to this process: later frames carry the local id, the CSMS's comes back.
        assert queue.csms_id("CP-1", local) == 4242
        assert queue.local_id("CP-1", 4242) == local
        assert asyncio.run(queue.exists("CP-1", 4242)) is True
        # Another charger's ids stay apart.
        assert queue.csms_id("CP-2", local) is None
        assert queue.local_id("CP-2", 4242) is None
        # Local ids handed out by both processes never collide.
        mine, _ = asyncio.run(queue.assign(("CP-1", 1, "TAG", "2026-11-25T11:00:00Z")))
        assert mine != local and mine >= LOCAL_BASE
    finally:
        queue.close()
