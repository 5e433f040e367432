"""Device profiles as operators manage them (the seed's "Managing device profiles"):
managed objects of type ``c8y_Profile``, checked against the repositories when they are
written, and duplicated.

The rules are :mod:`fleetgate.domain.profiles`; this module looks up the repository
entries an item may be (firmware and software by name, configuration files by URL).
Applying a profile is an operation (``Operations.create`` checks it).
"""

from __future__ import annotations

from typing import Any

from fleetgate.domain import profiles, repositories
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.inventory import ObjectFilter
from fleetgate.domain.inventory_query import Compare
from fleetgate.domain.profiles import Item
from fleetgate.services.ports import Inventory

#: Repository entries looked at per item (more entries of one name are not expected).
_ENTRIES = 200


async def check_profile_object(
    inventory: Inventory,
    tenant_id: str,
    name: str | None,
    type: str | None,
    fragments: dict[str, Any],
) -> None:
    """Refuse (422, naming the item) a ``c8y_Profile`` that breaks the seed's rules: a
    name, one firmware at most, complete items — and with a device type set, only
    repository entries for that type (or for every type)."""
    if type != profiles.PROFILE_TYPE:
        return
    content = profiles.check_profile(name, fragments)
    device_type = profiles.device_type_of(fragments)
    if device_type is None:
        return
    for item in content.items:
        reason = profiles.mismatch(
            item, device_type, await _entry_types(inventory, tenant_id, item)
        )
        if reason is not None:
            raise ValidationFailed(reason)


async def _entry_types(inventory: Inventory, tenant_id: str, item: Item) -> list[str | None]:
    """The device types of the repository entries ``item`` is (None: for every type)."""
    if item.step == "configuration":
        flt = ObjectFilter(
            type=repositories.CONFIGURATION, query=Compare(("url",), "eq", item.url or "")
        )
        found = await inventory.find(tenant_id, flt, 0, _ENTRIES)
        exact = [o for o in found if o.fragments.get("url") == item.url]
        return [_text_or_none(o.fragments.get("deviceType")) for o in exact]
    kind = repositories.FIRMWARE if item.step == "firmware" else repositories.SOFTWARE
    flt = ObjectFilter(type=kind, query=Compare(("name",), "eq", item.name))
    found = await inventory.find(tenant_id, flt, 0, _ENTRIES)
    # A "*" in a name is a wildcard to the query: keep the entries of exactly this name.
    return [_filter_type(o) for o in found if o.name == item.name]


def _filter_type(entry: ManagedObject) -> str | None:
    found = entry.fragments.get(profiles.FILTER)
    return _text_or_none(found.get("type")) if isinstance(found, dict) else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class Profiles:
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    async def duplicate(self, tenant_id: str, profile_id: int, name: str | None) -> ManagedObject:
        """A new profile with the same content and device type, named ``name`` or "Copy
        of <name>" (the seed's "To duplicate device profiles")."""
        found = await self._inventory.get(tenant_id, profile_id)
        if found is None or found.type != profiles.PROFILE_TYPE:
            raise NotFound(f"Device profile {profile_id} not found", code="inventory/Not Found")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ValidationFailed("name must be a non-empty string")
        return await self._inventory.create(
            tenant_id,
            name=name or profiles.duplicate_name(found.name),
            type=profiles.PROFILE_TYPE,
            owner=found.owner,
            fragments=dict(found.fragments),
        )
