"""Gateways' child devices (``db/child_devices.py``)."""

from __future__ import annotations

from fleetgate.domain.child_devices import (
    Attached,
    Detached,
    Gateway,
    HowRemoved,
    RemovedChild,
    TreeEnd,
    decide_attach,
)
from fleetgate.domain.gateways import CHILD_DEVICES

from memory.database import MemoryDatabase, RemovedChildRow, queries
from memory.inventory import check_reference


@queries
class MemoryChildDevices:
    """A :class:`~fleetgate.services.ports.ChildDeviceStore` (``PgChildDevices``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def _end(self, tenant_id: str, object_id: int) -> TreeEnd | None:
        """``db.child_devices.tree_ends`` for one object."""
        row = self._db.object_in(tenant_id, object_id)
        if row is None:
            return None
        parents = [p for p, k, c in self._db.references if k == CHILD_DEVICES and c == object_id]
        gateway = Gateway(parents[0], self._db.serial_of(parents[0])) if parents else None
        children = sum(
            1 for p, k, _ in self._db.references if k == CHILD_DEVICES and p == object_id
        )
        return TreeEnd(
            object_id, "c8y_IsDevice" in row.fragments, self._db.serial_of(object_id),
            gateway, children,
        )  # fmt: skip

    async def attach(self, tenant_id: str, gateway_id: int, child_id: int) -> Attached:
        gateway, child = self._end(tenant_id, gateway_id), self._end(tenant_id, child_id)
        made = decide_attach(gateway_id, child_id, gateway, child)
        assert child is not None
        assert child.device_id is not None
        assert gateway is not None
        assert gateway.device_id is not None
        with self._db.transaction():
            if made:
                check_reference(self._db.references, gateway_id, CHILD_DEVICES, child_id)
                self._db.references.add((gateway_id, CHILD_DEVICES, child_id))
            self._db.removed_children.pop((gateway_id, child.device_id), None)
        return Attached(made, child.device_id, gateway.device_id)

    async def detach(
        self, tenant_id: str, gateway_id: int, child_id: int, removed_by: str | None
    ) -> Detached | None:
        reference = (gateway_id, CHILD_DEVICES, child_id)
        if (
            self._db.object_in(tenant_id, gateway_id) is None
            or reference not in self._db.references
        ):
            return None
        self._db.references.discard(reference)
        device_id = self._db.serial_of(child_id)
        if device_id is not None:
            self._db.removed_children[(gateway_id, device_id)] = RemovedChildRow(
                HowRemoved.DETACHED.value, self._db.clock(), removed_by
            )
        return Detached(device_id)

    async def removed_children(self, tenant_id: str, gateway_id: int) -> list[RemovedChild]:
        if self._db.object_in(tenant_id, gateway_id) is None:
            return []
        return [
            RemovedChild(g, d, row.removed_at, row.removed_by, HowRemoved(row.how))
            for (g, d), row in sorted(self._db.removed_children.items())
            if g == gateway_id
        ]
