"""`ocpp-opendata simulate`: a charger fleet that talks to the listener, with ground truth."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from ocpp_opendata.options import settings_from, settings_options


@click.command()
@settings_options(
    "sim_url",
    "sim_chargers",
    "sim_days",
    "sim_start",
    "sim_speed",
    "sim_seed",
    "sim_truth",
    "sim_station_registry",
    "sim_timezone",
    "sim_share_ocpp201",
    "sim_share_two_connectors",
    "sim_profiles",
    "sim_private_share",
    "sim_users_per_charger",
    "sim_sample_interval",
    "sim_heartbeat_every",
    "sim_fault_rate",
    "sim_maintenance_rate",
    "sim_failed_start_share",
    "sim_zero_energy_share",
    "sim_fault_end_share",
    "sim_imperfections",
    "sim_offline_rate",
    "sim_clock_skew_share",
    "sim_numbers_share",
    "sim_kwh_share",
    "sim_multiplier_share",
    "sim_register_reset_rate",
    "sim_retry_rate",
    "sim_id_prefix",
    "sim_answer_timeout",
    "sim_dry_run",
)
def simulate(**options: Any) -> None:
    """Play a simulated charger fleet against the listener and write the ground truth.

    Example, a week of 50 chargers in about a minute, with truth and station registry:

    \b
      ocpp-opendata simulate --url ws://127.0.0.1:9000/ocpp --chargers 50 --days 7 \\
          --speed 10080 --truth out/truth --station-registry out/registry
    """
    from ingest.simulator import SimulationError, SimulationOptions, prepare, run_blocking

    settings = settings_from(options)
    try:
        sim = SimulationOptions.from_settings(settings)
        sim = dataclasses.replace(sim, progress=sys.stderr.isatty())
        if settings.sim_dry_run:
            plan, truth, registry = prepare(sim)
            click.echo(
                f"planned {len(plan.chargers)} chargers, {len(plan.sessions)} sessions from "
                f"{plan.window.start_dt:%Y-%m-%d %H:%M} to {plan.window.end_dt:%Y-%m-%d %H:%M} UTC"
            )
            for path in (*truth, *registry):
                click.echo(f"wrote {path}")
            return
        result = run_blocking(sim)
    except SimulationError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    click.echo(result.summary())
