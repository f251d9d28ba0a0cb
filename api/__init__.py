"""API: the strictly read-only open-data API over published releases."""
