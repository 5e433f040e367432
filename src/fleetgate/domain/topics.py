"""Every fleetgate device topic, built and parsed in one place (docs/protocol.md).

Identity is part of every topic, and the broker plugin enforces that a client touches
only its own namespace:

- certificate and password devices: ``fg/d/<device id>/…``, and a gateway's children
  inside the gateway's namespace, ``fg/d/<gateway id>/c/<child id>/…`` — :class:`DeviceTopic`;
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
    CONNECTION = "connection"  # gateway → fleetgate, about one of its children only


#: The level between a gateway's id and a child's id: ``fg/d/<gateway>/c/<child>/…``.
CHILD_LEVEL = "c"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A device's topic: ``fg/d/<device id>/<leaf>``, or, with ``gateway``, a child's
    topic inside its gateway's namespace: ``fg/d/<gateway>/c/<device id>/<leaf>``.

    ``device_id`` is always the device the message is about (the child, for a child's
    topic); each id is one topic level. Whether a child's id is also a valid *device id*
    is for the message reader to say (:mod:`fleetgate.domain.device_messages`), so that a
    gateway hears why its child was refused.
    """

    device_id: str
    leaf: DeviceLeaf
    gateway: str | None = None

    def __post_init__(self) -> None:
        if not is_level(self.device_id):
            raise ValueError(f"a device id must be one topic level, not {self.device_id!r}")
        if self.gateway is not None and not is_level(self.gateway):
            raise ValueError(f"a gateway id must be one topic level, not {self.gateway!r}")
        if self.leaf is DeviceLeaf.CONNECTION and self.gateway is None:
            raise ValueError("only a gateway's child has a connection topic")

    def __str__(self) -> str:
        if self.gateway is None:
            return f"{ROOT}/d/{self.device_id}/{self.leaf.value}"
        return f"{ROOT}/d/{self.gateway}/{CHILD_LEVEL}/{self.device_id}/{self.leaf.value}"

    @property
    def owner(self) -> str:
        """The client whose namespace holds the topic: the gateway for a child's topic."""
        return self.gateway if self.gateway is not None else self.device_id

    def with_leaf(self, leaf: DeviceLeaf) -> DeviceTopic:
        """The same device's (or child's) topic for another leaf."""
        return DeviceTopic(self.device_id, leaf, self.gateway)

    @classmethod
    def parse(cls, topic: str) -> DeviceTopic | None:
        """The topic, or None for anything else (other namespaces, an unknown leaf,
        wildcards, a ``connection`` leaf outside a child's topic)."""
        prefix = f"{ROOT}/d/"
        if not topic.startswith(prefix):
            return None
        device_id, _, rest = topic[len(prefix) :].partition("/")
        if not is_level(device_id):
            return None
        gateway: str | None = None
        if rest.startswith(f"{CHILD_LEVEL}/"):
            gateway = device_id
            device_id, _, rest = rest[len(CHILD_LEVEL) + 1 :].partition("/")
            if not is_level(device_id):
                return None
        try:
            leaf = DeviceLeaf(rest)
        except ValueError:
            return None
        if leaf is DeviceLeaf.CONNECTION and gateway is None:
            return None
        return cls(device_id, leaf, gateway)

    @staticmethod
    def pattern(leaf: DeviceLeaf) -> str:
        """The subscription filter for ``leaf`` of every device: ``fg/d/+/<leaf>``."""
        return f"{ROOT}/d/+/{leaf.value}"

    @staticmethod
    def child_pattern(leaf: DeviceLeaf) -> str:
        """The filter for ``leaf`` of every gateway's children: ``fg/d/+/c/+/<leaf>``."""
        return f"{ROOT}/d/+/{CHILD_LEVEL}/+/{leaf.value}"


#: What the service's device link subscribes to: every device's and every child's
#: messages to fleetgate.
DEVICE_SUBSCRIPTIONS = tuple(
    DeviceTopic.pattern(leaf)
    for leaf in (DeviceLeaf.INVENTORY, DeviceLeaf.OP_SYNC, DeviceLeaf.OP_STATUS)
) + tuple(
    DeviceTopic.child_pattern(leaf)
    for leaf in (
        DeviceLeaf.INVENTORY,
        DeviceLeaf.OP_SYNC,
        DeviceLeaf.OP_STATUS,
        DeviceLeaf.CONNECTION,
    )
)

#: What the service subscribes to (shared between service instances).
BOOTSTRAP_REQUESTS = f"$share/fleetgate/{ROOT}/bootstrap/+/+/{BootstrapTopic.REQUEST}"
