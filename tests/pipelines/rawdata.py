"""Small raw zones written with the listener's own schemas (ingest/schema.py), for focused tests."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import TABLES, partition_dir

_counter = itertools.count(1)


@dataclass
class RawZone:
    """Rows per table; `flush` writes them as one new Parquet file per table and receipt date."""

    data_dir: Path
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    version: str = "1.6"
    lag: timedelta = timedelta(seconds=1)

    def _ctx(self, cp: str, t: datetime, received: datetime | None, version: str | None) -> dict[str, Any]:
        return {
            "received_at": received or t + self.lag,
            "charge_point_id": cp,
            "connection_id": f"test-{cp}",
            "ocpp_version": version or self.version,
            "message_id": f"m{next(_counter)}",
        }

    def connected(self, cp: str, t: datetime, conn: str | None = None) -> None:
        self.rows["connections"].append(
            {"received_at": t, "event": "connected", "charge_point_id": cp,
             "connection_id": conn or f"test-{cp}", "listener_id": "test"}
        )  # fmt: skip

    def disconnected(self, cp: str, t: datetime, conn: str | None = None) -> None:
        self.rows["connections"].append(
            {"received_at": t, "event": "disconnected", "charge_point_id": cp,
             "connection_id": conn or f"test-{cp}", "listener_id": "test"}
        )  # fmt: skip

    def boot(self, cp: str, t: datetime, vendor: str = "Acme", model: str = "AC22") -> None:
        self.rows["boot_notifications"].append(
            {**self._ctx(cp, t, None, None), "vendor": vendor, "model": model}
        )

    def status(
        self, cp: str, conn: int, t: datetime, status: str, *, received: datetime | None = None,
        version: str | None = None, **extra: Any,
    ) -> None:  # fmt: skip
        """`extra`: more StatusNotification columns (error_code, vendor_id, vendor_error_code, info)."""
        v = version or self.version
        row = {**self._ctx(cp, t, received, v), "timestamp": t, "status": status, "quality": [], **extra}
        if v == "1.6":
            row["connector_id"] = conn
        else:
            row["evse_id"], row["connector_id"] = conn, 1
        self.rows["status_notifications"].append(row)

    def tx_event(self, cp: str, t: datetime, **values: Any) -> None:
        received = values.pop("received", None)
        v = values.pop("version", None) or self.version
        row = {**self._ctx(cp, t, received, v), "timestamp": t, "quality": [], **values}
        if "message_id" in values:
            row["message_id"] = values["message_id"]
        self.rows["transaction_events"].append(row)

    def start(self, cp: str, conn: int, t: datetime, tx: str, tag: str, meter: float, **kw: Any) -> None:
        self.tx_event(
            cp, t, source_action="StartTransaction", event_type="Started", transaction_id=tx,
            connector_id=conn, id_tag=tag, meter_start_wh=meter, id_tag_status="Accepted", **kw,
        )  # fmt: skip

    def stop(self, cp: str, t: datetime, tx: str, meter: float, reason: str = "Local", **kw: Any) -> None:
        self.tx_event(
            cp, t, source_action="StopTransaction", event_type="Ended", transaction_id=tx,
            meter_stop_wh=meter, stopped_reason=reason, **kw,
        )  # fmt: skip

    def meter(
        self, cp: str, conn: int, t: datetime, measurand: str, value: float, unit: str, *,
        tx: str | None = None, received: datetime | None = None, version: str | None = None,
    ) -> None:  # fmt: skip
        v = version or self.version
        row = {
            **self._ctx(cp, t, received, v), "source_action": "MeterValues", "value_index": 0,
            "timestamp": t, "transaction_id": tx, "measurand": measurand, "location": "Outlet",
            "context": "Sample.Periodic", "format": "Raw", "unit": unit, "value": value,
            "value_raw": str(value), "quality": [],
        }  # fmt: skip
        if v == "1.6":
            row["connector_id"] = conn
        else:
            row["evse_id"] = conn
        self.rows["meter_values"].append(row)

    def transaction_data(
        self, cp: str, t: datetime, tx: str, value: float, context: str, *, received: datetime | None = None,
    ) -> None:  # fmt: skip
        """A register sample inside a 1.6 StopTransaction's transactionData: it names no connector."""
        self.rows["meter_values"].append(
            {**self._ctx(cp, t, received, "1.6"), "source_action": "StopTransaction", "value_index": 0,
             "timestamp": t, "transaction_id": tx, "measurand": "Energy.Active.Import.Register",
             "location": "Outlet", "context": context, "format": "Raw", "unit": "Wh", "value": value,
             "value_raw": str(value), "quality": []}
        )  # fmt: skip

    def charge(
        self, cp: str, conn: int, start: datetime, minutes: int, power_w: float, register_wh: float,
        tx: str | None = None,
    ) -> float:  # fmt: skip
        """A sample per minute for `minutes` minutes of constant power; returns the final register."""
        reg = register_wh
        for i in range(minutes + 1):
            t = start + timedelta(minutes=i)
            self.meter(cp, conn, t, "Energy.Active.Import.Register", reg, "Wh", tx=tx)
            self.meter(cp, conn, t, "Power.Active.Import", power_w if i < minutes else 0.0, "W", tx=tx)
            if i < minutes:
                reg += power_w / 60.0
        return reg

    def frame(self, cp: str, t: datetime, text: str) -> None:
        self.rows["frames"].append(
            {"received_at": t, "charge_point_id": cp, "connection_id": f"test-{cp}",
             "ocpp_version": self.version, "seq": next(_counter), "direction": "in", "message_type": 2,
             "message_id": "x", "action": "Heartbeat", "text": text, "length": len(text)}
        )  # fmt: skip

    def flush(self, name: str | None = None) -> list[Path]:
        written = []
        for table, rows in self.rows.items():
            schema = TABLES[table].schema
            by_day: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                by_day[r["received_at"].date()].append(r)
            for day, day_rows in by_day.items():
                cols = {f.name: [r.get(f.name) for r in day_rows] for f in schema}
                tbl = pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema)
                path = (
                    partition_dir(self.data_dir / "raw", table, day)
                    / f"{name or 'test'}-{next(_counter)}.parquet"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(tbl, path)
                written.append(path)
        self.rows.clear()
        return written
