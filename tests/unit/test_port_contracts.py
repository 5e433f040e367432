"""The port contracts (``port_contracts``) kept by the in-memory adapters; the PostgreSQL
adapters keep the same ones (``tests/integration/test_port_contracts_pg.py``)."""

from __future__ import annotations

import pytest

from memory import MemoryStores
from memory.groups import MemoryGroups
from port_contracts import (
    BulkOperationContract,
    ChildConnectionContract,
    ChildDeviceContract,
    ChildStoreContract,
    DeviceIdContract,
    EnablementContract,
    GroupStoreContract,
    InventoryTreeContract,
    OperationStoreContract,
    Ports,
    TenantOptionContract,
    UserStoreContract,
)


@pytest.fixture
def ports() -> Ports:
    stores = MemoryStores.make("t1", "t2")
    return Ports(
        stores.inventory,
        stores.identity,
        stores.users,
        stores.registry,
        stores.requests,
        stores.operations,
        "http://fleetgate.test",
        stores.children,
        stores.connections,
        MemoryGroups(stores.db),
        stores.bulk_operations,
        stores.rollout_steps,
        lambda: _make_due(stores),
        stores.options,
        stores.child_devices,
        stores.enablement,
    )


async def _make_due(stores: MemoryStores) -> None:
    now = stores.db.clock()
    for row in stores.db.bulk_operations.values():
        row.next_step_at = now
        row.next_creation_at = min(row.next_creation_at, now)


class TestMemoryOperationStore(OperationStoreContract):
    pass


class TestMemoryDeviceIds(DeviceIdContract):
    pass


class TestMemoryChildren(ChildStoreContract):
    pass


class TestMemoryChildConnections(ChildConnectionContract):
    pass


class TestMemoryGroups(GroupStoreContract):
    pass


class TestMemoryBulkOperations(BulkOperationContract):
    pass


class TestMemoryTenantOptions(TenantOptionContract):
    pass


class TestMemoryChildDevices(ChildDeviceContract):
    pass


class TestMemoryInventoryTree(InventoryTreeContract):
    pass


class TestMemoryUsers(UserStoreContract):
    pass


class TestMemoryEnablement(EnablementContract):
    pass
