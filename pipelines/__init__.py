"""Pipelines: Dagster assets that turn the raw zone into published open datasets."""
