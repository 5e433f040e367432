"""Device ids are global (docs/decisions/0006-global-device-ids.md): the identity matrix.

Every way a tenant can come to hold a device id, against every way another tenant could
try to take it: each attempt is refused, and nothing of the holder changes. A migration
(decision 0014) is among the ways of taking: another tenant cannot ask to move the
holder's device to itself (only the holder's administrator requests a move, and only the
target's confirms it: tests/integration/test_device_migrations_pg.py). Gateway children
join this matrix when that path is added.

(``POST /inventory/managedObjects`` is not a path: a managed object gets a device id only
through ``/identity``, a bulk import, bootstrap or registration.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.bootstrap import PgRequests
from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.db.device_migrations import PgDeviceMigrations
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.operations import PgOperations
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.operations import Report, Status
from fleetgate.services.bootstrap import Bootstrap
from fleetgate.services.bulk import BulkCredentials
from fleetgate.services.device_migrations import DeviceMigrations
from fleetgate.services.devices import Devices

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

DEVICE = "hd1"
ADMINS = {
    "t1": ("t1/admin", "admin-pw"),
    "t2": ("t2/admin", "admin-pw"),
    "management": ("management/admin", "mgmt-pw"),
}
BOOTSTRAP = {"t1": ("t1/devicebootstrap", "boot-pw")}
NEW_DEVICE_REQUEST = "application/vnd.com.nsn.cumulocity.newDeviceRequest+json"


@dataclass
class World:
    pool: asyncpg.Pool
    api: httpx.AsyncClient
    devices: Devices
    broker: RecordingBroker

    async def holders(self) -> list[tuple[str, str]]:
        """(tenant, kind) of everything that holds the device id."""
        rows = await self.pool.fetch(
            "SELECT tenant_id, 'device' AS kind FROM external_id"
            " WHERE type = 'c8y_Serial' AND value = $1"
            " UNION ALL SELECT tenant_id, 'request' FROM new_device_request WHERE id = $1"
            " ORDER BY 1, 2",
            DEVICE,
        )
        return [(r["tenant_id"], r["kind"]) for r in rows]

    async def device_user_tenants(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT tenant_id FROM app_user WHERE username = $1 ORDER BY 1", f"device_{DEVICE}"
        )
        return [r["tenant_id"] for r in rows]

    async def new_object(self, tenant: str) -> str:
        created = await self.api.post(
            "/inventory/managedObjects",
            json={"name": "mine", "c8y_IsDevice": {}},
            auth=ADMINS[tenant],
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


@pytest.fixture
async def world(pool: asyncpg.Pool) -> AsyncIterator[World]:
    await seed_tenants(pool, "t1", "t2")
    broker = RecordingBroker()
    devices = Devices(
        PgInventory(pool),
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        broker,
        is_transient=is_transient,
    )
    async with api_client(pool) as (app, api):
        services_of(app).devices = devices
        services_of(app).bootstrap = Bootstrap(PgRequests(pool), broker)
        services_of(app).bulk = BulkCredentials(PgBulkCredentials(pool), broker)
        services_of(app).device_migrations = DeviceMigrations(
            PgDeviceMigrations(pool), broker, devices.connections.children_changed
        )
        yield World(pool, api, devices, broker)


# --- how t1 comes to hold the id ---------------------------------------------------------


async def hold_by_registration(world: World) -> None:
    await world.devices.connections.on_connected(
        control.Connected(DEVICE, "t1", "ab" * 20, True, "e-1")
    )


async def hold_by_external_id(world: World) -> None:
    object_id = await world.new_object("t1")
    added = await world.api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": DEVICE},
        auth=ADMINS["t1"],
    )
    assert added.status_code == 201, added.text


async def hold_by_bulk_import(world: World) -> None:
    body = await bulk_import(world, "t1")
    assert body["numberOfSuccessful"] == 1, body


async def hold_by_request(world: World) -> None:
    created = await world.api.post(
        "/devicecontrol/newDeviceRequests", json={"id": DEVICE}, auth=ADMINS["t1"]
    )
    assert created.status_code == 201, created.text


async def hold_by_bootstrap(world: World) -> None:
    await hold_by_request(world)
    headers = {"Accept": NEW_DEVICE_REQUEST}
    ask = {"json": {"id": DEVICE}, "auth": BOOTSTRAP["t1"], "headers": headers}
    assert (await world.api.post("/devicecontrol/deviceCredentials", **ask)).status_code == 404
    accepted = await world.api.put(
        f"/devicecontrol/newDeviceRequests/{DEVICE}",
        json={"status": "ACCEPTED"},
        auth=ADMINS["t1"],
    )
    assert accepted.status_code == 200, accepted.text
    issued = await world.api.post("/devicecontrol/deviceCredentials", **ask)
    assert issued.status_code == 201, issued.text


HOLD: dict[str, Callable[[World], Awaitable[None]]] = {
    "registration": hold_by_registration,
    "external id": hold_by_external_id,
    "bulk import": hold_by_bulk_import,
    "new device request": hold_by_request,
    "bootstrap": hold_by_bootstrap,
}

# --- how another tenant tries to take it -------------------------------------------------


async def bulk_import(world: World, tenant: str) -> dict[str, object]:
    """A one-row import into ``tenant`` (the management tenant names its target)."""
    content = f"ID;CREDENTIALS;TENANT;TYPE;NAME\n{DEVICE};abcd1234;{tenant};t;n\n".encode()
    response = await world.api.post(
        "/devicecontrol/bulkNewDeviceRequests",
        files={"file": ("devices.csv", content, "text/plain")},
        auth=ADMINS[tenant],
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def take_by_external_id(world: World, tenant: str) -> None:
    object_id = await world.new_object(tenant)
    taken = await world.api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": DEVICE},
        auth=ADMINS[tenant],
    )
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"] == "identity/Duplicate"
    assert "in use in another tenant" in taken.json()["message"]


async def take_by_bulk_import(world: World, tenant: str) -> None:
    body = await bulk_import(world, tenant)
    assert body["numberOfFailed"] == 1, body
    [failure] = body["failedCreationList"]  # type: ignore[misc]
    assert "in use in another tenant" in failure["failureReason"]


async def take_by_request(world: World, tenant: str) -> None:
    taken = await world.api.post(
        "/devicecontrol/newDeviceRequests", json={"id": DEVICE}, auth=ADMINS[tenant]
    )
    assert taken.status_code == 409, taken.text
    assert "in use in another tenant" in taken.json()["message"]


async def take_by_registration(world: World, tenant: str) -> None:
    """A certificate from a CA of the other tenant, with the device id as CN, got past a
    plugin whose state was behind: the service refuses to register it there and has the
    plugin's state pushed again (which closes that session)."""
    resyncs = world.broker.resyncs
    await world.devices.connections.on_connected(
        control.Connected(DEVICE, tenant, "cd" * 20, True, "e-9")
    )
    assert world.broker.resyncs == resyncs + 1


async def take_by_migration(world: World, tenant: str) -> None:
    """Ask to move the holder's device (or, for a request, any object) into ``tenant``."""
    object_id = await world.pool.fetchval(
        "SELECT managed_object_id FROM external_id WHERE type = 'c8y_Serial' AND value = $1",
        DEVICE,
    )
    for source in (tenant, "t1"):
        body = {"deviceId": str(object_id or 1), "targetTenant": source}
        taken = await world.api.post("/inventory/migrations", json=body, auth=ADMINS[tenant])
        assert taken.status_code in (404, 422), taken.text
    assert await world.pool.fetchval("SELECT count(*) FROM device_migration") == 0


TAKE: dict[str, Callable[[World, str], Awaitable[None]]] = {
    "external id": take_by_external_id,
    "bulk import": take_by_bulk_import,
    "new device request": take_by_request,
    "registration": take_by_registration,
    "migration": take_by_migration,
}


@pytest.mark.parametrize("taker", ["t2", "management"])
@pytest.mark.parametrize("take", list(TAKE))
@pytest.mark.parametrize("hold", list(HOLD))
async def test_no_path_takes_another_tenants_device_id(
    world: World, hold: str, take: str, taker: str
) -> None:
    await HOLD[hold](world)
    holders, users = await world.holders(), await world.device_user_tenants()
    assert {t for t, _ in holders} == {"t1"}
    pushed = len(world.broker.lines)

    await TAKE[take](world, taker)

    assert await world.holders() == holders
    assert await world.device_user_tenants() == users
    assert not any(f" {taker} " in line for line in world.broker.lines[pushed:])


async def test_the_holder_may_give_its_own_id_again(world: World) -> None:
    """Within one tenant, the paths meet: a bulk import updates the registered device,
    a new device request renews its credentials."""
    await hold_by_registration(world)
    body = await bulk_import(world, "t1")
    assert body["numberOfSuccessful"] == 1, body
    created = await world.api.post(
        "/devicecontrol/newDeviceRequests", json={"id": DEVICE}, auth=ADMINS["t1"]
    )
    assert created.status_code == 201
    assert await world.holders() == [("t1", "device"), ("t1", "request")]


async def test_a_device_holds_one_device_id(world: World) -> None:
    object_id = await world.new_object("t1")
    path = f"/identity/globalIds/{object_id}/externalIds"
    first = await world.api.post(
        path, json={"type": "c8y_Serial", "externalId": "first"}, auth=ADMINS["t1"]
    )
    assert first.status_code == 201
    second = await world.api.post(
        path, json={"type": "c8y_Serial", "externalId": "second"}, auth=ADMINS["t1"]
    )
    assert second.status_code == 409
    assert "has the device id first already" in second.json()["message"]


async def test_a_released_id_is_free_and_its_broker_session_is_discarded(world: World) -> None:
    await hold_by_registration(world)
    deleted = await world.api.delete(
        f"/identity/externalIds/c8y_Serial/{DEVICE}", auth=ADMINS["t1"]
    )
    assert deleted.status_code == 204
    assert world.broker.discarded == [DEVICE]
    assert await world.pool.fetchval("SELECT count(*) FROM device_session_release") == 0
    await take_by_request_succeeds(world, "t2")


async def take_by_request_succeeds(world: World, tenant: str) -> None:
    created = await world.api.post(
        "/devicecontrol/newDeviceRequests", json={"id": DEVICE}, auth=ADMINS[tenant]
    )
    assert created.status_code == 201, created.text


async def test_released_ids_wait_until_the_broker_takes_them(world: World) -> None:
    """A broker that cannot be reached keeps the release in the database; the next
    drain (the bridge runs one at every connect, before any device can log in) does it."""

    class Unreachable(RecordingBroker):
        async def discard_sessions(self, device_ids: list[str]) -> list[str]:
            return []

    await hold_by_registration(world)
    world.devices._broker = Unreachable()  # the broker goes away
    await world.api.delete(f"/identity/externalIds/c8y_Serial/{DEVICE}", auth=ADMINS["t1"])
    assert await world.pool.fetchval("SELECT device_id FROM device_session_release") == DEVICE
    world.devices._broker = world.broker  # and comes back
    await world.devices.discard_released_sessions()
    assert world.broker.discarded == [DEVICE]
    assert await world.pool.fetchval("SELECT count(*) FROM device_session_release") == 0


async def test_operations_stay_with_the_device_not_the_id(world: World) -> None:
    """An id taken from t1's device and given to t2's: t2's device neither receives the
    commands of t1's device nor moves them."""
    await hold_by_registration(world)
    device_object = await world.pool.fetchval(
        "SELECT managed_object_id FROM external_id WHERE value = $1", DEVICE
    )
    op_id = await world.pool.fetchval(
        "INSERT INTO operation (tenant_id, device_id, serial, fragment_type, fragments)"
        " VALUES ('t1', $1, $2, 'c8y_Restart', '{\"c8y_Restart\": {}}') RETURNING id",
        device_object,
        DEVICE,
    )
    store = PgOperations(world.pool, TEST_BASE_URL)
    assert [op.id for op in await store.open_for([DEVICE])] == [op_id]

    await world.api.delete(f"/identity/externalIds/c8y_Serial/{DEVICE}", auth=ADMINS["t1"])
    await world.devices.connections.on_connected(
        control.Connected(DEVICE, "t2", "cd" * 20, True, "e-2")
    )
    assert await world.holders() == [("t2", "device")]

    assert await store.open_for([DEVICE]) == []
    assert await store.undispatched(10) == []
    [outcome] = await store.apply([Report(op_id, Status.SUCCESSFUL, serial=DEVICE)])
    assert outcome.move is None
    assert (await store.get("t1", op_id)).status is Status.PENDING  # type: ignore[union-attr]


async def test_a_devices_user_goes_with_its_id_in_one_transaction(world: World) -> None:
    """Whatever deletes the id (here plain SQL, as a cascade would), the user goes with it
    and the release is recorded: no user is left whose device is gone."""
    await hold_by_registration(world)
    assert await world.device_user_tenants() == ["t1"]
    await world.pool.execute("DELETE FROM managed_object WHERE tenant_id = 't1'")
    assert await world.device_user_tenants() == []
    assert await world.pool.fetchval("SELECT device_id FROM device_session_release") == DEVICE
    operators = await world.pool.fetchval("SELECT count(*) FROM app_user WHERE tenant_id = 't1'")
    assert operators == 2  # admin and devicebootstrap stay
