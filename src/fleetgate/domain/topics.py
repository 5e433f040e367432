"""Every fleetgate device topic, built and parsed in one place (docs/protocol.md).

Identity is part of every topic, and the broker plugin enforces that a client touches
only its own namespace:

- certificate and password devices: ``fg/d/<device id>/…``
  (a gateway's sub-devices later: ``fg/d/<gateway id>/c/<child id>/…``);
- bootstrap clients: ``fg/bootstrap/<tenant>/<client id>/…`` — the tenant is the one of
  the bootstrap account the client logged in with.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "fg"
_LEVEL_FORBIDDEN = frozenset("/+#")


def is_level(value: str) -> bool:
    """A single, literal topic level: non-empty, without ``/``, ``+``, ``#``."""
    return bool(value) and not (_LEVEL_FORBIDDEN & set(value)) and "\0" not in value


def device_namespace(device_id: str) -> str:
    return f"{ROOT}/d/{device_id}/"


@dataclass(frozen=True, slots=True)
class BootstrapTopic:
    """A bootstrap client's topic: ``fg/bootstrap/<tenant>/<client id>/<leaf>``."""

    tenant: str
    client_id: str
    leaf: str

    REQUEST = "request"
    CREDENTIALS = "credentials"
    ERROR = "error"

    def __str__(self) -> str:
        return f"{ROOT}/bootstrap/{self.tenant}/{self.client_id}/{self.leaf}"

    @classmethod
    def parse(cls, topic: str) -> BootstrapTopic | None:
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != ROOT or parts[1] != "bootstrap":
            return None
        tenant, client_id, leaf = parts[2], parts[3], parts[4]
        if not (is_level(tenant) and is_level(client_id) and is_level(leaf)):
            return None
        return cls(tenant, client_id, leaf)

    def reply(self, leaf: str) -> BootstrapTopic:
        return BootstrapTopic(self.tenant, self.client_id, leaf)


#: What the service subscribes to (shared between service instances).
BOOTSTRAP_REQUESTS = f"$share/fleetgate/{ROOT}/bootstrap/+/+/{BootstrapTopic.REQUEST}"
