"""Devices against the real PostgreSQL: registration, connection status, device users,
inventory and identity over the REST API. The broker is a recording fake here; the
end-to-end tests drive the same paths through a real mosquitto."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.services.broker import removed_device_lines, removed_user_lines
from fleetgate.services.devices import Devices

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

BASE = TEST_BASE_URL
ADMIN = ("t1/admin", "admin-pw")
FP = "ab" * 20


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
async def devices(pool: asyncpg.Pool, broker: RecordingBroker) -> Devices:
    users = PgUsers(pool)
    await seed_tenants(pool, "t1", "t2", bootstrap_password="b")
    return Devices(
        PgInventory(pool),
        PgIdentity(pool),
        users,
        PgDevices(pool),
        broker,
        is_transient=is_transient,
    )


@pytest.fixture
async def api(devices: Devices, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(pool) as (app, c):
        services_of(app).devices = devices
        yield c


def connected(device: str, connection: str, *, new: bool = True, tenant: str = "t1"):
    return control.Connected(device, tenant, FP, new, connection)


async def test_first_connection_registers_the_device_as_cumulocity_shows_it(
    devices: Devices, api: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    await devices.connections.on_connected(connected("sensor-1", "e-1"))
    ext = await api.get("/identity/externalIds/c8y_Serial/sensor-1", auth=ADMIN)
    assert ext.status_code == 200
    object_id = ext.json()["managedObject"]["id"]
    mo = (await api.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)).json()
    assert mo["name"] == "sensor-1"
    assert mo["owner"] == "device_sensor-1"
    assert mo["type"] == "c8y_MQTTDevice"
    assert mo["c8y_IsDevice"] == {}
    assert mo["fleetgate_CertificateAuthority"] == {"fingerprint": FP}
    assert mo["c8y_Connection"] == {"status": "CONNECTED"}
    assert mo["c8y_Availability"]["lastMessage"].endswith("Z")
    assert broker.lines == [control.device("sensor-1", "t1", True)]
    users = (await api.get("/user/t1/users?onlyDevices=true", auth=ADMIN)).json()["users"]
    assert [u["userName"] for u in users] == ["device_sensor-1"]
    assert {r["id"] for r in users[0]["effectiveRoles"]} >= {"ROLE_DEVICE"}


async def test_many_first_connections_at_once_register_each_device_exactly_once(
    devices: Devices, pool: asyncpg.Pool
) -> None:
    events = [connected(f"dev-{i:03d}", f"e-{i}-{k}") for i in range(200) for k in range(2)]
    await asyncio.gather(*(devices.connections.on_connected(e) for e in events))
    objects = await pool.fetchval("SELECT count(*) FROM managed_object WHERE tenant_id = 't1'")
    ids = await pool.fetchval("SELECT count(*) FROM external_id WHERE tenant_id = 't1'")
    users = await pool.fetchval(
        "SELECT count(*) FROM app_user WHERE tenant_id = 't1' AND username LIKE 'device\\_%'"
    )
    assert (objects, ids, users) == (200, 200, 200)


async def test_a_late_disconnect_of_an_older_connection_does_not_mark_offline(
    devices: Devices, api: httpx.AsyncClient
) -> None:
    await devices.connections.on_connected(connected("d1", "e-1"))
    await devices.connections.on_connected(connected("d1", "e-2", new=False))
    await devices.connections.on_disconnected(control.Disconnected("d1", "t1", "e-1"))
    ext = (await api.get("/identity/externalIds/c8y_Serial/d1", auth=ADMIN)).json()
    mo_url = f"/inventory/managedObjects/{ext['managedObject']['id']}"
    assert (await api.get(mo_url, auth=ADMIN)).json()["c8y_Connection"]["status"] == "CONNECTED"
    await devices.connections.on_disconnected(control.Disconnected("d1", "t1", "e-2"))
    mo = (await api.get(mo_url, auth=ADMIN)).json()
    assert mo["c8y_Connection"]["status"] == "DISCONNECTED"
    assert "lastMessage" in mo["c8y_Availability"]


async def test_reconcile_marks_devices_not_live_as_disconnected(
    devices: Devices, pool: asyncpg.Pool
) -> None:
    await devices.connections.on_connected(connected("a", "e-1"))
    await devices.connections.on_connected(connected("b", "e-2"))
    await devices.connections.reconcile((control.LiveClient("b", "t1", FP, "e-9"),))
    rows = await pool.fetch(
        "SELECT name, fragments->'c8y_Connection'->>'status' AS s FROM managed_object ORDER BY name"
    )
    assert [(r["name"], r["s"]) for r in rows] == [("a", "DISCONNECTED"), ("b", "CONNECTED")]


async def test_an_operator_pre_registers_a_device_and_the_broker_learns_it(
    api: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    created = await api.post(
        "/inventory/managedObjects",
        json={"name": "Pump 7", "type": "pump", "c8y_IsDevice": {}},
        auth=ADMIN,
    )
    assert created.status_code == 201
    object_id = created.json()["id"]
    added = await api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": "pump-7"},
        auth=ADMIN,
    )
    assert added.status_code == 201
    assert added.json()["managedObject"]["id"] == object_id
    assert broker.lines == [control.device("pump-7", "t1", True)]
    twice = await api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": "pump-7"},
        auth=ADMIN,
    )
    assert twice.status_code == 409
    bad = await api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": "a/b"},
        auth=ADMIN,
    )
    assert bad.status_code == 422
    assert "'/'" in bad.json()["message"]


async def test_disabling_and_deleting_a_device_user_is_pushed_to_the_broker(
    devices: Devices, api: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    await devices.connections.on_connected(connected("d9", "e-1"))
    broker.lines.clear()
    off = await api.put("/user/t1/users/device_d9", json={"enabled": False}, auth=ADMIN)
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert broker.lines == [control.device("d9", "t1", False)]
    gone = await api.delete("/user/t1/users/device_d9", auth=ADMIN)
    assert gone.status_code == 204
    assert broker.lines[-2:] == removed_user_lines("t1", "d9")
    assert (await api.get("/user/t1/users/device_d9", auth=ADMIN)).status_code == 404
    # A factory-reset device comes back: its user is made again, enabled.
    broker.lines.clear()
    await devices.connections.on_connected(connected("d9", "e-2"))
    assert broker.lines == [control.device("d9", "t1", True)]


async def test_tenants_never_see_each_others_devices_or_users(
    devices: Devices, api: httpx.AsyncClient
) -> None:
    await devices.connections.on_connected(connected("secret-device", "e-1", tenant="t2"))
    other = ("t2/admin", "admin-pw")
    assert (
        await api.get("/identity/externalIds/c8y_Serial/secret-device", auth=other)
    ).status_code == 200
    assert (
        await api.get("/identity/externalIds/c8y_Serial/secret-device", auth=ADMIN)
    ).status_code == 404
    listed = (await api.get("/inventory/managedObjects?pageSize=100", auth=ADMIN)).json()
    assert listed["managedObjects"] == []
    assert (await api.get("/user/t2/users?onlyDevices=true", auth=ADMIN)).status_code == 403
    assert (
        await api.put("/user/t2/users/device_secret-device", json={"enabled": False}, auth=ADMIN)
    ).status_code == 403


async def test_inventory_paging_filters_and_updates(api: httpx.AsyncClient) -> None:
    for i in range(7):
        body = {"name": f"o{i}", "type": "even" if i % 2 == 0 else "odd"}
        if i < 3:
            body["c8y_IsDevice"] = {}
        assert (
            await api.post("/inventory/managedObjects", json=body, auth=ADMIN)
        ).status_code == 201
    page = (
        await api.get("/inventory/managedObjects?pageSize=3&withTotalPages=true", auth=ADMIN)
    ).json()
    assert [m["name"] for m in page["managedObjects"]] == ["o0", "o1", "o2"]
    assert page["statistics"] == {
        "currentPage": 1,
        "pageSize": 3,
        "totalPages": 3,
        "totalElements": 7,
    }
    assert "currentPage=2" in page["next"]
    devices_only = (
        await api.get("/inventory/managedObjects?fragmentType=c8y_IsDevice&type=even", auth=ADMIN)
    ).json()
    assert [m["name"] for m in devices_only["managedObjects"]] == ["o0", "o2"]
    first = page["managedObjects"][0]
    updated = await api.put(
        f"/inventory/managedObjects/{first['id']}",
        json={"name": "renamed", "c8y_IsDevice": None, "custom": {"a": 1}},
        auth=ADMIN,
    )
    assert updated.status_code == 200
    assert updated.json()["name"] == "renamed"
    assert "c8y_IsDevice" not in updated.json()
    assert updated.json()["custom"] == {"a": 1}
    refused = await api.put(
        f"/inventory/managedObjects/{first['id']}", json={"id": "99"}, auth=ADMIN
    )
    assert refused.status_code == 422
    assert (await api.get("/inventory/managedObjects?pageSize=0", auth=ADMIN)).status_code == 422
    assert (await api.get("/inventory/managedObjects/999999", auth=ADMIN)).status_code == 404
    assert (await api.get("/inventory/managedObjects/abc", auth=ADMIN)).status_code == 422
    garbage = await api.post(
        "/inventory/managedObjects",
        content=b"{not json",
        auth=ADMIN,
        headers={"content-type": "application/json"},
    )
    assert garbage.status_code == 400


async def test_deleting_a_device_removes_its_user_and_tells_the_broker(
    devices: Devices, api: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    await devices.connections.on_connected(connected("bye", "e-1"))
    ext = (await api.get("/identity/externalIds/c8y_Serial/bye", auth=ADMIN)).json()
    deleted = await api.delete(
        f"/inventory/managedObjects/{ext['managedObject']['id']}", auth=ADMIN
    )
    assert deleted.status_code == 204
    assert broker.lines[-3:] == removed_device_lines("t1", "bye")
    assert (await api.get("/user/t1/users/device_bye", auth=ADMIN)).status_code == 404
