"""Command line, settings and logging shared by the three stages (ingest, pipelines, api)."""
