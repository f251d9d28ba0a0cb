"""The demo's end-to-end test reuses the browser fixtures of the landing-page tests."""

from tests.landing.conftest import browser, playwright  # noqa: F401 - fixtures, re-exported
