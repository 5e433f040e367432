"""Device groups, as Cumulocity models them: managed objects with ``c8y_IsDeviceGroup``
(type ``c8y_DeviceGroup``) at the top and ``c8y_IsDeviceSubgroup`` (type
``c8y_DeviceSubgroup``) below, holding their members — devices, subgroups, any asset —
as ``childAssets``.

**A group's devices** are the devices reached from it through ``childAssets`` at any
depth: a subgroup's devices are its group's devices too, and a bulk operation on a group
reaches them all (docs/api.md, "Groups"). ``bygroupid(G)`` in an inventory query is
Cumulocity's: G's own child assets.
"""

from __future__ import annotations

from fleetgate.domain.bulk import GROUP_FRAGMENT, GROUP_TYPE, SUBGROUP_FRAGMENT, SUBGROUP_TYPE
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import ValidationFailed

CHILD_ASSETS = "childAssets"

__all__ = [
    "CHILD_ASSETS",
    "GROUP_FRAGMENT",
    "GROUP_TYPE",
    "SUBGROUP_FRAGMENT",
    "SUBGROUP_TYPE",
    "check_child_asset",
    "is_group",
]


def is_group(obj: ManagedObject) -> bool:
    """A device group or subgroup."""
    return GROUP_FRAGMENT in obj.fragments or SUBGROUP_FRAGMENT in obj.fragments


def check_child_asset(parent_id: int, child_id: int, *, child_reaches_parent: bool) -> None:
    """Refuse a child asset reference that would make the asset tree a loop: an object is
    not its own asset, nor an asset of what lies below it (``child_reaches_parent``:
    ``parent_id`` is reached from ``child_id`` through child assets)."""
    if parent_id == child_id:
        raise ValidationFailed("a managed object cannot be its own child asset")
    if child_reaches_parent:
        raise ValidationFailed(
            f"managed object {child_id} holds {parent_id} among its assets: making it a child"
            f" asset of {parent_id} would make a loop"
        )
