"""``fleetgate up``: the embedded stack (private PostgreSQL, mosquitto, the service)."""
