"""The operations world of the integration tests: the REST API, the services and the
device-message handler on the real PostgreSQL, with a recording device link."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.changes import PgChangeLog
from fleetgate.db.connections import PgChildConnections
from fleetgate.db.dead_letters import PgDeadLetters
from fleetgate.db.devices import PgDevices
from fleetgate.db.enablement import PgEnablement
from fleetgate.db.gateways import PgChildren
from fleetgate.db.groups import PgGroups
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.operations import PgOperations
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import Incoming
from fleetgate.files.store import FileStore
from fleetgate.services.binaries import Binaries
from fleetgate.services.dead_letters import DeadLetters
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.devices import Devices
from fleetgate.services.enablement import DeviceEnablement
from fleetgate.services.gateways import Gateways
from fleetgate.services.groups import Groups
from fleetgate.services.operation_feed import follow
from fleetgate.services.operations import FileSigning, OperationFeed, Operations
from fleetgate.services.profiles import Profiles

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker, RecordingPublisher

ADMIN = ("t1/admin", "admin-pw")
OTHER = ("t2/admin", "admin-pw")
SECRET = b"s" * 32
ALL_OPS = [
    "c8y_Firmware", "c8y_SoftwareUpdate", "c8y_DownloadConfigFile", "c8y_UploadConfigFile",
    "c8y_Restart",
]  # fmt: skip


@dataclass
class World:
    api: httpx.AsyncClient
    operations: Operations
    devices: Devices
    link: RecordingPublisher
    pool: asyncpg.Pool
    messages: DeviceMessages
    app: Any = None
    broker: RecordingBroker | None = None

    async def device(
        self, serial: str, *, tenant: str = "t1", type: str = "thermo", supported: Any = ALL_OPS
    ) -> str:
        """Register ``serial`` as on its first connection, declare it; its object id."""
        event = control.Connected(serial, tenant, "ab" * 20, True, f"c-{serial}")
        await self.devices.connections.on_connected(event)
        declared = {
            "type": type,
            "c8y_SupportedOperations": supported,
            "c8y_SupportedConfigurations": ["ssh", "agent"],
        }
        await self.send(serial, "inventory", declared)
        return await self.object_id(serial, tenant=tenant)

    async def object_id(self, serial: str, *, tenant: str = "t1") -> str:
        auth = ADMIN if tenant == "t1" else OTHER
        ext = await self.api.get(f"/identity/externalIds/c8y_Serial/{serial}", auth=auth)
        assert ext.status_code == 200, ext.text
        return str(ext.json()["managedObject"]["id"])

    async def send(self, serial: str, leaf: str, body: object) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.messages.handle([Incoming(f"fg/d/{serial}/{leaf}", payload)])

    async def report(self, serial: str, op_id: str, status: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"id": op_id, "status": status}
        if reason is not None:
            body["failureReason"] = reason
        await self.send(serial, "op/status", body)

    async def create(self, body: dict[str, Any], auth: tuple[str, str] = ADMIN) -> httpx.Response:
        return await self.api.post("/devicecontrol/operations", json=body, auth=auth)

    async def op(self, op_id: str, auth: tuple[str, str] = ADMIN) -> dict[str, Any]:
        response = await self.api.get(f"/devicecontrol/operations/{op_id}", auth=auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def mo(self, object_id: str) -> dict[str, Any]:
        body: dict[str, Any] = (
            await self.api.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)
        ).json()
        return body

    async def upload(self, name: str, data: bytes, auth: tuple[str, str] = ADMIN) -> str:
        response = await self.api.post(
            "/inventory/binaries",
            files={
                "object": (None, json.dumps({"name": name, "type": "application/octet-stream"})),
                "file": (name, data, "application/octet-stream"),
            },
            auth=auth,
        )
        assert response.status_code == 201, response.text
        return f"{TEST_BASE_URL}/inventory/binaries/{response.json()['id']}"


@pytest.fixture
async def world(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[World]:
    await seed_tenants(pool, "t1", "t2")
    inventory = PgInventory(pool)
    broker = RecordingBroker()
    devices = Devices(
        inventory,
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        broker,
        is_transient=is_transient,
        child_connections=PgChildConnections(pool),
    )
    binaries = Binaries(PgBinaries(pool), FileStore(scratch_dir / "files"))
    link = RecordingPublisher()
    operations = Operations(
        PgOperations(pool, TEST_BASE_URL),
        binaries,
        link,
        FileSigning(SECRET, TEST_BASE_URL, 600),
        OperationFeed(),
    )
    async with api_client(pool) as (app, client):
        services_of(app).devices = devices
        services_of(app).binaries = binaries
        services_of(app).operations = operations
        services_of(app).url_secret = SECRET
        services_of(app).dead_letters = DeadLetters(PgDeadLetters(pool))
        services_of(app).groups = Groups(inventory, PgGroups(pool))
        services_of(app).profiles = Profiles(inventory)
        services_of(app).enablement = DeviceEnablement(
            PgEnablement(pool), inventory, broker, operations
        )
        messages = DeviceMessages(
            operations,
            devices.declare,
            PgDeadLetters(pool),
            link,
            children=Gateways(PgChildren(pool), devices.connections),
            is_transient=is_transient,
        )
        # The live feed follows the database's change log, as in the service.
        following = asyncio.create_task(follow(operations.feed, PgChangeLog(pool)))
        try:
            await asyncio.wait_for(operations.feed.following.wait(), 30)
            yield World(client, operations, devices, link, pool, messages, app, broker)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
