"""Reliability datasets (issue #18): port outages and NEVI uptime, UK reg. 7 network reliability and
session outcomes. Definitions side by side with the regulations: docs/reliability.md."""
