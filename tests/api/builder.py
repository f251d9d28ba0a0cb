"""A small published release written exactly per the layout contract (pipelines/published_schema.py).

Real Parquet (zstd, sorted, statistics and page index), a real `catalog.duckdb` with one table per
dataset, real `datapackage.json` / `dcat.jsonld` / `manifest.json`, and an atomic `current` switch.
It stands in for a pipeline run in the API tests that need many releases quickly (hot swaps); the
values are synthetic but typed and shaped by the published schema itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.published_schema import (
    CATALOG_FILENAME,
    CURRENT_LINK,
    DATAPACKAGE_FILENAME,
    DATASETS,
    DCAT_FILENAME,
    MANIFEST_FILENAME,
    RELEASES_DIRNAME,
    Dataset,
    download_path,
    partition_path,
    published_root,
)

TZ = ZoneInfo("Europe/Stockholm")
AREAS = ("centrum", "norr", "soder")


@dataclass(frozen=True)
class Shape:
    stations: int = 300
    days: int = 9
    first_day: date = date(2026, 10, 26)  # the Sunday DST ends in Europe: a 25-hour local day
    row_group_rows: int = 16384
    seed: int = 7


def _local_day_hours(day: date) -> list[datetime]:
    start = datetime.combine(day, time(), TZ).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), TZ).astimezone(UTC)
    hours, t = [], start
    while t < end:
        hours.append(t)
        t += timedelta(hours=1)
    return hours


def _filler(col: Any, rng: random.Random) -> Any:
    """A generator of plausible values for one column, from its Arrow type and name."""
    kind = col.type
    if pa.types.is_floating(kind):
        if col.name in ("utilisation", "completeness"):
            return lambda base: round(rng.random(), 4)
        return lambda base: round(rng.uniform(0, 40), 3)
    if pa.types.is_integer(kind):
        return lambda base: rng.randint(0, 30)
    if pa.types.is_boolean(kind):
        return lambda base: rng.random() < 0.2
    if pa.types.is_timestamp(kind):
        return lambda base: base["_t"] + timedelta(minutes=15 * rng.randint(0, 8))
    if pa.types.is_date(kind):
        return lambda base: base.get("date")
    return lambda base: f"{col.name}-{rng.randint(0, 3)}"


def _station(i: int) -> dict[str, Any]:
    return {"station_id": f"SE-STO-{i:03d}", "area": AREAS[i % len(AREAS)]}


def _columns(ds: Dataset, shape: Shape, rng: random.Random) -> dict[str, list[Any]]:
    stations = [_station(i) for i in range(shape.stations)]
    days = [shape.first_day + timedelta(days=d) for d in range(shape.days)]
    bases: list[dict[str, Any]] = []
    if ds.name == "stations":
        for i, s in enumerate(stations):
            bases.append(
                {
                    **s,
                    "name": f"Laddplats {i}",
                    "latitude": 59.3 + i / 100,
                    "longitude": 18.0 + i / 100,
                    "access": "public",
                    "connectors": 2,
                    "ocpp_version": "1.6" if i % 2 else "2.0.1",
                    "first_seen": datetime(2026, 10, 1, tzinfo=UTC),
                    "last_seen": datetime(2026, 11, 4, tzinfo=UTC),
                }
            )
    elif ds.name == "station_usage_monthly":
        months = sorted({d.replace(day=1) for d in days})
        bases = [{**s, "date": m} for m in months for s in stations]
    elif ds.name in ("station_usage_daily",):
        bases = [{**s, "date": d} for d in days for s in stations]
    elif ds.name == "area_usage_daily":
        bases = [{"area": a, "date": d} for d in days for a in AREAS]
    elif ds.name == "station_availability_hourly":
        bases = [
            {**s, "date": d, "hour_start": h, "connectors": 2, "_t": h}
            for d in days
            for h in _local_day_hours(d)
            for s in stations
        ]
    elif ds.name in ("station_energy_15min", "area_peak_15min"):
        keys = stations if ds.name == "station_energy_15min" else [{"area": a} for a in AREAS]
        for d in days:
            for h in _local_day_hours(d):
                for q in range(4):
                    t = h + timedelta(minutes=15 * q)
                    bases += [{**k, "date": d, "interval_start": t, "_t": t} for k in keys]
    elif ds.name == "charging_sessions":
        for d in days:
            for s in stations:
                for n in range(3):
                    plug_in = _local_day_hours(d)[6 + 5 * n] + timedelta(minutes=15 * rng.randint(0, 3))
                    bases.append(
                        {
                            **s,
                            "date": d,
                            "session_id": hashlib.sha256(f"{s['station_id']}{plug_in}".encode()).hexdigest()[
                                :20
                            ],
                            "plug_in": plug_in,
                            "plug_out": plug_in + timedelta(hours=2),
                            "user_pseudonym": secrets.token_hex(8) if rng.random() < 0.8 else None,
                            "energy_source": "meter_stop",
                            "quality_flags": "",
                            "_t": plug_in,
                        }
                    )
    columns: dict[str, list[Any]] = {}
    for col in ds.columns:
        if bases and col.name in bases[0]:
            columns[col.name] = [b[col.name] for b in bases]
        else:
            fill = _filler(col, rng)
            columns[col.name] = [fill(b) for b in bases]
    if "distinct_users_suppressed" in columns:
        users = columns["distinct_users"]
        columns["distinct_users_suppressed"] = [u is not None and u < 5 for u in users]
        columns["distinct_users"] = [None if u is not None and u < 5 else u for u in users]
    return columns


def _sorted_table(ds: Dataset, columns: dict[str, list[Any]]) -> pa.Table:
    table = pa.Table.from_pydict(columns, schema=ds.schema)
    return table.sort_by([(k, "ascending") for k in ds.sort_keys])


def _write(table: pa.Table, path: Path, shape: Shape) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=shape.row_group_rows,
        write_statistics=True,
        write_page_index=True,
    )
    data = path.read_bytes()
    return {"bytes": len(data), "hash": "sha256:" + hashlib.sha256(data).hexdigest(), "rows": table.num_rows}


def build_release(data_dir: Path, shape: Shape = Shape(), *, switch: bool = True) -> str:
    """Write one release under DATA_DIR/published/releases/<id> and (by default) make it current."""
    root = published_root(data_dir)
    created = datetime.now(UTC)
    release_id = created.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    staging = root / RELEASES_DIRNAME / f".staging-{release_id}"
    rng = random.Random(shape.seed)
    resources, manifest_datasets = [], {}
    catalog = duckdb.connect(str(staging / CATALOG_FILENAME)) if staging.mkdir(parents=True) is None else None
    assert catalog is not None
    catalog.execute("SET TimeZone = 'UTC'")
    for name, ds in DATASETS.items():
        table = _sorted_table(ds, _columns(ds, shape, rng))
        files = []
        if ds.partitioned:
            for d in sorted(set(table.column("date").to_pylist())):
                part = table.filter(pa.compute.equal(table.column("date"), pa.scalar(d, pa.date32())))
                target = partition_path(staging, name, d.isoformat())
                files.append({"path": str(target.relative_to(staging)), "partition": d.isoformat(),
                              **_write(part, target, shape)})  # fmt: skip
        else:
            target = partition_path(staging, name, None)
            files.append(
                {"path": str(target.relative_to(staging)), "partition": None, **_write(table, target, shape)}
            )
        whole = _write(table, download_path(staging, name), shape)
        catalog.register("incoming", table)
        catalog.execute(f'CREATE TABLE "{name}" AS SELECT * FROM incoming')
        catalog.unregister("incoming")
        resources.append(
            {
                "name": name,
                "title": ds.title,
                "description": ds.description,
                "path": f"downloads/{name}.parquet",
                "format": "parquet",
                **whole,
                "partitions": files,
                "schema": {
                    "fields": [
                        {
                            "name": c.name,
                            "type": c.frictionless_type,
                            "unit": c.unit,
                            "description": c.description,
                        }
                        for c in ds.columns
                    ]
                },
            }
        )
        manifest_datasets[name] = {
            "added": [f["partition"] for f in files],
            "rows": table.num_rows,
            "files": files,
        }
    catalog.execute("CHECKPOINT")
    catalog.close()
    end = shape.first_day + timedelta(days=shape.days - 1)
    package = {
        "name": "ocpp-opendata",
        "id": release_id,
        "licenses": [{"name": "CC-BY-4.0", "path": "https://spdx.org/licenses/CC-BY-4.0.html"}],
        "temporalCoverage": {"start": shape.first_day.isoformat(), "end": end.isoformat()},
        "resources": resources,
    }
    (staging / DATAPACKAGE_FILENAME).write_text(json.dumps(package, indent=2))
    (staging / DCAT_FILENAME).write_text(json.dumps({"@type": "dcat:Catalog", "dct:identifier": release_id}))
    manifest = {"release_id": release_id, "created_at": created.isoformat(), "datasets": manifest_datasets}
    (staging / MANIFEST_FILENAME).write_text(json.dumps(manifest, indent=2))
    os.replace(staging, root / RELEASES_DIRNAME / release_id)
    if switch:
        switch_current(data_dir, release_id)
    return release_id


def switch_current(data_dir: Path, release_id: str) -> None:
    """The contract's atomic switch: a new symlink at a temporary name, then os.replace."""
    root = published_root(data_dir)
    tmp = root / f".{CURRENT_LINK}-{release_id}"
    os.symlink(Path(RELEASES_DIRNAME) / release_id, tmp)
    os.replace(tmp, root / CURRENT_LINK)
