"""The port contracts (``port_contracts``) kept by the PostgreSQL adapters; the in-memory
adapters the unit tests use keep the same ones (``tests/unit/test_port_contracts.py``)."""

from __future__ import annotations

import asyncpg
import pytest

from fleetgate.db.bootstrap import PgRequests
from fleetgate.db.bulk_operations import PgBulkOperations
from fleetgate.db.child_devices import PgChildDevices
from fleetgate.db.connections import PgChildConnections
from fleetgate.db.devices import PgDevices
from fleetgate.db.enablement import PgEnablement
from fleetgate.db.gateways import PgChildren
from fleetgate.db.groups import PgGroups
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.operations import PgOperations
from fleetgate.db.rollout_steps import PgRolloutSteps
from fleetgate.db.tenant_options import PgTenantOptions
from fleetgate.db.users import PgUsers

from conftest import TEST_BASE_URL, seed_tenants
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

pytestmark = pytest.mark.integration


@pytest.fixture
async def ports(pool: asyncpg.Pool) -> Ports:
    await seed_tenants(pool, "t1", "t2")
    return Ports(
        PgInventory(pool),
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        PgRequests(pool),
        PgOperations(pool, TEST_BASE_URL),
        TEST_BASE_URL,
        PgChildren(pool),
        PgChildConnections(pool),
        PgGroups(pool),
        PgBulkOperations(pool),
        PgRolloutSteps(pool),
        lambda: _make_due(pool),
        PgTenantOptions(pool),
        PgChildDevices(pool),
        PgEnablement(pool),
    )


async def _make_due(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "UPDATE bulk_operation SET next_step_at = now(),"
        " next_creation_at = least(next_creation_at, now())"
    )


class TestPgOperationStore(OperationStoreContract):
    pass


class TestPgDeviceIds(DeviceIdContract):
    pass


class TestPgChildren(ChildStoreContract):
    pass


class TestPgChildConnections(ChildConnectionContract):
    pass


class TestPgGroups(GroupStoreContract):
    pass


class TestPgBulkOperations(BulkOperationContract):
    pass


class TestPgTenantOptions(TenantOptionContract):
    pass


class TestPgChildDevices(ChildDeviceContract):
    pass


class TestPgInventoryTree(InventoryTreeContract):
    pass


class TestPgUsers(UserStoreContract):
    pass


class TestPgEnablement(EnablementContract):
    pass
