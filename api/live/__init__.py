"""The live open availability feeds: OCPI 2.2.1 Locations, DATEX II v3.5 (AFIR) and our own status/SSE.

They read the listener's live charger snapshots (ocpp_opendata/live.py), never the listener itself, and
show public stations of the operator registry only. See docs/live.md.
"""
