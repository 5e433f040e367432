"""Device groups: their child assets (Cumulocity's ``childAssets`` references) and the
devices a group reaches (its subgroups' included: :mod:`fleetgate.domain.groups`)."""

from __future__ import annotations

from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.groups import CHILD_ASSETS, check_child_asset, is_group
from fleetgate.domain.inventory_query import Query
from fleetgate.services.ports import GroupStore, Inventory


def _object_not_found(object_id: int) -> NotFound:
    return NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")


def _reference_not_found(parent_id: int, child_id: int) -> NotFound:
    return NotFound(
        f"Managed object {child_id} is not a child asset of {parent_id}",
        code="inventory/Not Found",
    )


class Groups:
    def __init__(self, inventory: Inventory, store: GroupStore) -> None:
        self._inventory = inventory
        self._store = store

    async def child_assets(
        self, tenant_id: str, parent_id: int, offset: int, limit: int, *, count: bool
    ) -> tuple[list[ManagedObject], int | None]:
        if await self._inventory.get(tenant_id, parent_id) is None:
            raise _object_not_found(parent_id)
        found = await self._inventory.children(tenant_id, parent_id, CHILD_ASSETS, offset, limit)
        total = (
            await self._inventory.count_children(tenant_id, parent_id, CHILD_ASSETS)
            if count
            else None
        )
        return found, total

    async def add_child_asset(self, tenant_id: str, parent_id: int, child_id: int) -> ManagedObject:
        """Make ``child_id`` an asset of ``parent_id`` (a group's member, a subgroup);
        adding one that is there changes nothing. No loops: see ``check_child_asset``."""
        reaches = parent_id != child_id and await self._store.reaches(
            tenant_id, child_id, parent_id
        )
        check_child_asset(parent_id, child_id, child_reaches_parent=reaches)
        if not await self._inventory.add_child(tenant_id, parent_id, CHILD_ASSETS, child_id):
            if await self._inventory.get(tenant_id, parent_id) is None:
                raise _object_not_found(parent_id)
            raise _object_not_found(child_id)
        child = await self._inventory.get(tenant_id, child_id)
        if child is None:
            raise _object_not_found(child_id)
        return child

    async def child_asset(self, tenant_id: str, parent_id: int, child_id: int) -> ManagedObject:
        found = await self._inventory.child(tenant_id, parent_id, CHILD_ASSETS, child_id)
        if found is None:
            raise _reference_not_found(parent_id, child_id)
        return found

    async def remove_child_asset(self, tenant_id: str, parent_id: int, child_id: int) -> None:
        """Drop the reference; the asset itself stays."""
        if not await self._inventory.remove_child(tenant_id, parent_id, CHILD_ASSETS, child_id):
            raise _reference_not_found(parent_id, child_id)

    async def device_ids(
        self, tenant_id: str, group_id: int, where: Query | None = None
    ) -> list[int]:
        """The devices of a group — its subgroups' included, at any depth — that pass
        ``where``: what a bulk operation on the group reaches. 404 for no such object,
        422 for an object that is not a group."""
        group = await self._inventory.get(tenant_id, group_id)
        if group is None:
            raise _object_not_found(group_id)
        if not is_group(group):
            raise ValidationFailed(
                f"managed object {group_id} is not a device group (c8y_IsDeviceGroup or"
                " c8y_IsDeviceSubgroup)"
            )
        return await self._store.device_ids(tenant_id, group_id, where)
