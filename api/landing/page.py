"""The landing page's HTML: `page.html` with its asset links made content-addressed."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from api.landing.assets import static_url

TEMPLATE = Path(__file__).with_name("page.html")
_ASSET_SLOT = re.compile(r"\{\{static:([\w.-]+)\}\}")


@cache
def landing_html() -> str:
    """The page: static text plus the script that fills in the current release's figures from the API."""
    return _ASSET_SLOT.sub(lambda m: static_url(m.group(1)), TEMPLATE.read_text(encoding="utf-8"))
