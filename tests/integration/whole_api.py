"""The REST API with every service on it, as the composition root wires it, on a real
PostgreSQL; only the broker and the device link are recording fakes. For tests that
walk the whole API (bad-input corpora, the schemathesis run)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from fastapi import FastAPI

from fleetgate.api.services import services_of
from fleetgate.db.batch import PgBatchUpdates
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.bootstrap import PgRequests
from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.db.bulk_operations import PgBulkOperations
from fleetgate.db.child_devices import PgChildDevices
from fleetgate.db.connections import PgChildConnections
from fleetgate.db.dead_letters import PgDeadLetters
from fleetgate.db.device_migrations import PgDeviceMigrations
from fleetgate.db.devices import PgDevices
from fleetgate.db.enablement import PgEnablement
from fleetgate.db.groups import PgGroups
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.migrations import migrate
from fleetgate.db.operations import PgOperations
from fleetgate.db.pool import create_pool, drop_database, ensure_database, ping
from fleetgate.db.rollout_steps import PgRolloutSteps
from fleetgate.db.tenant_options import PgTenantOptions
from fleetgate.db.tenants import PgTenants
from fleetgate.db.traces import PgTraces
from fleetgate.db.transient import is_transient
from fleetgate.db.trust import PgTrustStore
from fleetgate.db.users import PgUsers
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.tenants import DeletedTenant
from fleetgate.files.store import FileStore
from fleetgate.metrics.registry import ServiceMetrics
from fleetgate.services.batch import BatchUpdates
from fleetgate.services.binaries import Binaries
from fleetgate.services.bootstrap import Bootstrap
from fleetgate.services.bulk import BulkCredentials, BulkLimits
from fleetgate.services.bulk_operations import BulkOperations
from fleetgate.services.child_devices import ChildDevices
from fleetgate.services.credentials import BrokerAccess, DeviceCredentials, Listener
from fleetgate.services.dead_letters import DeadLetters
from fleetgate.services.device_migrations import DeviceMigrations
from fleetgate.services.devices import Devices
from fleetgate.services.enablement import DeviceEnablement
from fleetgate.services.groups import Groups
from fleetgate.services.health import Health
from fleetgate.services.operation_feed import OperationFeed
from fleetgate.services.operations import FileSigning, Operations
from fleetgate.services.operators import Operators
from fleetgate.services.profiles import Profiles
from fleetgate.services.tenant_options import TenantOptions
from fleetgate.services.tenants import Tenants
from fleetgate.services.traces import Tracing
from fleetgate.services.trust import TrustedCertificates
from fleetgate.sheets import XlsxWorkbooks

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker, RecordingPublisher

TENANT = "t1"


def fast_hash(password: str) -> str:
    """A cheap scrypt hash: tests create many users."""
    return hash_password(password, log2_n=4, r=1, p=1)


ADMIN = (f"{TENANT}/admin", "admin-pw")
URL_SECRET = b"u" * 32


class RecordingTrustChanges:
    """A :class:`fleetgate.services.ports.BrokerChanges` that counts the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def trust_changed(self, tenant_id: str) -> None:
        self.calls.append(tenant_id)


@dataclass
class Fakes:
    """What the services told the outside world."""

    broker: RecordingBroker
    trust_changes: RecordingTrustChanges
    link: RecordingPublisher


@dataclass
class WholeApi:
    app: FastAPI
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    fakes: Fakes


def wire(app: FastAPI, pool: asyncpg.Pool, files: Path, base_url: str = TEST_BASE_URL) -> Fakes:
    """Put every service on ``app.state`` as ``fleetgate.app.run_service`` does."""
    broker = RecordingBroker()
    trust_changes = RecordingTrustChanges()
    link = RecordingPublisher()
    inventory = PgInventory(pool)
    binaries = Binaries(PgBinaries(pool), FileStore(files))
    services_of(app).devices = Devices(
        inventory,
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        broker,
        is_transient=is_transient,
        files_released=binaries.release,
        child_connections=PgChildConnections(pool),
    )
    services_of(app).trust = TrustedCertificates(PgTrustStore(pool), trust_changes)
    services_of(app).bootstrap = Bootstrap(PgRequests(pool), broker)
    services_of(app).bulk = BulkCredentials(
        PgBulkCredentials(pool), broker, limits=BulkLimits(batch_rows=4)
    )
    services_of(app).binaries = binaries
    operations = Operations(
        PgOperations(pool, base_url),
        binaries,
        link,
        FileSigning(URL_SECRET, base_url, 600),
        OperationFeed(),
    )
    services_of(app).operations = operations
    services_of(app).bulk_operations = BulkOperations(
        PgBulkOperations(pool), PgRolloutSteps(pool), PgGroups(pool), operations
    )
    services_of(app).dead_letters = DeadLetters(PgDeadLetters(pool))
    # The real database probe; the broker connections are fakes that are always up.
    services_of(app).health = Health(
        lambda: ping(pool, 10.0),
        {"brokerBridge": lambda: True, "deviceLink": lambda: True},
        database_timeout=10.0,
    )
    services_of(app).tenant_options = TenantOptions(PgTenantOptions(pool))
    services_of(app).child_devices = ChildDevices(
        PgChildDevices(pool), inventory, services_of(app).devices.connections.children_changed
    )
    services_of(app).url_secret = URL_SECRET
    services_of(app).groups = Groups(PgInventory(pool), PgGroups(pool))
    services_of(app).profiles = Profiles(PgInventory(pool))
    services_of(app).operators = Operators(PgUsers(pool), hasher=fast_hash)
    devices = services_of(app).devices
    assert devices is not None

    async def after_tenant_deletion(deleted: DeletedTenant) -> None:
        # as the composition root: capath and resync, released sessions, files
        await trust_changes.trust_changed(deleted.tenant_id)
        await devices.discard_released_sessions()
        await binaries.release(deleted.file_sha256s)

    services_of(app).tenants = Tenants(
        PgTenants(pool),
        broker,
        bootstrap_username="devicebootstrap",
        after_deletion=after_tenant_deletion,
        hasher=fast_hash,
    )
    services_of(app).batch = BatchUpdates(PgBatchUpdates(pool), XlsxWorkbooks())
    services_of(app).enablement = DeviceEnablement(
        PgEnablement(pool), inventory, broker, operations
    )
    services_of(app).metrics = ServiceMetrics()
    services_of(app).device_migrations = DeviceMigrations(
        PgDeviceMigrations(pool), broker, devices.connections.children_changed
    )
    traces = PgTraces(pool)
    services_of(app).tracing = Tracing(traces, broker, is_transient=is_transient)
    access = BrokerAccess(Listener("localhost", 8883), Listener("localhost", 8884), None)
    services_of(app).credentials = DeviceCredentials(
        traces,
        devices.get_object,
        PgTrustStore(pool).get,
        broker,
        access,
        hasher=fast_hash,
    )
    return Fakes(broker, trust_changes, link)


@contextlib.asynccontextmanager
async def fresh_pool(admin_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new, migrated database of the server at ``admin_url``; dropped after.
    For module-scoped fixtures (the ``pool`` fixture is one database per test)."""
    name = f"fleetgate_test_{secrets.token_hex(6)}"
    await ensure_database(admin_url, name)
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        pool = await create_pool(url, min_size=1, max_size=10)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await drop_database(admin_url, name)


@contextlib.asynccontextmanager
async def whole_api(pool: asyncpg.Pool, files: Path) -> AsyncIterator[WholeApi]:
    """The whole API on ``pool`` (tenant ``t1`` seeded) and an in-process client."""
    await seed_tenants(pool, TENANT)
    async with api_client(pool) as (app, client):
        yield WholeApi(app, client, pool, wire(app, pool, files))
