"""Every fleetgate device topic, built and parsed in one place (docs/protocol.md).

Identity is part of every topic, and the broker plugin enforces that a client touches
only its own namespace:

- certificate and password devices: ``fg/d/<device id>/…`` — :class:`DeviceTopic`
  (a gateway's sub-devices later: ``fg/d/<gateway id>/c/<child id>/…``);
- bootstrap clients: ``fg/bootstrap/<tenant>/<client id>/…`` — the tenant is the one of
  the bootstrap account the client logged in with.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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


class DeviceLeaf(StrEnum):
    """What follows ``fg/d/<device id>/`` in the inventory and operations protocol."""

    INVENTORY = "inventory"  # device → fleetgate
    OP_SYNC = "op/sync"  # device → fleetgate
    OP_CMD = "op/cmd"  # fleetgate → device
    OP_STATUS = "op/status"  # device → fleetgate
    ERROR = "error"  # fleetgate → device


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A device's topic: ``fg/d/<device id>/<leaf>``; the device id is one topic level."""

    device_id: str
    leaf: DeviceLeaf

    def __post_init__(self) -> None:
        if not is_level(self.device_id):
            raise ValueError(f"a device id must be one topic level, not {self.device_id!r}")

    def __str__(self) -> str:
        return f"{ROOT}/d/{self.device_id}/{self.leaf.value}"

    @classmethod
    def parse(cls, topic: str) -> DeviceTopic | None:
        """The topic, or None for anything else (other namespaces, a sub-device's topic,
        an unknown leaf, wildcards)."""
        prefix = f"{ROOT}/d/"
        if not topic.startswith(prefix):
            return None
        device_id, _, rest = topic[len(prefix) :].partition("/")
        if not is_level(device_id):
            return None
        try:
            leaf = DeviceLeaf(rest)
        except ValueError:
            return None
        return cls(device_id, leaf)

    @staticmethod
    def pattern(leaf: DeviceLeaf) -> str:
        """The subscription filter for ``leaf`` of every device: ``fg/d/+/<leaf>``."""
        return f"{ROOT}/d/+/{leaf.value}"


#: What the service's device link subscribes to: every device's messages to fleetgate.
DEVICE_SUBSCRIPTIONS = tuple(
    DeviceTopic.pattern(leaf)
    for leaf in (DeviceLeaf.INVENTORY, DeviceLeaf.OP_SYNC, DeviceLeaf.OP_STATUS)
)

#: What the service subscribes to (shared between service instances).
BOOTSTRAP_REQUESTS = f"$share/fleetgate/{ROOT}/bootstrap/+/+/{BootstrapTopic.REQUEST}"
