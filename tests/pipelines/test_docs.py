"""The dataset documentation cannot drift from the published schema."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.published_schema import DATASETS, schema_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_datasets_md_holds_the_current_column_tables() -> None:
    text = (DOCS / "datasets.md").read_text()
    body = re.search(r"<!-- BEGIN GENERATED: datasets -->\n(.*)<!-- END GENERATED: datasets -->", text, re.S)
    assert body is not None
    assert body.group(1).strip() == schema_markdown().strip()


def test_every_dataset_is_explained_in_the_pipeline_docs() -> None:
    text = (DOCS / "pipeline.md").read_text() + (DOCS / "privacy.md").read_text()
    for name in DATASETS:
        assert f"`{name}`" in text, name
