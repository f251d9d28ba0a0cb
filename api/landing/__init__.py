"""The landing page at `/`: what the data is, its datasets, a daily chart and the stations.

No CDN and no third-party code: one HTML page, one script and one stylesheet from this package. The
script reads this server's own API (the release `/health` names) and draws the charts as inline SVG.
"""

from api.landing.assets import STATIC_FILES, Asset, static_asset, static_url
from api.landing.page import landing_html
from api.landing.responses import landing_response, static_response

__all__ = [
    "STATIC_FILES",
    "Asset",
    "landing_html",
    "landing_response",
    "static_asset",
    "static_response",
    "static_url",
]
