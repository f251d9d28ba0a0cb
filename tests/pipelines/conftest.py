"""Fixtures of the pipeline tests: a temporary data root, a pseudonym key and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ocpp_opendata.settings import Settings, load_settings
from tests.pipelines.rawdata import RawZone

TEST_KEY = "test-pseudonym-master-key-0123456789"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings through the environment, as Dagster runs read them (k = 2 keeps scenarios small)."""
    for name in [n for n in os.environ if n.startswith("OCPP_OPENDATA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OCPP_OPENDATA_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv("OCPP_OPENDATA_PRIVACY_K", "2")
    monkeypatch.setenv("OCPP_OPENDATA_DATA_DIR", str(data_dir))
    return load_settings()


@pytest.fixture
def raw(data_dir: Path) -> RawZone:
    return RawZone(data_dir)
