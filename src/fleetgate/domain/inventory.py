"""The inventory's values: filters, references between managed objects, external ids.

Managed objects themselves are :class:`fleetgate.domain.devices.ManagedObject`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetgate.domain.inventory_query import Query


@dataclass(frozen=True, slots=True)
class ExternalId:
    tenant_id: str
    type: str
    value: str
    managed_object_id: int


@dataclass(frozen=True, slots=True)
class Deleted:
    """What went with a deleted managed object (and, with cascade, its descendants)."""

    #: Device ids (c8y_Serial) of the deleted devices: the broker must forget them.
    device_ids: list[str]
    #: SHA-256 of the deleted binaries' files: the file store may drop them.
    file_sha256s: list[str]
    #: Device ids of child devices that stay while their gateway went: detached by the
    #: deletion (the broker and their connection state must follow, decision 0008).
    detached_children: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reference:
    """One end of a parent/child reference, as the other end shows it."""

    kind: str
    object_id: int
    name: str | None


#: The parents' side of each kind of child reference.
PARENT_KINDS = {
    "childAdditions": "additionParents",
    "childAssets": "assetParents",
    "childDevices": "deviceParents",
}


#: What ``cascade=true`` deletes below a device or a group: its child devices and child
#: assets, at any depth (Cumulocity: "all the hierarchy"; child additions are a
#: repository's versions, which only ``forceCascade`` takes).
CASCADE_KINDS = frozenset({"childDevices", "childAssets"})
#: Fragments that make a managed object a group (``cascade`` applies to groups too).
GROUP_FRAGMENTS = frozenset({"c8y_IsDeviceGroup", "c8y_IsDeviceSubgroup"})


def deletion_reach(
    fragments: dict[str, Any], *, cascade: bool, force_cascade: bool
) -> frozenset[str]:
    """The kinds of child reference a deletion follows down from the object, as
    Cumulocity's ``DELETE /inventory/managedObjects/{id}`` parameters say: ``forceCascade``
    every kind whatever the object is (it takes precedence); ``cascade`` child devices and
    assets when the object is a device or a group, nothing otherwise; neither, nothing
    (children stay, without their parent)."""
    if force_cascade:
        return frozenset(PARENT_KINDS)
    if cascade and ("c8y_IsDevice" in fragments or GROUP_FRAGMENTS & fragments.keys()):
        return CASCADE_KINDS
    return frozenset()


@dataclass(frozen=True, slots=True)
class ObjectFilter:
    """Which managed objects a list shows; every condition given must hold."""

    type: str | None = None
    fragment_type: str | None = None
    owner: str | None = None
    ids: tuple[int, ...] | None = None
    #: An inventory query (``?query=``, ``?q=``): :mod:`fleetgate.domain.inventory_query`.
    query: Query | None = None
    #: (kind, child id): the objects that hold this child through this kind of reference
    #: (Cumulocity's ``childAdditionId``, ``childAssetId``, ``childDeviceId``).
    parents_of: tuple[tuple[str, int], ...] = ()
    #: The child devices of this gateway (fleetgate's ``deviceParentId``).
    device_parent: int | None = None
    #: True: the objects that have child devices (gateways); False: those that have none
    #: (fleetgate's ``hasChildDevices``).
    has_child_devices: bool | None = None
    #: Only objects that are nobody's child (Cumulocity's ``onlyRoots``).
    only_roots: bool = False
