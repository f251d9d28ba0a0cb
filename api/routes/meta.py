"""Routes outside any release: `/`, `/health`, `/metrics`, `/v1/releases`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import HTMLResponse, Response

from api.errors import ApiError
from api.formats import dumps
from api.landing import landing_response, static_asset, static_response
from api.middleware import IMMUTABLE
from api.routes.common import RELEASE_ID_REGEX

PING = b'{"status":"ok"}'


def register(router: APIRouter) -> None:
    @router.get("/ping", summary="A constant answer (liveness; the benchmark's ceiling)")
    def ping() -> Response:
        return Response(PING, media_type="application/json")

    @router.get("/", response_class=HTMLResponse, summary="Landing page", include_in_schema=True)
    def landing() -> HTMLResponse:
        return landing_response()

    @router.get("/static/{name}", summary="The landing page's own files", include_in_schema=False)
    def static(name: str, version: Annotated[str | None, Query(alias="v", max_length=64)] = None) -> Response:
        answer = static_response(name)
        asset = static_asset(name)
        # The page links `?v=<content hash>`: such a URL never changes content, so it is kept for ever.
        if asset is not None and version == asset.version:
            answer.headers["Cache-Control"] = IMMUTABLE
        return answer

    @router.get("/health", summary="Liveness and the release being served")
    def health(request: Request) -> Response:
        releases = request.app.state.releases
        current = releases.current_id
        body = {"status": "ok" if current else "waiting for a first release", "release": current}
        return Response(dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics(request: Request) -> Response:
        state = request.app.state
        text = state.metrics.render(state.releases.current_id, state.releases.swaps)
        return Response(text, media_type="text/plain; version=0.0.4", headers={"Cache-Control": "no-store"})

    @router.get("/v1/releases", summary="Kept releases, newest first; each is citable and servable")
    def releases(request: Request) -> Response:
        manager = request.app.state.releases
        items = [
            {**manager.release_summary(rid), "links": {"self": f"/v1/releases/{rid}"}}
            for rid in manager.release_ids()
        ]
        return Response(
            dumps({"current": manager.current_id, "releases": items}),
            media_type="application/json",
        )

    @router.get("/v1/releases/{release_id}", summary="One kept release: its manifest and links")
    def release(
        request: Request,
        release_id: Annotated[str, Path(description="Release id.", pattern=RELEASE_ID_REGEX)],
    ) -> Response:
        manager = request.app.state.releases
        if release_id not in manager.release_ids():
            raise ApiError(404, f"no kept release named {release_id!r}; see /v1/releases")
        with manager.lease(release_id) as rel:
            base = f"/v1/releases/{rel.id}"
            body = {
                **manager.release_summary(rel.id),
                "manifest": rel.manifest,
                "links": {
                    "datasets": f"{base}/datasets",
                    "datapackage": f"{base}/datapackage.json",
                    "dcat": f"{base}/dcat.jsonld",
                },
            }
            return Response(dumps(body), media_type="application/json", headers={"X-Release": rel.id})
