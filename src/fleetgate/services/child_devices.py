"""Operators shape gateways' trees: attach an existing device as a gateway's child device,
detach it (the device stays). The rules are :mod:`fleetgate.domain.child_devices`; lists
and single references are the inventory's (``Devices.children``, ``Devices.child``).
Every committed change is told to the children's connections (the broker's logins and
the children's online state: ``Connections.children_changed``, decision 0008)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fleetgate.domain.child_devices import RemovedChild
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound
from fleetgate.services.ports import ChildDeviceStore, Inventory

#: Told (tenant, [(child device id, gateway device id or None when detached)]) after a
#: change is committed: ``fleetgate.services.connections.Connections.children_changed``.
ChildrenChanged = Callable[[str, Sequence[tuple[str, str | None]]], Awaitable[None]]


class ChildDevices:
    def __init__(
        self, store: ChildDeviceStore, inventory: Inventory, children_changed: ChildrenChanged
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._children_changed = children_changed

    async def attach(
        self, tenant_id: str, gateway_id: int, child_id: int
    ) -> tuple[ManagedObject, bool]:
        """Make the device ``child_id`` a child of the gateway: (the child, whether the
        reference is new). Attaching it again to the same gateway changes nothing."""
        attached = await self._store.attach(tenant_id, gateway_id, child_id)
        if attached.made:
            await self._children_changed(
                tenant_id, [(attached.child_device_id, attached.gateway_device_id)]
            )
        child = await self._inventory.get(tenant_id, child_id)
        if child is None:  # deleted right after: as if it never was
            raise NotFound(f"Managed object {child_id} not found", code="inventory/Not Found")
        return child, attached.made

    async def detach(self, tenant_id: str, gateway_id: int, child_id: int, by: str | None) -> None:
        """The child stops being the gateway's; the gateway is told so if it names it
        again (``removed_child``), until an operator attaches it again."""
        detached = await self._store.detach(tenant_id, gateway_id, child_id, by)
        if detached is not None:
            if detached.child_device_id is not None:
                await self._children_changed(tenant_id, [(detached.child_device_id, None)])
            return
        if await self._inventory.get(tenant_id, gateway_id) is None:
            raise NotFound(f"Managed object {gateway_id} not found", code="inventory/Not Found")
        raise NotFound(
            f"Managed object {child_id} is not a child device of {gateway_id}",
            code="inventory/Not Found",
        )

    async def removed_children(self, tenant_id: str, gateway_id: int) -> list[RemovedChild]:
        return await self._store.removed_children(tenant_id, gateway_id)
