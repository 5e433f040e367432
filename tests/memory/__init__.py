"""In-memory adapters of the service ports (``fleetgate.services.ports``), for unit tests
of the use cases.

One :class:`MemoryDatabase` holds the tables — managed objects, external ids, child
references, users, new device requests, binaries' files, operations, bulk operations and
their targets, released device ids, tenant options, children operators removed from
gateways — and each adapter is a view on it, as each ``Pg*`` adapter is a view on one
pool: what one port writes, the others read. Every method keeps the contract of its
``Pg*`` twin (``fleetgate.db``): what it finds and in which order, what it refuses and
with which error, what a deletion takes with it (the schema's ``ON DELETE CASCADE`` and
``SET NULL``, the trigger that releases a deleted device id). A method does not await
between its reads and its writes, so it is atomic as its twin's transaction is; one that
writes several tables runs in :meth:`MemoryDatabase.transaction`, so a failure leaves
nothing behind. (The one exception, a scheduler's step that awaits its check between
claiming targets and creating their operations, holds the bulk operation's lock
meanwhile, as its twin holds the row lock: :mod:`memory.bulk_operations`.) Every call
first yields to the event loop, as a query's round trip does, so use cases that run at
once interleave between calls as they do on PostgreSQL (:func:`memory.database.queries`).
Binaries' content locks are asyncio locks.

The modules mirror ``fleetgate.db`` (``memory.inventory``, ``memory.identity`` … on
``memory.database``). Failures to inject are plain attributes
(``MemoryDeviceRegistry.failures`` …), as in :mod:`fakes`, whose recording fakes (broker,
publisher) go with these.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from memory.binaries import MemoryBinaries, MemoryLockedContent
from memory.bootstrap import MemoryRequests
from memory.bulk_operations import MemoryBulkOperations, MemoryRolloutSteps
from memory.child_devices import MemoryChildDevices
from memory.connections import MemoryChildConnections
from memory.database import ForeignKeyViolation, ManualClock, MemoryDatabase, MemoryUsers, utc_now
from memory.devices import MemoryDeviceRegistry
from memory.enablement import MemoryEnablement
from memory.files import MemoryFiles
from memory.gateways import MemoryChildren
from memory.identity import MemoryIdentity
from memory.inventory import MemoryInventory
from memory.operations import MemoryOperations
from memory.tenant_options import MemoryTenantOptions

__all__ = [
    "ForeignKeyViolation",
    "ManualClock",
    "MemoryBinaries",
    "MemoryBulkOperations",
    "MemoryChildConnections",
    "MemoryChildDevices",
    "MemoryChildren",
    "MemoryDatabase",
    "MemoryDeviceRegistry",
    "MemoryFiles",
    "MemoryIdentity",
    "MemoryInventory",
    "MemoryLockedContent",
    "MemoryOperations",
    "MemoryRequests",
    "MemoryRolloutSteps",
    "MemoryStores",
    "MemoryTenantOptions",
    "MemoryUsers",
]


@dataclass
class MemoryStores:
    """Every in-memory adapter, on one database."""

    db: MemoryDatabase
    inventory: MemoryInventory
    identity: MemoryIdentity
    users: MemoryUsers
    registry: MemoryDeviceRegistry
    requests: MemoryRequests
    binaries: MemoryBinaries
    files: MemoryFiles
    operations: MemoryOperations
    children: MemoryChildren
    connections: MemoryChildConnections
    bulk_operations: MemoryBulkOperations
    rollout_steps: MemoryRolloutSteps
    options: MemoryTenantOptions
    child_devices: MemoryChildDevices
    enablement: MemoryEnablement

    @classmethod
    def make(
        cls,
        *tenants: str,
        base_url: str = "http://fleetgate.test",
        clock: Callable[[], datetime] = utc_now,
        file_clock: Callable[[], float] = time.time,
    ) -> MemoryStores:
        """The adapters on a new database that holds these tenants; ``clock`` is the
        database's ``now()``, ``file_clock`` the file store's (Unix seconds)."""
        db = MemoryDatabase(clock)
        for tenant_id in tenants:
            db.add_tenant(tenant_id)
        return cls(
            db,
            MemoryInventory(db),
            MemoryIdentity(db),
            db.users,
            MemoryDeviceRegistry(db),
            MemoryRequests(db),
            MemoryBinaries(db),
            MemoryFiles(clock=file_clock),
            MemoryOperations(db, base_url),
            MemoryChildren(db),
            MemoryChildConnections(db),
            MemoryBulkOperations(db),
            MemoryRolloutSteps(db),
            MemoryTenantOptions(db),
            MemoryChildDevices(db),
            MemoryEnablement(db),
        )
