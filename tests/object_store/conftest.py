"""The object-store tests use the session's SeaweedFS server (`seaweed` in tests/conftest.py)."""
