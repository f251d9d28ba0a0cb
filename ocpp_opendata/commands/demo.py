"""`ocpp-opendata demo`: the whole pipeline end to end on local files, for a newcomer.

Listener → simulated fleet → Dagster materializations (in the instance `dagster dev` shows) →
a published release → the API and landing page, with progress throughout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ocpp_opendata.options import settings_from, settings_options
from ocpp_opendata.settings import Settings, env_name

MARKER = ".ocpp-opendata-demo"
# What a demo run creates below the data root, and so what a second run may replace.
DEMO_PARTS = (
    "raw",
    "wal",
    "state",
    "published",
    "work",
    "dagster_home",
    "demo",
    "stations.csv",
    "areas.geojson",
)


DEMO_CHARGERS = 50
# Simulated seconds per real second: a week in about five minutes. A finite speed paces every
# message and plays offline periods as real absences, so the pipeline can map receipt times of the
# replay back to event time and see them (docs/simulator.md, "Time"; --speed 0 cannot show them).
DEMO_SPEED = 2000.0
ROLL_SECONDS = 5  # the demo listener's --roll-seconds: the pipeline reads only rolled raw files


class DemoError(click.ClickException):
    pass


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def prepare_data_dir(data_dir: Path, console: Console) -> None:
    """Replace a previous demo's data cleanly; never touch a folder the demo did not make."""
    marker = data_dir / MARKER
    if data_dir.exists() and any(data_dir.iterdir()) and not marker.exists():
        foreign = sorted(p.name for p in data_dir.iterdir() if p.name in DEMO_PARTS)
        if foreign:
            raise DemoError(
                f"{data_dir} holds data the demo did not create ({', '.join(foreign)}); "
                "give the demo an empty folder with --data-dir"
            )
    if marker.exists():
        console.print(f"[dim]replacing the previous demo data in {data_dir}[/dim]")
        for name in DEMO_PARTS:
            path = data_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("Created by `ocpp-opendata demo`; a later demo run replaces this folder's data.\n")


def demo_key_file(console: Console) -> Path:
    """A pseudonym key for the demo, outside the data root and the repository (never published)."""
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ocpp-opendata"
    path = home / "demo-pseudonym.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        console.print(f"created a demo pseudonym key at {path} (outside the data; keep real keys elsewhere)")
    return path


def demo_operator_token(console: Console) -> tuple[Path, str]:
    """A fresh control token for this demo's operator API, in a token file outside the data root."""
    from ingest.operate.tokens import create_token

    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "ocpp-opendata"
    path = home / "demo-operators.tokens"
    path.unlink(missing_ok=True)  # one token per demo run: the previous run's stops working
    return path, create_token(path, "demo-operator", "control")


@contextlib.contextmanager
def running_listener(settings: Settings, log_path: Path, tokens: Path) -> Iterator[str]:
    """A listener subprocess that accepts every idTag (simulated users) and serves the operator API,
    stopped with SIGTERM."""
    port = settings.listen_port
    args = [
        sys.executable, "-m", "ocpp_opendata.cli", "listen", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(settings.data_dir), "--authorize", "accept-all", "--rate-limit", "0",
        "--roll-seconds", str(ROLL_SECONDS), "--operator-tokens", str(tokens),
        "--operator-port", str(settings.operator_port),
    ]  # fmt: skip
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise DemoError(f"the listener exited with {proc.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise DemoError(f"the listener did not start; see {log_path}") from None
                time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/ocpp"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def simulate(settings: Settings, url: str, console: Console) -> Any:
    from ingest.simulator import SimulationError, SimulationOptions, run_blocking

    sim = SimulationOptions.from_settings(dataclasses.replace(settings, sim_url=url))
    sim = dataclasses.replace(sim, progress=sys.stderr.isatty())
    try:
        result = run_blocking(sim)
    except SimulationError as exc:
        raise DemoError(f"simulation failed: {exc}") from exc
    console.print(result.summary())
    return result


def publish(settings: Settings, console: Console) -> str | None:
    from pipelines import runner
    from pipelines.checks import PrivacyCheckError

    dates = runner.all_dates(settings)
    if not dates:
        raise DemoError("the raw zone holds no events to publish")
    try:
        with runner.instance_for_cli() as instance:
            for n, day in enumerate(dates, 1):
                console.print(f"  materializing partition {day} ({n}/{len(dates)})")
                runner.run(settings, [day], publish=False, instance=instance)
            console.print("  publishing one release for all partitions")
            summary = runner.run(settings, [], publish=True, instance=instance)
    except (PrivacyCheckError, runner.PipelineRunError) as exc:
        raise DemoError(f"the pipeline refused to publish: {exc}") from exc
    return summary.release_id


@click.command()
@settings_options("sim_chargers", "sim_days", "sim_seed", "sim_speed", "timezone", "pseudonym_key_file")
@click.option(
    "--listen-port", type=int, default=None, help="Port of the demo's OCPP listener [default 9000]."
)
@click.option("--api-host", default=None, help="Address the API binds to [default 127.0.0.1].")
@click.option("--api-port", type=int, default=None, help="Port of the API and landing page [default 8000].")
@click.option(
    "--operator-port", type=int, default=None, help="Port of the listener's operator API [default 9001]."
)
@click.option("--no-serve", is_flag=True, help="Exit after publishing instead of serving the API.")
def demo(
    listen_port: int | None, api_host: str | None, api_port: int | None, operator_port: int | None,
    no_serve: bool, **options: Any,
) -> None:  # fmt: skip
    """Run everything once on local files: listener, simulated fleet, Dagster, API.

    Defaults: 50 chargers, 7 simulated days at --speed 2000 (about five minutes), data in ./data,
    Dagster's SQLite instance in ./data/dagster_home (the one `dagster dev` shows afterwards), API on
    http://127.0.0.1:8000.
    """
    options.update(listen_port=listen_port, api_host=api_host, api_port=api_port, operator_port=operator_port)
    if options["sim_chargers"] is None and "OCPP_OPENDATA_SIM_CHARGERS" not in os.environ:
        options["sim_chargers"] = DEMO_CHARGERS
    if options["sim_speed"] is None and "OCPP_OPENDATA_SIM_SPEED" not in os.environ:
        options["sim_speed"] = DEMO_SPEED
    settings = settings_from(options)
    settings = dataclasses.replace(settings, sim_timezone=settings.timezone, sim_truth=None)
    console = Console(stderr=True)

    for what, host, port, flag in (("listener", "127.0.0.1", settings.listen_port, "--listen-port"),
                                   ("operator API", "127.0.0.1", settings.operator_port, "--operator-port"),
                                   ("API", settings.api_host, settings.api_port, "--api-port")):  # fmt: skip
        if port_in_use(host, port):
            raise DemoError(
                f"port {port} for the demo's {what} is in use (another demo running?); use {flag}"
            )

    data_dir = settings.data_dir.resolve()
    prepare_data_dir(data_dir, console)
    demo_dir = data_dir / "demo"
    has_key = settings.pseudonym_key or settings.pseudonym_key_file
    key_file = settings.pseudonym_key_file if has_key else demo_key_file(console)
    if "DAGSTER_HOME" not in os.environ:
        # The instance `dagster dev` uses when started from the repository root (its dagster.yaml
        # keeps SQLite storage in data/dagster_home); elsewhere, a plain instance in the data root.
        home = Path.cwd() if (Path.cwd() / "dagster.yaml").exists() else data_dir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        os.environ["DAGSTER_HOME"] = str(home)
    settings = dataclasses.replace(
        settings,
        data_dir=data_dir,
        pseudonym_key_file=key_file,
        sim_truth=demo_dir / "truth",
        sim_station_registry=data_dir,
    )

    # Dagster assets read their settings from the environment (as under `dagster dev`).
    for name in ("data_dir", "pseudonym_key_file", "timezone"):
        os.environ[env_name(name)] = str(getattr(settings, name))

    started = time.monotonic()
    tokens, token = demo_operator_token(console)
    console.rule("1/3  simulated chargers → listener → raw zone")
    with running_listener(settings, demo_dir / "listener.log", tokens) as url:
        console.print(f"listener on {url}; {settings.sim_chargers} chargers, {settings.sim_days:g} days")
        simulate(settings, url, console)
    # Stopped first: SIGTERM rolls everything it received into the raw Parquet the pipeline reads.
    console.rule("2/3  Dagster: pseudonymize, aggregate, check, publish")
    release = publish(settings, console)
    console.print(f"published release {release} in {time.monotonic() - started:.0f} s")
    _print_where(settings, data_dir, key_file, token)
    if no_serve:
        return
    import uvicorn

    from api.app import create_app

    # The listener runs again while the API serves: its operator API shows the chargers' last state.
    with running_listener(settings, demo_dir / "listener.log", tokens):
        console.print("serving until Ctrl-C")
        uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


def _print_where(settings: Settings, data_dir: Path, key_file: Path, token: str) -> None:
    console = Console(stderr=True)
    base = f"http://{settings.api_host}:{settings.api_port}"
    console.rule("3/3  the open data")
    console.print(f"landing page      {base}/")
    console.print(f"API documentation {base}/docs")
    console.print(f"datasets          {base}/v1/datasets")
    console.print("Dagster UI        from the repository root:", soft_wrap=True)
    console.print(
        f"  DAGSTER_HOME={os.environ['DAGSTER_HOME']} OCPP_OPENDATA_DATA_DIR={data_dir} \\\n"
        f"  OCPP_OPENDATA_PSEUDONYM_KEY_FILE={key_file} .venv/bin/dagster dev",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"ground truth      {settings.sim_truth}")
    operator = f"http://127.0.0.1:{settings.operator_port}"
    console.print(
        f"operator API      {operator} (docs/operate.md); this demo's control token:", soft_wrap=True
    )
    console.print(
        f"  export OCPP_OPENDATA_OPERATOR_TOKEN={token} OCPP_OPENDATA_OPERATOR_URL={operator}\n"
        f'  curl -H "Authorization: Bearer $OCPP_OPENDATA_OPERATOR_TOKEN" {operator}/v1/chargers\n'
        "  .venv/bin/ocpp-opendata chargers list",
        soft_wrap=True,
        highlight=False,
    )
