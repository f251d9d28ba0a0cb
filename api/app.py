"""The FastAPI application: routes for the current release and for every kept one, plus middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from api import openapi
from api.errors import ApiError, error_response, scrub_paths
from api.fastlane import FastLane, new_pool
from api.live import routes as live_routes
from api.live.ocpi import Party
from api.live.source import LiveSource
from api.metrics import Metrics
from api.middleware import AnswerCache, MethodGuard, SelectiveGZip
from api.release import ReleaseManager
from api.routes import datasets, docs, downloads, meta, quality, reliability, sql, stations, usage
from api.routes.common import current_release, pinned_release
from api.sql_guard import SqlLimits
from ocpp_opendata.logs import fields
from ocpp_opendata.objectstore import store_for
from ocpp_opendata.settings import Settings

log = logging.getLogger(__name__)

EXPOSED_HEADERS = [
    "ETag",
    "X-Release",
    "X-Total-Count",
    "X-Truncated",
    "Link",
    "Content-Range",
    "Content-Length",
    "X-Limit",
    "Last-Modified",
]


def versioned_router(release_dependency: object) -> APIRouter:
    router = APIRouter()
    for module in (datasets, downloads, usage, stations, sql, reliability, quality):
        module.register(router, release_dependency)
    return router


def sql_limits(settings: Settings) -> SqlLimits:
    return SqlLimits(
        time_limit=settings.sql_time_limit,
        row_cap=settings.sql_row_cap,
        memory_limit=settings.sql_memory_limit,
        threads=settings.sql_threads,
        max_in_flight=settings.sql_max_in_flight,
        answer_bytes=settings.sql_answer_bytes,
    )


def live_source(settings: Settings) -> LiveSource:
    return LiveSource(
        settings.data_dir,
        settings.registry_path,
        settings.live_poll,
        settings.live_offline_after,
        settings.heartbeat_interval,
        store_for(settings) if settings.store else None,
        settings.operator_broker or None,
    )


def create_app(settings: Settings) -> FastAPI:
    releases = ReleaseManager(
        settings.data_dir,
        sql_limits(settings),
        settings.api_release_poll,
        settings.timezone,
        store_for(settings) if settings.store else None,
    )
    metrics = Metrics()
    lane_pool = new_pool()
    live = live_source(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        releases.start()
        live.start()
        log.info("api serving", extra=fields(release=releases.current_id))
        try:
            yield
        finally:
            await live.stop()
            lane_pool.shutdown(wait=True, cancel_futures=True)
            releases.stop()

    app = FastAPI(
        title="ocpp-opendata API",
        version="1",
        summary="Read-only open data about EV charging: datasets, downloads, usage and SQL.",
        lifespan=lifespan,
        # FastAPI's own pages load Swagger UI and ReDoc from a CDN: api/routes/docs.py serves Swagger UI
        # locally, and ReDoc is left out (see api/docs_ui.py).
        docs_url=None,
        redoc_url=None,
    )
    app.state.releases = releases
    app.state.metrics = metrics
    app.state.live = live
    app.state.live_max_age = settings.live_max_age
    app.state.live_party = Party(
        country_code=settings.live_country_code,
        party_id=settings.live_party_id,
        country=settings.live_country,
        time_zone=settings.timezone,
        operator_name=settings.live_operator_name,
    )

    meta_router = APIRouter()
    meta.register(meta_router)
    docs.register(meta_router)
    app.include_router(meta_router)
    live_router = APIRouter(tags=["live"])
    live_routes.register(live_router)
    app.include_router(live_router)
    app.include_router(versioned_router(current_release), prefix="/v1")
    app.include_router(versioned_router(pinned_release), prefix="/v1/releases/{release_id}")
    _install_error_handlers(app)
    openapi.install(app)

    app.add_middleware(FastLane, releases=releases, pool=lane_pool)
    app.add_middleware(SelectiveGZip)
    app.add_middleware(
        AnswerCache,
        current_id=lambda: releases.current_id,
        metrics=metrics,
        max_bytes=settings.api_cache_bytes,
        max_age=settings.api_max_age,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD"],
        allow_headers=[
            "Range",
            "If-None-Match",
            "If-Modified-Since",
            "If-Range",
            "If-Match",
            "If-Unmodified-Since",
        ],
        expose_headers=EXPOSED_HEADERS,
        max_age=86400,
    )
    app.add_middleware(MethodGuard, metrics=metrics)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if any(tuple(err.get("loc", ())) == ("path", "name") for err in exc.errors()):
            name = str(request.path_params.get("name", ""))[:80]
            return error_response(404, f"no dataset named {name!r}; see /v1/datasets for the catalogue")
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
        return error_response(400, scrub_paths("invalid parameter " + "; ".join(problems)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: f"no such resource: {request.url.path[:200]}", 405: "method not allowed"}.get(
            exc.status_code, str(exc.detail)
        )
        return error_response(
            exc.status_code, scrub_paths(message, request.url.path), dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", extra=fields(path=request.url.path[:200]))
        return error_response(500, "internal error; it has been logged")
