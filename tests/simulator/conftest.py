"""Two simulations of the same fleet against real listeners: one perfect, one with every imperfection.

Both use the same seed, so they play the same sessions; only the imperfections differ. Each runs
once per test session (module fixtures would repeat them) and the listener is stopped with SIGTERM,
so everything it acknowledged is in the raw Parquet files before a test reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from ingest.simulator import SimulationOptions, SimulationResult, run_simulation
from ingest.simulator.options import default_start, zone
from tests.support.listener import make_listener

# Fixed once, so that both runs play the same window even across midnight.
START = default_start(2, zone("Europe/Amsterdam"), time.time())
IMPERFECT = SimulationOptions(
    chargers=8,
    days=2,
    start=START,
    seed=2,
    share_ocpp201=0.5,
    private_share=0.3,
    fault_rate=0.5,
    heartbeat_every=3600,
    offline_rate=1.5,
    clock_skew_share=0.4,
    numbers_share=0.5,
    kwh_share=0.3,
    multiplier_share=0.5,
    register_reset_rate=1.0,
    retry_rate=0.15,
)
PERFECT = IMPERFECT.without_imperfections()


@dataclass
class Run:
    result: SimulationResult
    truth: Path
    registry: Path
    raw: Path

    def truth_table(self, name: str) -> pl.DataFrame:
        return pl.read_parquet(self.truth / f"{name}.parquet")

    def raw_table(self, name: str) -> pl.DataFrame:
        files = sorted((self.raw / name).glob("date=*/*.parquet"))
        assert files, f"the listener wrote no {name}"
        return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def simulate_against_listener(base: Path, options: SimulationOptions) -> Run:
    listener = make_listener(base / "data").start()
    try:
        options = dataclasses.replace(
            options, url=listener.url, truth=base / "truth", station_registry=base / "registry"
        )
        result = asyncio.run(run_simulation(options))
    finally:
        assert listener.stop() == 0, listener.log()
    return Run(result, base / "truth", base / "registry", base / "data" / "raw")


@pytest.fixture(scope="session")
def perfect_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield simulate_against_listener(tmp_path_factory.mktemp("perfect"), PERFECT)


@pytest.fixture(scope="session")
def imperfect_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield simulate_against_listener(tmp_path_factory.mktemp("imperfect"), IMPERFECT)
