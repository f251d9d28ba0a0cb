"""`ocpp-opendata operator-token` and `ocpp-opendata chargers list|show|call` (docs/operate.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ocpp_opendata.options import settings_from, settings_options
from ocpp_opendata.settings import env_name


@click.command("operator-token")
@settings_options()
@click.option(
    "--tokens",
    "tokens",
    type=click.Path(path_type=Path),
    envvar=env_name("operator_tokens"),
    required=True,
    help=f"Operator token file to add the token to (created 0600) [env {env_name('operator_tokens')}].",
)
@click.option(
    "--role", type=click.Choice(["read", "control"]), required=True, help="read: look; control: also call."
)
@click.argument("name")
def operator_token(tokens: Path, role: str, name: str, **options: Any) -> None:
    """Create an operator token: printed once (the last line), only its salted hash is kept in the file."""
    from ingest.operate.tokens import create_token

    settings_from(options)
    try:
        token = create_token(tokens, name, role)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"added a {role} token for {name} to {tokens}; it is shown only now:", err=True)
    click.echo(token)


def _client(options: dict[str, Any]) -> tuple[str, dict[str, str]]:
    settings = settings_from(options)
    if not settings.operator_token:
        raise click.UsageError(f"--operator-token (better: {env_name('operator_token')}) is required")
    return settings.operator_url.rstrip("/"), {"Authorization": f"Bearer {settings.operator_token}"}


def _request(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    import httpx

    try:
        answer = httpx.request(method, url, headers=headers, json=body, timeout=120)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the operator API at {url}: {exc}") from exc
    data = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code >= 400:
        message = data.get("error") or data.get("error_description") or answer.text[:300]
        click.echo(json.dumps(data, indent=2) if data else message, err=True)
        sys.exit(1 if answer.status_code < 500 else 2)
    return data


@click.group()
def chargers() -> None:
    """Look at and control the chargers of a running listener (its operator API)."""


@chargers.command("list")
@settings_options("operator_url", "operator_token")
@click.option(
    "--connected/--disconnected", default=None, help="Only connected (or only disconnected) chargers."
)
@click.option("--status", help="Only chargers with a connector in this OCPP status (e.g. Faulted).")
def list_chargers(connected: bool | None, status: str | None, **options: Any) -> None:
    """A table of every charger: connection, model, and each connector's status."""
    url, headers = _client(options)
    params = []
    if connected is not None:
        params.append(f"connected={'true' if connected else 'false'}")
    if status:
        params.append(f"status={status}")
    data = _request("GET", url + "/v1/chargers" + ("?" + "&".join(params) if params else ""), headers)
    rows = [("charger", "version", "connected", "last seen", "model", "connectors")]
    for c in data["chargers"]:
        conns = " ".join(f"{x['evse_id']}/{x['connector_id']}:{x['status'] or '?'}" for x in c["connectors"])
        model = " ".join(v for v in (c["vendor"], c["model"]) if v)
        rows.append((c["charge_point_id"], c["ocpp_version"] or "", "yes" if c["connected"] else "no",
                     c["last_seen"] or "", model, conns))  # fmt: skip
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@chargers.command("show")
@settings_options("operator_url", "operator_token")
@click.argument("charge_point_id")
def show_charger(charge_point_id: str, **options: Any) -> None:
    """One charger's live state, as JSON."""
    url, headers = _client(options)
    click.echo(json.dumps(_request("GET", f"{url}/v1/chargers/{charge_point_id}", headers), indent=2))


@chargers.command("call")
@settings_options("operator_url", "operator_token")
@click.argument("charge_point_id")
@click.argument("action")
@click.argument("payload", default="{}")
def call_charger(charge_point_id: str, action: str, payload: str, **options: Any) -> None:
    """Send a CSMS-initiated CALL (e.g. Reset '{"type": "Soft"}') and print the charger's answer."""
    url, headers = _client(options)
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"PAYLOAD is not JSON: {exc}") from exc
    answer = _request("POST", f"{url}/v1/chargers/{charge_point_id}/calls/{action}", headers, body)
    click.echo(json.dumps(answer, indent=2))
