"""Per-record quality quarantine: rules (`rules.py`), operator overrides (`overrides.py`), the one
decision per work row that every published dataset applies (`quarantine.py`) and the public report
(`report.py`, dataset `quality_issues`). See docs/pipeline.md, "Quality quarantine"."""
