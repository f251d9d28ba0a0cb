"""Settings precedence, and generated documentation that must match the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocpp_opendata.docgen import stale_sections
from ocpp_opendata.settings import SettingsError, load_settings


def test_generated_doc_sections_match_the_code() -> None:
    assert stale_sections() == [], "run `ocpp-opendata docs` and commit the result"


def test_an_option_beats_the_environment_which_beats_the_default() -> None:
    env = {"OCPP_OPENDATA_LISTEN_PORT": "9100", "OCPP_OPENDATA_DATA_DIR": "/srv/x"}
    assert load_settings(env={}).listen_port == 9000
    assert load_settings(env=env).listen_port == 9100
    assert load_settings({"listen_port": 9200}, env=env).listen_port == 9200
    assert load_settings(env=env).data_dir == Path("/srv/x")


def test_booleans_and_choices_from_the_environment_are_validated() -> None:
    assert load_settings(env={"OCPP_OPENDATA_STRICT": "yes"}).strict is True
    with pytest.raises(SettingsError, match="OCPP_OPENDATA_STRICT"):
        load_settings(env={"OCPP_OPENDATA_STRICT": "maybe"})
    with pytest.raises(SettingsError, match="OCPP_OPENDATA_AUTHORIZE"):
        load_settings(env={"OCPP_OPENDATA_AUTHORIZE": "everyone"})


def test_the_default_authorization_policy_is_the_safe_one() -> None:
    assert load_settings(env={}).authorize == "allowlist"
