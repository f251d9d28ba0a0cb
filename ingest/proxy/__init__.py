"""Proxy mode: the listener relays each charger to the operator's CSMS and records both directions."""
