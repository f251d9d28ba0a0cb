"""Settings of the read-only open-data API (`ocpp-opendata serve`)."""

from __future__ import annotations

from dataclasses import dataclass

from ocpp_opendata.settings.fields import opt


@dataclass(frozen=True)
class ApiSettings:
    api_host: str = opt("127.0.0.1", "Address the open-data API binds to.", flag="--host")
    api_port: int = opt(8000, "Port of the open-data API.", flag="--port")
    api_release_poll: float = opt(
        0.5, "How often (s) the API checks published/current for a new release to serve."
    )
    api_cache_bytes: int = opt(
        64 * 1024 * 1024, "Memory for cached answers of the current release (bytes; 0 turns the cache off)."
    )
    api_max_age: int = opt(60, "Cache-Control max-age (s) of answers from the current (unversioned) routes.")
    sql_time_limit: float = opt(5.0, "Time limit (s) of one /v1/sql query; it is interrupted past it.")
    sql_row_cap: int = opt(10000, "Most rows one /v1/sql answer returns (the answer says when it is cut).")
    sql_memory_limit: str = opt(
        "256MB",
        "Memory of one SQL worker process, enforced by the OS (RLIMIT_AS); DuckDB's own limit is below it.",
    )
    sql_threads: int = opt(1, "DuckDB threads of the SQL endpoint's own instance.")
    sql_max_in_flight: int = opt(
        2, "Most /v1/sql queries running at once (one worker process each); more get 429 with Retry-After."
    )
    sql_answer_bytes: int = opt(
        16 * 1024 * 1024, "Most bytes (Arrow, in memory) of one /v1/sql answer; larger answers get 413."
    )
    api_header_timeout: float = opt(
        10.0, "Seconds a connection may take to send a request's headers; then it is closed."
    )
    api_keep_alive: float = opt(5.0, "Seconds an idle keep-alive connection stays open between requests.")
    api_max_connections: int = opt(
        1000, "Most connections and requests at once; beyond that new requests get 503."
    )
    api_shutdown_grace: float = opt(
        3.0, "Seconds a stopping server waits for running requests before closing their connections."
    )
    live_poll: float = opt(
        0.25, "How often (s) the API looks for a changed live charger snapshot (DATA_DIR/live or the store)."
    )
    live_offline_after: float | None = opt(
        None,
        "Seconds without a frame after which the live feeds show a charger UNKNOWN "
        "(default: 2 heartbeat intervals).",
    )
    live_max_age: int = opt(
        1, "Cache-Control max-age (s) of the live feeds; at most the update interval (1 s)."
    )
    live_country_code: str | None = opt(
        None,
        "OCPI country_code (ISO 3166-1 alpha-2) of the operator, for stations without one in the registry.",
    )
    live_party_id: str | None = opt(
        None, "OCPI party_id (3 characters) of the operator, for stations without one in the registry."
    )
    live_country: str | None = opt(
        None, "ISO 3166-1 alpha-3 country of the stations without a `country` in the registry."
    )
    live_operator_name: str | None = opt(None, "Operator name published in the OCPI and DATEX II feeds.")
