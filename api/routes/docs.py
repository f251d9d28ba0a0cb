"""The interactive docs: `/docs` (Swagger UI) and its files under `/docs/assets/`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from api.docs_ui import DOC_ASSETS, doc_asset, swagger_ui_page
from api.errors import ApiError
from api.middleware import IMMUTABLE

Version = Annotated[str | None, Query(alias="v", include_in_schema=False, max_length=64)]


def register(router: APIRouter) -> None:
    @router.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return swagger_ui_page(_openapi_url(request), request.app.title)

    @router.get("/docs/assets/{name}", include_in_schema=False)
    def asset(name: str, version: Version = None) -> Response:
        found = doc_asset(name)
        if found is None:
            raise ApiError(404, f"no docs file named {name[:60]!r}; there are: {', '.join(DOC_ASSETS)}")
        # Only a URL naming the current content may be kept for ever; any other stays on the default.
        headers = {"Cache-Control": IMMUTABLE} if version == found.version else None
        return Response(found.body, media_type=found.media_type, headers=headers)


def _openapi_url(request: Request) -> str:
    return request.scope.get("root_path", "") + str(request.app.openapi_url)
