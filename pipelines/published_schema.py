"""The published zone's data contract: every open dataset, its columns, units and layout.

Imported by `pipelines` (which writes the datasets) and by `api` (which serves them); nothing else
from `pipelines` is imported by the API. `docs/datasets.md` documents the same columns.

Layout of one release (see `docs/datasets.md`):

```
DATA_DIR/published/current -> releases/<release_id>
DATA_DIR/published/releases/<release_id>/
    datapackage.json  dcat.jsonld  manifest.json  catalog.duckdb
    datasets/<dataset>/date=YYYY-MM-DD/part-0.parquet     (partitioned datasets)
    datasets/stations/part-0.parquet                      (unpartitioned)
    downloads/<dataset>.parquet                           (whole dataset, one file)
```

Every partitioned dataset also carries its partition key as a real `date` column inside the
Parquet files and in `catalog.duckdb`, so a single file read without Hive partitioning is complete.
All timestamps are UTC (`timestamp[us, tz=UTC]`); `date` is the *local* calendar date (the
pipeline's time zone, default Europe/Stockholm) the row belongs to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = "1.1.0"

TS = pa.timestamp("us", tz="UTC")
PUBLISHED_DIRNAME = "published"
CURRENT_LINK = "current"
RELEASES_DIRNAME = "releases"
DATASETS_DIRNAME = "datasets"
DOWNLOADS_DIRNAME = "downloads"
CATALOG_FILENAME = "catalog.duckdb"
DATAPACKAGE_FILENAME = "datapackage.json"
DCAT_FILENAME = "dcat.jsonld"
MANIFEST_FILENAME = "manifest.json"
PART_FILENAME = "part-0.parquet"
PARTITION_KEY = "date"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
DEFAULT_LICENSE = "CC-BY-4.0"
# 20261125T101500Z-3f2a1c: UTC creation time plus 6 hex digits.
RELEASE_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    unit: str = ""
    nullable: bool = True

    @property
    def frictionless_type(self) -> str:
        """The Table Schema type of this column (datapackage.json)."""
        t = self.type
        if pa.types.is_timestamp(t):
            return "datetime"
        if pa.types.is_date(t):
            return "date"
        if pa.types.is_integer(t):
            return "integer"
        if pa.types.is_floating(t):
            return "number"
        if pa.types.is_boolean(t):
            return "boolean"
        return "string"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    description: str
    columns: tuple[Column, ...]
    # Column the API's `from`/`to` filters apply to (None: no time filter).
    time_column: str | None
    # Columns the API accepts as equality filters (`?station_id=...`).
    filterable: tuple[str, ...]
    # Deterministic row order inside every file (and the API's stable paging order).
    sort_keys: tuple[str, ...]
    # True: datasets/<name>/date=YYYY-MM-DD/part-0.parquet; False: datasets/<name>/part-0.parquet.
    partitioned: bool = True
    # Partition granularity: "day" (date = local day) or "month" (date = first local day of the month).
    partition_period: str = "day"

    @property
    def has_coordinates(self) -> bool:
        names = self.column_names
        return "latitude" in names and "longitude" in names

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns],
            metadata={"dataset": self.name, "schema_version": SCHEMA_VERSION},
        )

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _date(desc: str = "Local calendar date the row belongs to (partition key).") -> Column:
    return Column(PARTITION_KEY, pa.date32(), desc, "local date", nullable=False)


STATION_ID = Column("station_id", pa.string(), "Public charging station id (the OCPP charge point id).")
AREA = Column("area", pa.string(), "District the station lies in (operator registry or district polygons).")
UTILISATION = Column(
    "utilisation",
    pa.float64(),
    "Occupied connector-minutes divided by available connector-minutes (available + occupied + "
    "reserved); null when the station was never available.",
    "ratio 0..1",
)
COMPLETENESS = Column(
    "completeness",
    pa.float64(),
    "Share of connector-minutes in the period with a known state (not offline, not unknown).",
    "ratio 0..1",
)
DISTINCT_USERS = Column(
    "distinct_users",
    pa.int64(),
    "Distinct users (pseudonyms) in the period; null when suppressed (fewer than k, or hidden so that "
    "no published total reveals a suppressed cell).",
)
USERS_SUPPRESSED = Column(
    "distinct_users_suppressed",
    pa.bool_(),
    "True when distinct_users is withheld for privacy.",
    nullable=False,
)


def _usage_metrics() -> tuple[Column, ...]:
    return (
        Column("sessions", pa.int64(), "Charging sessions plugged in during the period.", nullable=False),
        Column(
            "energy_kwh",
            pa.float64(),
            "Energy delivered by the sessions plugged in during the period (exact, unrounded).",
            "kWh",
            nullable=False,
        ),
        Column(
            "occupied_hours",
            pa.float64(),
            "Connector-hours with a vehicle connected (Charging, SuspendedEV/EVSE, Finishing, Preparing).",
            "h",
            nullable=False,
        ),
        Column(
            "charging_hours",
            pa.float64(),
            "Connector-hours in status Charging.",
            "h",
            nullable=False,
        ),
        Column(
            "idle_hours",
            pa.float64(),
            "Connector-hours occupied but not charging (occupied_hours - charging_hours).",
            "h",
            nullable=False,
        ),
        Column(
            "available_hours",
            pa.float64(),
            "Connector-hours in status Available (free to use).",
            "h",
            nullable=False,
        ),
        Column(
            "offline_hours",
            pa.float64(),
            "Connector-hours while the station had no connection to the backend.",
            "h",
            nullable=False,
        ),
        Column(
            "out_of_order_hours",
            pa.float64(),
            "Connector-hours in status Faulted or Unavailable.",
            "h",
            nullable=False,
        ),
        UTILISATION,
        Column(
            "all_busy_minutes",
            pa.float64(),
            "Minutes during which every connector of the station was occupied (for areas: summed over "
            "stations).",
            "min",
            nullable=False,
        ),
        DISTINCT_USERS,
        USERS_SUPPRESSED,
        COMPLETENESS,
    )


STATIONS = Dataset(
    name="stations",
    title="Public charging stations",
    description="Public stations only: identity, connectors and hardware from the stations' own boot "
    "notifications, location and characteristics from the operator's registry. Non-public stations "
    "(home, private, fleet) never appear.",
    columns=(
        Column("station_id", pa.string(), "Charging station id (the OCPP charge point id).", nullable=False),
        Column("name", pa.string(), "Station name from the operator's registry."),
        Column("latitude", pa.float64(), "Latitude (WGS 84).", "degrees"),
        Column("longitude", pa.float64(), "Longitude (WGS 84).", "degrees"),
        AREA,
        Column("max_power_kw", pa.float64(), "Maximum power of the station (registry).", "kW"),
        Column("access", pa.string(), "Access type from the registry; always 'public' here."),
        Column("connectors", pa.int32(), "Number of connectors seen in the station's messages."),
        Column("ocpp_version", pa.string(), "OCPP version the station last spoke ('1.6' or '2.0.1')."),
        Column("vendor", pa.string(), "Vendor from the station's last BootNotification."),
        Column("model", pa.string(), "Model from the station's last BootNotification."),
        Column("first_seen", TS, "First time the backend received anything from the station.", "UTC"),
        Column("last_seen", TS, "Last time the backend received anything from the station.", "UTC"),
    ),
    time_column=None,
    filterable=("station_id", "area", "vendor", "model", "ocpp_version"),
    sort_keys=("station_id",),
    partitioned=False,
)

CHARGING_SESSIONS = Dataset(
    name="charging_sessions",
    title="Charging sessions",
    description="One row per charging session. Times are rounded (default 15 min), energy (0.5 kWh) and "
    "power (1 kW) too; durations are computed from the rounded times. Sessions at a station with fewer "
    "than k distinct users in the pseudonym period have no row (they count in the station and area totals); "
    "user_pseudonym is null on station-days with fewer than k users.",
    columns=(
        _date("Local date of the plug-in (partition key)."),
        Column("session_id", pa.string(), "Opaque, stable session id (keyed hash).", nullable=False),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        Column(
            "connector_id",
            pa.int32(),
            "Connector id (1.6 connectorId, 2.0.1 evseId); null when the charger never named it.",
        ),
        AREA,
        Column("plug_in", TS, "Vehicle connected (rounded).", "UTC", nullable=False),
        Column("charging_start", TS, "First power delivery (rounded); null when none was delivered.", "UTC"),
        Column("charging_end", TS, "Last power delivery (rounded); null when none was delivered.", "UTC"),
        Column("plug_out", TS, "Vehicle disconnected (rounded); null while the session is open.", "UTC"),
        Column("connected_minutes", pa.float64(), "plug_out - plug_in, from the rounded times.", "min"),
        Column("charging_minutes", pa.float64(), "charging_end - charging_start (rounded times).", "min"),
        Column("idle_minutes", pa.float64(), "connected_minutes - charging_minutes.", "min"),
        Column("energy_kwh", pa.float64(), "Energy delivered (rounded).", "kWh", nullable=False),
        Column("max_power_kw", pa.float64(), "Highest power during the session (rounded).", "kW"),
        Column(
            "stop_reason", pa.string(), "Stop reason reported by the station (OCPP Reason/stoppedReason)."
        ),
        Column(
            "user_pseudonym",
            pa.string(),
            "Keyed pseudonym of the user, scoped to this station and the pseudonym period (default a "
            "calendar month): repeat visits at one station are visible, visits at two stations are never "
            "linkable. Null when suppressed.",
        ),
        Column(
            "energy_source",
            pa.string(),
            "Where energy_kwh comes from: meter_stop (start/stop register) or meter_values (sampled "
            "register), or none.",
            nullable=False,
        ),
        Column(
            "clock_corrected",
            pa.bool_(),
            "A charger timestamp was replaced by the receipt time.",
            nullable=False,
        ),
        Column(
            "left_open", pa.bool_(), "No end seen yet; republished once the session closes.", nullable=False
        ),
        Column(
            "quality_flags",
            pa.string(),
            "Further quality flags, comma-separated and sorted (e.g. register_reset, stop_unknown_id, "
            "late_meter_values, implausible_power); empty when clean.",
            nullable=False,
        ),
    ),
    time_column="plug_in",
    filterable=("station_id", "area", "connector_id", "stop_reason", "energy_source", "user_pseudonym"),
    sort_keys=("date", "area", "station_id", "plug_in", "session_id"),
)

STATION_ENERGY_15MIN = Dataset(
    name="station_energy_15min",
    title="Energy per public station and 15 minutes",
    description="Metered energy per public station and 15-minute interval (exact values); no session or "
    "user field.",
    columns=(
        _date("Local date of the interval start (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        AREA,
        Column("interval_start", TS, "Start of the 15-minute interval.", "UTC", nullable=False),
        Column("energy_kwh", pa.float64(), "Energy delivered in the interval.", "kWh", nullable=False),
        Column("average_power_kw", pa.float64(), "energy_kwh / 0.25 h.", "kW", nullable=False),
        Column("peak_power_kw", pa.float64(), "Highest power sampled in the interval.", "kW", nullable=False),
    ),
    time_column="interval_start",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id", "interval_start"),
)

AREA_PEAK_15MIN = Dataset(
    name="area_peak_15min",
    title="Peak load per area and 15 minutes",
    description="Load per district and 15-minute interval, for grid planning. Non-public stations count "
    "only where they meet the privacy threshold together.",
    columns=(
        _date("Local date of the interval start (partition key)."),
        Column("area", pa.string(), AREA.description, nullable=False),
        Column("interval_start", TS, "Start of the 15-minute interval.", "UTC", nullable=False),
        Column("stations", pa.int64(), "Stations with energy delivered in the interval.", nullable=False),
        Column("energy_kwh", pa.float64(), "Energy delivered in the interval.", "kWh", nullable=False),
        Column("average_power_kw", pa.float64(), "energy_kwh / 0.25 h.", "kW", nullable=False),
        Column(
            "peak_power_kw",
            pa.float64(),
            "Highest simultaneous power of the area in the interval (sum over stations per minute).",
            "kW",
            nullable=False,
        ),
    ),
    time_column="interval_start",
    filterable=("area",),
    sort_keys=("date", "area", "interval_start"),
)

STATION_AVAILABILITY_HOURLY = Dataset(
    name="station_availability_hourly",
    title="Availability per public station and hour",
    description="Connector-minutes per OCPI status per public station and local hour. OCPP statuses are "
    "mapped to OCPI as documented in docs/pipeline.md; offline = no connection to the backend.",
    columns=(
        _date("Local date of the hour (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        AREA,
        Column("hour_start", TS, "Start of the local hour (as UTC).", "UTC", nullable=False),
        Column("connectors", pa.int32(), "Connectors of the station.", nullable=False),
        Column("available_minutes", pa.float64(), "OCPI AVAILABLE.", "connector-min", nullable=False),
        Column(
            "occupied_minutes",
            pa.float64(),
            "OCPI CHARGING/BLOCKED: Preparing, Charging, SuspendedEV, SuspendedEVSE, Finishing (1.6); "
            "Occupied (2.0.1).",
            "connector-min",
            nullable=False,
        ),
        Column(
            "charging_minutes",
            pa.float64(),
            "Part of occupied_minutes in status Charging.",
            "connector-min",
            nullable=False,
        ),
        Column("reserved_minutes", pa.float64(), "OCPI RESERVED.", "connector-min", nullable=False),
        Column("unavailable_minutes", pa.float64(), "OCPI INOPERATIVE.", "connector-min", nullable=False),
        Column("faulted_minutes", pa.float64(), "OCPI OUTOFORDER.", "connector-min", nullable=False),
        Column(
            "offline_minutes", pa.float64(), "OCPI UNKNOWN: no connection.", "connector-min", nullable=False
        ),
        Column(
            "unknown_minutes",
            pa.float64(),
            "Connected but no status known yet.",
            "connector-min",
            nullable=False,
        ),
        Column(
            "all_busy_minutes",
            pa.float64(),
            "Minutes with every connector of the station occupied.",
            "min",
            nullable=False,
        ),
    ),
    time_column="hour_start",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id", "hour_start"),
)

STATION_USAGE_DAILY = Dataset(
    name="station_usage_daily",
    title="Usage per public station and day",
    description="Sessions, energy, occupancy, utilisation, all-busy minutes, distinct users (suppressed "
    "below k) and data completeness per public station and local day.",
    columns=(
        _date(),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        AREA,
        *_usage_metrics(),
    ),
    time_column="date",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id"),
)

STATION_USAGE_MONTHLY = Dataset(
    name="station_usage_monthly",
    title="Usage per public station and month",
    description="As station_usage_daily, per local calendar month; distinct users counted over the month.",
    columns=(
        _date("First local day of the month (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        AREA,
        Column("days", pa.int32(), "Days of the month with data.", nullable=False),
        *_usage_metrics(),
    ),
    time_column="date",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id"),
    partition_period="month",
)

AREA_USAGE_DAILY = Dataset(
    name="area_usage_daily",
    title="Usage per area and day",
    description="Usage per district and local day over its public stations, plus its non-public stations "
    "where those meet the privacy threshold together.",
    columns=(
        _date(),
        Column("area", pa.string(), AREA.description, nullable=False),
        Column("stations", pa.int64(), "Stations counted in the area totals.", nullable=False),
        *_usage_metrics(),
    ),
    time_column="date",
    filterable=("area",),
    sort_keys=("date", "area"),
)

QUALITY_ISSUES = Dataset(
    name="quality_issues",
    title="Records withheld or flagged by the quality rules",
    description="Every record a quality rule withheld from, or flagged in, a dataset of this release, one "
    "row per affected dataset: the rest of that dataset's partition is published. Rules, thresholds and "
    "their sources: docs/pipeline.md (Quality quarantine). Non-public stations appear by area only, and "
    "only where their area totals are published.",
    columns=(
        Column("release", pa.string(), "Release whose build took the decision (reused partitions keep it)."),
        _date("Local date of the record (partition key)."),
        Column("dataset", pa.string(), "Dataset the record is withheld from or flagged in.", nullable=False),
        Column(
            "dataset_date",
            pa.date32(),
            "Partition of that dataset (first day of the month for station_usage_monthly).",
            "local date",
            nullable=False,
        ),
        Column(
            "station_id",
            pa.string(),
            "Public station; null for non-public stations.",
        ),
        AREA,
        Column(
            "record",
            pa.string(),
            "What the record is: session or station_15min (a station's 15-minute interval).",
            nullable=False,
        ),
        Column(
            "record_id",
            pa.string(),
            "Opaque id, the same on every row of one record; matches no other published id.",
        ),
        Column("interval_start", TS, "Start of the 15-minute interval (station_15min records).", "UTC"),
        Column(
            "action",
            pa.string(),
            "withheld (left out), flagged (published with the rule in its "
            "quality flags) or overridden (published by a reviewed operator override).",
            nullable=False,
        ),
        Column("rule", pa.string(), "Quality rule id (docs/pipeline.md).", nullable=False),
        Column("measured_value", pa.float64(), "The value the rule measured (unit in `unit`)."),
        Column("limit_value", pa.float64(), "The rule's limit for this record (unit in `unit`)."),
        Column("unit", pa.string(), "Unit of measured_value and limit_value."),
        Column(
            "withheld_energy_kwh",
            pa.float64(),
            "Energy of the record left out of the dataset (0 when flagged).",
            "kWh",
        ),
        Column(
            "detail",
            pa.string(),
            "Why a record follows another's decision, or the override's reason and reviewer.",
        ),
    ),
    time_column="date",
    filterable=("dataset", "station_id", "area", "rule", "action", "record"),
    sort_keys=("date", "dataset", "station_id", "area", "record_id", "interval_start", "rule"),
)

# --- Reliability (issue #18; definitions in docs/reliability.md, logic in pipelines/reliability/) ----

CONNECTOR_ID = Column("connector_id", pa.int32(), "Port: 1.6 connectorId, 2.0.1 evseId.", nullable=False)

PORT_OUTAGES = Dataset(
    name="port_outages",
    title="Outages per public port",
    description="One row per outage of a public port (23 CFR 680.112(a)(8)): faulted, unavailable, offline "
    "(no connection for longer than two heartbeat intervals) or no_power (a session that delivered < 1 kWh "
    "below the port's required minimum power). Operator-declared exclusions (outage_exclusions.csv) count "
    "only where they overlap the outage.",
    columns=(
        _date("Local date the outage started on (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        CONNECTOR_ID,
        AREA,
        Column(
            "start", TS, "Outage start (exact; no_power outages on the rounding grid).", "UTC", nullable=False
        ),
        Column("end", TS, "Outage end (the end of the data while ongoing).", "UTC", nullable=False),
        Column("minutes", pa.float64(), "end - start.", "min", nullable=False),
        Column("cause", pa.string(), "faulted, unavailable, offline or no_power.", nullable=False),
        Column(
            "error_code", pa.string(), "OCPP 1.6 errorCode of the Faulted notification (NoError omitted)."
        ),
        Column("vendor_error_code", pa.string(), "vendorErrorCode of the Faulted notification."),
        Column(
            "mrec_code",
            pa.string(),
            "ChargeX Minimum Required Error Code, when the charger sends MREC (vendorId com.evgo.mrec).",
        ),
        Column(
            "ongoing",
            pa.bool_(),
            "True when the outage lasts until the end of the port's data.",
            nullable=False,
        ),
        Column("excluded", pa.bool_(), "True when a declared exclusion overlaps the outage.", nullable=False),
        Column(
            "excluded_minutes",
            pa.float64(),
            "Minutes of the outage covered by exclusions (T_excluded).",
            "min",
            nullable=False,
        ),
        Column(
            "exclusion_reason",
            pa.string(),
            "Reasons of the overlapping exclusions (NEVI list), comma-separated.",
        ),
    ),
    time_column="start",
    filterable=("station_id", "area", "cause"),
    sort_keys=("date", "station_id", "connector_id", "start"),
)

PORT_UPTIME_MONTHLY = Dataset(
    name="port_uptime_monthly",
    title="NEVI uptime per public port and month",
    description="Port uptime by 23 CFR 680.116(b): uptime_pct = (T - (T_outage - T_excluded)) / T x 100 with "
    "T the observed minutes of the month; the trailing 12-month figure and whether it exceeds 97 %.",
    columns=(
        _date("First local day of the month (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        CONNECTOR_ID,
        AREA,
        Column(
            "period_minutes",
            pa.float64(),
            "T: minutes of the month with a known state or offline.",
            "min",
            nullable=False,
        ),
        Column(
            "outage_minutes",
            pa.float64(),
            "T_outage: minutes of port_outages inside the month.",
            "min",
            nullable=False,
        ),
        Column(
            "excluded_minutes",
            pa.float64(),
            "T_excluded: excluded minutes of those outages.",
            "min",
            nullable=False,
        ),
        Column(
            "unknown_minutes",
            pa.float64(),
            "Minutes with no data at all (not part of T).",
            "min",
            nullable=False,
        ),
        Column("uptime_pct", pa.float64(), "Uptime of the month; null when T = 0.", "%"),
        Column(
            "uptime_pct_12m",
            pa.float64(),
            "Uptime over this and the 11 previous months; null while fewer "
            "than 12 months have data (window_months).",
            "%",
        ),
        Column(
            "window_months", pa.int32(), "Months with data in the trailing 12-month window.", nullable=False
        ),
        Column("meets_nevi", pa.bool_(), "Trailing uptime (over the window_months there are) > 97 %."),
    ),
    time_column="date",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id", "connector_id"),
    partition_period="month",
)


def _reliability_columns() -> tuple[Column, ...]:
    return (
        Column("area", pa.string(), "District, or '(network)' for all public stations.", nullable=False),
        Column("power_class", pa.string(), "rapid (registry max_power_kw >= 50) or other.", nullable=False),
        Column("stations", pa.int64(), "Public stations counted.", nullable=False),
        Column(
            "working_minutes",
            pa.float64(),
            "AVAILABLE, CHARGING/BLOCKED (occupied) and RESERVED connector-minutes.",
            "min",
            nullable=False,
        ),
        Column(
            "ineligible_minutes",
            pa.float64(),
            "UNKNOWN connector-minutes (offline, no data): count as reliable (reg. 7(3)(b)).",
            "min",
            nullable=False,
        ),
        Column(
            "not_working_minutes",
            pa.float64(),
            "INOPERATIVE (Unavailable) and OUTOFORDER (Faulted) connector-minutes.",
            "min",
            nullable=False,
        ),
        Column("total_minutes", pa.float64(), "All connector-minutes.", "min", nullable=False),
        Column("reliability_pct", pa.float64(), "(total - not working) / total x 100 (UK reg. 7).", "%"),
        Column("meets_uk_reg7", pa.bool_(), "Rapid class only: reliability_pct >= 99 (null for other)."),
    )


NETWORK_RELIABILITY_MONTHLY = Dataset(
    name="network_reliability_monthly",
    title="Network reliability per area and month (UK reg. 7)",
    description="Reliability of the public stations by the UK Public Charge Point Regulations 2023, reg. 7, "
    "per area and for the whole network, rapid (>= 50 kW) and other chargers apart.",
    columns=(_date("First local day of the month (partition key)."), *_reliability_columns()),
    time_column="date",
    filterable=("area", "power_class"),
    sort_keys=("date", "area", "power_class"),
    partition_period="month",
)

NETWORK_RELIABILITY_YEARLY = Dataset(
    name="network_reliability_yearly",
    title="Network reliability per area and calendar year (UK reg. 7)",
    description="As network_reliability_monthly per local calendar year; reg. 7(2) asks >= 99 % for rapid "
    "chargers per year.",
    columns=(Column("year", pa.int32(), "Local calendar year.", nullable=False), *_reliability_columns()),
    time_column=None,
    filterable=("year", "area", "power_class"),
    sort_keys=("year", "area", "power_class"),
    partitioned=False,
)


def _outcome(name: str, text: str) -> Column:
    return Column(name, pa.int64(), text + " Null when suppressed.")


STATION_SESSION_OUTCOMES_DAILY = Dataset(
    name="station_session_outcomes_daily",
    title="Session outcomes per public station and day",
    description="How the closed sessions plugged in on the day ended: successful (>= 1 kWh or >= 5 min "
    "charging), failed_to_start, ended_in_fault, too_short; visits and the first-attempt success rate. "
    "Counts are withheld where the station-day had fewer than k distinct users.",
    columns=(
        _date("Local date of the plug-in (partition key)."),
        Column("station_id", pa.string(), STATION_ID.description, nullable=False),
        AREA,
        Column("sessions", pa.int64(), "Closed sessions plugged in on the day.", nullable=False),
        _outcome(
            "successful", "Sessions that delivered >= 1 kWh or charged >= 5 minutes, not ended by a fault."
        ),
        _outcome(
            "failed_to_start",
            "Transactions started that delivered no energy at all, plus refused authorizations.",
        ),
        _outcome(
            "refused_authorizations",
            "Authorizations the backend refused on the day (counted in failed_to_start; no session).",
        ),
        _outcome(
            "ended_in_fault", "Sessions stopped by a charger fault (stop reason or Faulted at the end)."
        ),
        _outcome("too_short", "The rest: some energy, under 1 kWh and 5 minutes."),
        _outcome("visits", "A user's sessions at the station chained by gaps under 30 minutes."),
        Column(
            "first_attempt_success_pct",
            pa.float64(),
            "Visits whose first session succeeded; null when suppressed.",
            "%",
        ),
        Column(
            "outcomes_suppressed",
            pa.bool_(),
            "True when fewer than k distinct users: counts withheld.",
            nullable=False,
        ),
    ),
    time_column="date",
    filterable=("station_id", "area"),
    sort_keys=("date", "station_id"),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        STATIONS,
        CHARGING_SESSIONS,
        STATION_ENERGY_15MIN,
        AREA_PEAK_15MIN,
        STATION_AVAILABILITY_HOURLY,
        STATION_USAGE_DAILY,
        STATION_USAGE_MONTHLY,
        AREA_USAGE_DAILY,
        QUALITY_ISSUES,
        PORT_OUTAGES,
        PORT_UPTIME_MONTHLY,
        NETWORK_RELIABILITY_MONTHLY,
        NETWORK_RELIABILITY_YEARLY,
        STATION_SESSION_OUTCOMES_DAILY,
    )
}


def published_root(data_dir: Path) -> Path:
    return data_dir / PUBLISHED_DIRNAME


def current_release_dir(data_dir: Path) -> Path | None:
    """The directory `published/current` points at, resolved once (None when nothing is published)."""
    link = published_root(data_dir) / CURRENT_LINK
    if not link.is_symlink() and not link.exists():
        return None
    return link.resolve()


def release_dir(data_dir: Path, release_id: str) -> Path:
    if not RELEASE_ID_PATTERN.match(release_id):
        raise ValueError(f"not a release id: {release_id!r}")
    return published_root(data_dir) / RELEASES_DIRNAME / release_id


def dataset_dir(release: Path, dataset: str) -> Path:
    return release / DATASETS_DIRNAME / dataset


def partition_path(release: Path, dataset: str, partition: str | None) -> Path:
    """File of one partition (`partition` = 'YYYY-MM-DD'), or of an unpartitioned dataset (None)."""
    base = dataset_dir(release, dataset)
    if partition is None:
        return base / PART_FILENAME
    return base / f"{PARTITION_KEY}={partition}" / PART_FILENAME


def download_path(release: Path, dataset: str) -> Path:
    return release / DOWNLOADS_DIRNAME / f"{dataset}.parquet"


def schema_markdown() -> str:
    """Column tables of every dataset (used in docs/datasets.md)."""
    out: list[str] = []
    for d in DATASETS.values():
        layout = (
            f"`datasets/{d.name}/date=YYYY-MM-DD/part-0.parquet`"
            + (" (date = first day of the month)" if d.partition_period == "month" else "")
            if d.partitioned
            else f"`datasets/{d.name}/part-0.parquet`"
        )
        out.append(f"### `{d.name}`: {d.title}\n\n{d.description}\n")
        out.append(f"Layout: {layout}. Sorted by {', '.join(d.sort_keys)}.")
        out.append(
            f"Time filter column: `{d.time_column}`. Filterable: "
            + ", ".join(f"`{c}`" for c in d.filterable)
            + ".\n"
            if d.time_column
            else "Filterable: " + ", ".join(f"`{c}`" for c in d.filterable) + ".\n"
        )
        out.append("| column | type | unit | nullable | meaning |\n|---|---|---|---|---|")
        for c in d.columns:
            out.append(
                f"| `{c.name}` | `{c.type}` | {c.unit} | {'yes' if c.nullable else 'no'} | {c.description} |"
            )
        out.append("")
    return "\n".join(out)
