"""The interactive API docs, Swagger UI at `/docs`, with no CDN.

FastAPI's default page loads its code from a CDN and stays blank offline. The UI files come instead from
the `fastapi-offline` package (Swagger UI 5, which reads the OpenAPI 3.1 document FastAPI writes; the
`swagger-ui-bundle` package ships Swagger UI 4, which cannot) and are answered by this server under
content-addressed URLs `/docs/assets/<name>?v=<hash>`, like the landing page's own files.

There is no `/redoc`: the ReDoc bundle always loads its logo from Redocly's CDN, so it cannot be offline.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse

from api.landing import static_url

ASSET_PACKAGE = "fastapi_offline"
ASSET_PREFIX = "/docs/assets/"
# The strict allowlist: nothing else of the package (or of the disk) is ever answered.
DOC_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
# Swagger UI's default validator badge loads an image from validator.swagger.io for non-local hosts.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


@dataclass(frozen=True)
class DocAsset:
    name: str
    body: bytes
    media_type: str
    version: str


def doc_asset(name: str) -> DocAsset | None:
    """The allowlisted UI file `name`, or None for any other name."""
    if name not in DOC_ASSETS:
        return None
    return _load(name)


@cache
def _load(name: str) -> DocAsset:
    body = files(ASSET_PACKAGE).joinpath("static", name).read_bytes()
    return DocAsset(name, body, DOC_ASSETS[name], hashlib.sha256(body).hexdigest()[:12])


def doc_asset_url(name: str) -> str:
    asset = doc_asset(name)
    if asset is None:
        raise KeyError(name)
    return f"{ASSET_PREFIX}{name}?v={asset.version}"


def swagger_ui_page(openapi_url: str, title: str) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=doc_asset_url("swagger-ui-bundle.js"),
        swagger_css_url=doc_asset_url("swagger-ui.css"),
        swagger_favicon_url=static_url("favicon.svg"),
        oauth2_redirect_url=None,
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )
