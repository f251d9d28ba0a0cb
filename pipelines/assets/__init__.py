"""Dagster assets: daily work tables (partitioned by local date) and the published release."""
