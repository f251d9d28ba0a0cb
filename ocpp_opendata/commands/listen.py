"""`ocpp-opendata listen` and `ocpp-opendata credentials`."""

from __future__ import annotations

import sys
from typing import Any

import click

from ocpp_opendata.options import settings_from, settings_options
from ocpp_opendata.settings import env_name


@click.command()
@settings_options(
    "store",
    "local_max_bytes",
    "upload_backoff_max",
    "upload_drain_seconds",
    "state_url",
    "listen_host",
    "listen_port",
    "subprotocols",
    "no_subprotocol",
    "heartbeat_interval",
    "authorize",
    "allowlist",
    "charge_points",
    "credentials",
    "tls_cert",
    "tls_key",
    "max_frame_bytes",
    "rate_limit",
    "rate_burst",
    "roll_seconds",
    "roll_bytes",
    "wal_dir",
    "wal_max_bytes",
    "reuse_port",
    "strict",
    "operator_broker",
    "operator_tokens",
    "operator_host",
    "operator_port",
    "operator_tls_cert",
    "operator_tls_key",
    "operator_call_timeout",
    "upstream",
    "upstream_config",
    "upstream_ca_file",
    "upstream_offline",
    "upstream_connect_timeout",
    "upstream_answer_timeout",
    "upstream_retry_seconds",
)
def listen(**options: Any) -> None:
    """Run the OCPP listener (OCPP-J 1.6 and 2.0.1 over WebSocket) that writes the raw zone.

    With --upstream it runs in proxy mode: chargers are relayed to an existing CSMS (docs/proxy.md).
    """
    from ingest.proxy.config import ProxyConfigError, load_upstreams
    from ingest.server import run_listener
    from ingest.store import check_storage

    settings = settings_from(options)
    try:
        check_storage(settings)  # an unusable --store or --state-url is a usage error, not a crash later
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if settings.upstream is not None or settings.upstream_config is not None:
        try:
            load_upstreams(settings)  # refuse a bad or unrelayable (profile 3) setup before listening
        except ProxyConfigError as exc:
            raise click.UsageError(str(exc)) from exc
    sys.exit(run_listener(settings))


@click.command()
@settings_options("credentials")
@click.argument("charge_point_id")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of a prompt."
)
def credentials(charge_point_id: str, password_stdin: bool, **options: Any) -> None:
    """Add or replace a charge point's Basic-auth password (stored as a salted hash)."""
    from ingest.auth import set_password

    settings = settings_from(options)
    if settings.credentials is None:
        raise click.UsageError(f"--credentials (or {env_name('credentials')}) names the file to update")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(settings.credentials, charge_point_id, password)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"stored a salted hash for {charge_point_id} in {settings.credentials}")
