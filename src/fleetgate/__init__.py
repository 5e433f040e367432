"""fleetgate: an MQTT device gateway and bootstrap broker bridge."""

__version__ = "0.1.0"
