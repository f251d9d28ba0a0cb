"""Pure transforms from raw-zone views to private work tables (no Dagster, no publishing)."""
