"""The OpenAPI document says what the API really answers: every error status a route can give (with the
one error body all of them share) and every media type a `format` parameter can choose.

FastAPI documents a 422 for validation errors, which this API answers as 400 (`api.app`), and knows
nothing of the middleware's 304/412 (`api.conditional`), the release manager's 503, the SQL pool's 429
or the worker's 413. Adding them once here keeps each route's own declaration about its data.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.formats import CSV_MEDIA, GEOJSON_MEDIA, JSON_MEDIA

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "What was wrong, in words (never a server path)."},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
    },
    "required": ["error", "status"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

BAD_REQUEST = "Invalid parameter or query: the message names it."
NOT_FOUND = "No such dataset, release, station, file or resource."
UNAVAILABLE = (
    "No release published yet, the file store cannot be reached, or the server is shutting down "
    "(Retry-After)."
)
NOT_MODIFIED = "Not modified: If-None-Match or If-Modified-Since names the current answer."
PRECONDITION = "Precondition failed: If-Match or If-Unmodified-Since does not name the current answer."

# Routes with statuses of their own (beyond the common ones), by path suffix.
EXTRA = {
    "/sql": {
        "413": "The answer is larger than the SQL endpoint's byte cap; narrow the query.",
        "429": "All SQL workers are busy (Retry-After).",
    },
    "/download.parquet": {"416": "Range not satisfiable."},
}
# Answers whose validators come from elsewhere: the live feeds set their own, /health and /metrics none.
UNCONDITIONAL = ("/health", "/metrics", "/ping", "/docs", "/openapi.json", "/v1/live/changes")
FORMAT_MEDIA = {"csv": CSV_MEDIA.split(";")[0], "geojson": GEOJSON_MEDIA, "json": JSON_MEDIA}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON_MEDIA: {"schema": ERROR_REF}}}


def _formats(op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The values of the operation's `format` query parameter (inline enum or referenced one)."""
    for p in op.get("parameters", []):
        if p.get("name") != "format" or p.get("in") != "query":
            continue
        schema = p.get("schema", {})
        for s in [schema, *schema.get("anyOf", []), *schema.get("allOf", [])]:
            if "$ref" in s:
                s = schemas.get(s["$ref"].rsplit("/", 1)[-1], {})
            if "enum" in s:
                return [str(v) for v in s["enum"]]
    return []


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the statuses and media types the routes answer with to a FastAPI-generated document."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    for path, ops in doc.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            params = op.get("parameters", [])
            if any(p.get("in") == "query" for p in params) or path.endswith("/sql"):
                responses.setdefault("400", _error(BAD_REQUEST))
            release_tied = path.startswith("/v1") and not path.startswith("/v1/live")
            if any(p.get("in") == "path" for p in params) or release_tied:
                responses.setdefault("404", _error(NOT_FOUND))
            if release_tied and path != "/v1/releases":
                responses.setdefault("503", _error(UNAVAILABLE))
            if not path.endswith(UNCONDITIONAL) and path not in UNCONDITIONAL:
                responses.setdefault("304", {"description": NOT_MODIFIED})
                responses.setdefault("412", _error(PRECONDITION))
            for suffix, extra in EXTRA.items():
                if path.endswith(suffix):
                    for status, text in extra.items():
                        responses.setdefault(status, _error(text))
            ok = responses.get("200")
            if ok is not None:
                content = ok.setdefault("content", {})
                schema = content.get(JSON_MEDIA, {}).get("schema", {})
                for value in _formats(op, schemas):
                    media = FORMAT_MEDIA.get(value)
                    if media and media not in content:
                        content[media] = (
                            {"schema": {"type": "string"}}
                            if media != GEOJSON_MEDIA
                            else {"schema": schema or {"type": "object"}}
                        )
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
