"""Ingest: the OCPP listener that writes the raw zone, and the charger-fleet simulator."""
