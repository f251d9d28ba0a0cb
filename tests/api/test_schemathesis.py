"""Property-based requests generated from the OpenAPI document: no input produces a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import ApiServer

EXAMPLES_PER_OPERATION = 40
# An endless Server-Sent Events stream never ends a response to check; tests/live/test_changes.py
# tests it (snapshot, changes, resume) with a reader that stops.
STREAMS = {"GET /v1/live/changes"}


def test_no_generated_request_gets_a_server_error_or_a_server_path(api: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(api.url + "/openapi.json")
    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in STREAMS:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(base_url=api.url, timeout=30)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                case.query,
                response.content[:300],
            )
            assert str(api.data_dir).encode() not in response.content

        no_server_error()
        checked.append(operation.label)
    assert "GET /v1/sql" in checked and "GET /v1/datasets/{name}/rows" in checked, checked
    assert "unexpected error" not in api.log()
