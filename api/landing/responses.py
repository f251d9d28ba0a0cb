"""HTTP answers for `/` and `/static/<name>`, so the routes in `api/routes/meta.py` stay one line each."""

from __future__ import annotations

from starlette.responses import HTMLResponse, Response

from api.errors import ApiError
from api.landing.assets import STATIC_FILES, static_asset
from api.landing.page import landing_html

# Cache-Control is left to the caller: the `/static/{name}` route marks a content-hashed URL immutable,
# and everything else gets the answer cache's default (the max-age of the unversioned routes).
SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def landing_response() -> HTMLResponse:
    return HTMLResponse(landing_html(), headers=SAFETY_HEADERS)


def static_response(name: str) -> Response:
    asset = static_asset(name)
    if asset is None:
        raise ApiError(404, f"no static file named {name[:60]!r}; there are: {', '.join(STATIC_FILES)}")
    return Response(asset.body, media_type=asset.media_type, headers=SAFETY_HEADERS)
