"""The operator side of the listener: live charger state and remote control (docs/operate.md)."""
