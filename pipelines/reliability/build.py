"""The reliability datasets of a release, built from every work day (not only the changed ones).

They are small (per port-month, per station-day, per area-month) but the trailing 12-month uptime and
outages that run across days need the whole history, so every release rebuilds them in full
(`incremental.ALWAYS_REBUILT`); partitions whose rows did not change keep identical bytes.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ocpp_opendata.registry import RegistryStation
from ocpp_opendata.settings import Settings
from pipelines.reliability.exclusions import load_exclusions
from pipelines.reliability.network import network_reliability
from pipelines.reliability.outages import Outage, local_start_date, port_outages
from pipelines.reliability.outcomes import session_outcomes
from pipelines.reliability.port_states import PORT_STATES_SCHEMA
from pipelines.reliability.refusals import REFUSALS_SCHEMA
from pipelines.reliability.uptime import port_uptime_monthly
from pipelines.storage import read_work
from pipelines.transforms.availability import AVAILABILITY_SCHEMA
from pipelines.transforms.sessions import SESSION_SCHEMA

RELIABILITY_DATASETS = (
    "port_outages",
    "port_uptime_monthly",
    "network_reliability_monthly",
    "network_reliability_yearly",
    "station_session_outcomes_daily",
)


def _register_all(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    for view, name, schema in (
        ("w_port_states", "port_states", PORT_STATES_SCHEMA),
        ("w_all_sessions", "sessions", SESSION_SCHEMA),
        ("w_all_availability", "availability", AVAILABILITY_SCHEMA),
        ("w_all_refusals", "refusals", REFUSALS_SCHEMA),
    ):
        con.register(view, read_work(settings.data_dir, name) or schema.empty_table())


def _outages_table(outages: list[Outage], registry: dict[str, RegistryStation], tz: str) -> pa.Table:
    def col(f: object) -> list:
        return [f(o) for o in outages]  # type: ignore[operator]

    return pa.table(
        {
            "date": pa.array(col(lambda o: local_start_date(o, tz)), pa.date32()),
            "station_id": col(lambda o: o.station_id),
            "connector_id": pa.array(col(lambda o: o.connector_id), pa.int32()),
            "area": col(lambda o: registry[o.station_id].area),
            "start": pa.array(col(lambda o: o.start), pa.timestamp("us", tz="UTC")),
            "end": pa.array(col(lambda o: o.end), pa.timestamp("us", tz="UTC")),
            "minutes": pa.array(col(lambda o: round(o.minutes, 6)), pa.float64()),
            "cause": col(lambda o: o.cause),
            "error_code": pa.array(col(lambda o: o.error_code), pa.string()),
            "vendor_error_code": pa.array(col(lambda o: o.vendor_error_code), pa.string()),
            "mrec_code": pa.array(col(lambda o: o.mrec_code), pa.string()),
            "ongoing": pa.array(col(lambda o: o.ongoing), pa.bool_()),
            "excluded": pa.array(col(lambda o: o.excluded_minutes > 0), pa.bool_()),
            "excluded_minutes": pa.array(col(lambda o: o.excluded_minutes), pa.float64()),
            "exclusion_reason": pa.array(col(lambda o: o.exclusion_reason), pa.string()),
        }
    )


def build_reliability(
    settings: Settings, con: duckdb.DuckDBPyConnection, registry: dict[str, RegistryStation]
) -> dict[str, pa.Table]:
    """The five reliability tables (unconformed; `reg` must be registered on `con`)."""
    _register_all(con, settings)
    exclusions = load_exclusions(settings.data_dir)
    outages = port_outages(con, registry, exclusions, int(settings.round_minutes) * 60)
    tables = {"port_outages": _outages_table(outages, registry, settings.timezone)}
    faulted = [o for o in outages if o.cause == "faulted"]
    con.register(
        "faulted_outages",
        pa.table(
            {
                "station_id": pa.array([o.station_id for o in faulted], pa.string()),
                "connector_id": pa.array([o.connector_id for o in faulted], pa.int32()),
                "start": pa.array([o.start for o in faulted], pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    tables["port_uptime_monthly"] = port_uptime_monthly(
        con, outages, exclusions, settings.timezone
    ).to_arrow_table()
    tables["network_reliability_monthly"] = network_reliability(con, "month").to_arrow_table()
    tables["network_reliability_yearly"] = network_reliability(con, "year").to_arrow_table()
    tables["station_session_outcomes_daily"] = session_outcomes(con, int(settings.privacy_k)).to_arrow_table()
    return tables
