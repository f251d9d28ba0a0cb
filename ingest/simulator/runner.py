"""`run_simulation`: plan, write the truth and the registry, play, report."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingest.simulator.driver import Stats, play
from ingest.simulator.fleet import FleetPlan, plan_fleet
from ingest.simulator.options import SimulationOptions
from ingest.simulator.registry import write_station_registry
from ingest.simulator.truth import write_run_transaction_ids, write_truth
from ocpp_opendata.logs import fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationResult:
    plan: FleetPlan
    frames_sent: int
    answers: int
    sessions: int
    elapsed_s: float
    retries: int
    replayed: int
    reconnects: int
    unexpected_disconnects: int
    transaction_id_mismatches: int
    skipped_without_transaction_id: int
    not_accepted: dict[str, int] = field(default_factory=dict)
    call_errors: dict[str, int] = field(default_factory=dict)
    truth_files: tuple[Path, ...] = ()
    registry_files: tuple[Path, ...] = ()

    @property
    def frames_per_second(self) -> float:
        return self.frames_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        w = self.plan.window
        lines = [
            f"simulated {len(self.plan.chargers)} chargers from {w.start_dt:%Y-%m-%d %H:%M} to "
            f"{w.end_dt:%Y-%m-%d %H:%M} UTC: {self.sessions} sessions, {self.frames_sent} frames in "
            f"{self.elapsed_s:.1f} s ({self.frames_per_second:.0f} frames/s)",
        ]
        if self.retries or self.replayed or self.reconnects:
            lines.append(
                f"imperfections played: {self.retries} retried messages, {self.replayed} replayed after "
                f"offline periods, {self.reconnects} reconnects"
            )
        if self.not_accepted:
            shown = ", ".join(f"{k} ×{v}" for k, v in sorted(self.not_accepted.items()))
            lines.append(f"warning: answers not Accepted (charging went on as simulated): {shown}")
        if self.call_errors:
            shown = ", ".join(f"{k} ×{v}" for k, v in sorted(self.call_errors.items()))
            lines.append(f"warning: CallErrors from the listener: {shown}")
        if self.transaction_id_mismatches:
            lines.append(
                f"warning: {self.transaction_id_mismatches} retried StartTransaction answered with "
                "another transactionId"
            )
        if self.skipped_without_transaction_id:
            lines.append(
                f"warning: {self.skipped_without_transaction_id} messages not sent: their StartTransaction "
                "got no transactionId"
            )
        if self.unexpected_disconnects:
            lines.append(f"warning: the listener dropped {self.unexpected_disconnects} connections")
        return "\n".join(lines)


def prepare(options: SimulationOptions, now: float | None = None) -> tuple[FleetPlan, list[Path], list[Path]]:
    """Plan the fleet and write what depends on the plan alone (truth, station registry)."""
    plan = plan_fleet(options, now)
    truth = write_truth(plan, options.truth) if options.truth is not None else []
    registry = (
        list(write_station_registry(plan.chargers, options.station_registry))
        if options.station_registry
        else []
    )
    return plan, truth, registry


async def run_simulation(options: SimulationOptions, now: float | None = None) -> SimulationResult:
    """Play the fleet against the listener at options.url; raises SimulationError when it cannot."""
    plan, truth, registry = prepare(options, now)
    stats = Stats(chargers=len(plan.chargers))
    log.info(
        "simulation starting",
        extra=fields(
            url=options.url,
            chargers=len(plan.chargers),
            sessions=len(plan.sessions),
            start=plan.window.start_dt.isoformat(),
            end=plan.window.end_dt.isoformat(),
            speed=options.speed,
        ),
    )
    began = time.monotonic()
    async with _progress(plan, stats, options.progress):
        tx_rows = await play(plan, stats)
    elapsed = time.monotonic() - began
    if options.truth is not None:
        truth.append(write_run_transaction_ids(tx_rows, options.truth))
    result = SimulationResult(
        plan=plan,
        frames_sent=stats.frames_sent,
        answers=stats.answers,
        sessions=stats.sessions_done,
        elapsed_s=elapsed,
        retries=stats.retries,
        replayed=stats.replayed,
        reconnects=stats.reconnects,
        unexpected_disconnects=stats.unexpected_disconnects,
        transaction_id_mismatches=stats.transaction_id_mismatches,
        skipped_without_transaction_id=stats.skipped_without_transaction_id,
        not_accepted=dict(stats.not_accepted),
        call_errors=dict(stats.call_errors),
        truth_files=tuple(truth),
        registry_files=tuple(registry),
    )
    log.info(
        "simulation finished",
        extra=fields(frames=result.frames_sent, sessions=result.sessions, seconds=round(elapsed, 1)),
    )
    return result


def run_blocking(options: SimulationOptions) -> SimulationResult:
    """`run_simulation` on a fresh event loop, for callers that are not async."""
    return asyncio.run(run_simulation(options))


def simulated_now(plan: FleetPlan, stats: Stats) -> int:
    """The slowest charger's position: every charger has played up to here."""
    return min(stats.positions) if stats.positions else plan.window.start


@contextlib.asynccontextmanager
async def _progress(plan: FleetPlan, stats: Stats, live: bool) -> AsyncIterator[None]:
    task = asyncio.create_task(_show(plan, stats) if live else _log_progress(plan, stats))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _log_progress(plan: FleetPlan, stats: Stats, every: float = 10.0) -> None:
    while True:
        await asyncio.sleep(every)
        log.info(
            "simulation progress",
            extra=fields(
                simulated=datetime.fromtimestamp(simulated_now(plan, stats), UTC).isoformat(),
                frames=stats.frames_sent,
                sessions=stats.sessions_done,
                connected=stats.connected,
            ),
        )


async def _show(plan: FleetPlan, stats: Stats) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    span = plan.window.end - plan.window.start
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[simulated]}"),
        TextColumn("frames {task.fields[frames]:>9,}"),
        TextColumn("sessions {task.fields[sessions]:>6,}/{task.fields[planned]:,}"),
        TextColumn("connected {task.fields[connected]:>5}"),
        TimeElapsedColumn(),
        console=console,
        refresh_per_second=4,
    ) as progress:
        task = progress.add_task(
            "simulating",
            total=span,
            simulated="",
            frames=0,
            sessions=0,
            planned=len(plan.sessions),
            connected=0,
        )
        while True:
            now = simulated_now(plan, stats)
            progress.update(
                task,
                completed=now - plan.window.start,
                simulated=datetime.fromtimestamp(now, plan.window.tz).strftime("%Y-%m-%d %H:%M"),
                frames=stats.frames_sent,
                sessions=stats.sessions_done,
                connected=stats.connected,
            )
            await asyncio.sleep(0.25)
