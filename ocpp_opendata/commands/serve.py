"""`ocpp-opendata serve`: the read-only open-data API over the published releases."""

from __future__ import annotations

from typing import Any

import click

from ocpp_opendata.options import settings_from, settings_options


@click.command()
@settings_options(
    "store",
    "api_host",
    "api_port",
    "api_release_poll",
    "api_cache_bytes",
    "api_max_age",
    "sql_time_limit",
    "sql_row_cap",
    "sql_memory_limit",
    "sql_threads",
    "sql_max_in_flight",
    "station_registry",
    "heartbeat_interval",
    "live_poll",
    "live_offline_after",
    "live_max_age",
    "live_country_code",
    "live_party_id",
    "live_country",
    "live_operator_name",
    "operator_broker",
    "sql_answer_bytes",
    "api_header_timeout",
    "api_keep_alive",
    "api_max_connections",
    "api_shutdown_grace",
)
def serve(**options: Any) -> None:
    """Serve the published open data (datasets, downloads, usage, SQL) read-only over HTTP."""
    from api.app import create_app
    from api.server import serve as run_server

    settings = settings_from(options)
    app = create_app(settings)
    try:
        run_server(app, settings, app.state.releases.sql_pool.close)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.api_host}:{settings.api_port}: {exc}"
        ) from exc
