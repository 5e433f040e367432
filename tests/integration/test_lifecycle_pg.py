"""Devices' lifecycle status against the real PostgreSQL (docs/api.md "Lifecycle status"):
shown on the managed object as the device is created, connects and disconnects, filtered
in device lists, counted per status; and migration 0016's backfill of older devices."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

import fleetgate.db
from fleetgate.api.services import services_of
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.services.devices import Devices

from conftest import api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

ADMIN = ("t1/admin", "admin-pw")
FP = "ab" * 20


@pytest.fixture
async def devices(pool: asyncpg.Pool) -> Devices:
    await seed_tenants(pool, "t1", "t2", bootstrap_password="b")
    return Devices(
        PgInventory(pool),
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        RecordingBroker(),
        is_transient=is_transient,
    )


@pytest.fixture
async def api(devices: Devices, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(pool) as (app, c):
        services_of(app).devices = devices
        yield c


async def _lifecycle(api: httpx.AsyncClient, device: str) -> object:
    ext = (await api.get(f"/identity/externalIds/c8y_Serial/{device}", auth=ADMIN)).json()
    mo = await api.get(f"/inventory/managedObjects/{ext['managedObject']['id']}", auth=ADMIN)
    return mo.json()["fleetgate_Lifecycle"]


async def _names(api: httpx.AsyncClient, params: dict[str, str]) -> list[str]:
    answer = await api.get("/inventory/managedObjects", params=params, auth=ADMIN)
    assert answer.status_code == 200, answer.text
    return sorted(o["name"] for o in answer.json()["managedObjects"])


async def test_a_device_is_inactive_then_online_then_offline_and_lists_follow(
    devices: Devices, api: httpx.AsyncClient
) -> None:
    made = await api.post(
        "/inventory/managedObjects", json={"name": "pre", "c8y_IsDevice": {}}, auth=ADMIN
    )
    assert made.json()["fleetgate_Lifecycle"] == {"status": "INACTIVE"}
    await api.post("/inventory/managedObjects", json={"name": "thing"}, auth=ADMIN)
    await devices.connections.on_connected(control.Connected("d1", "t1", FP, True, "e-1"))
    await devices.connections.on_connected(control.Connected("d2", "t1", FP, True, "e-2"))
    assert await _lifecycle(api, "d1") == {"status": "ONLINE"}
    await devices.connections.on_disconnected(control.Disconnected("d2", "t1", "e-2"))
    assert await _lifecycle(api, "d2") == {"status": "OFFLINE", "reason": "connection closed"}
    # Another tenant's devices are not counted nor listed.
    await devices.connections.on_connected(control.Connected("x1", "t2", FP, True, "e-3"))

    assert await _names(api, {"lifecycleStatus": "ONLINE"}) == ["d1"]
    assert await _names(api, {"lifecycleStatus": "INACTIVE"}) == ["pre"]
    assert await _names(api, {"q": "fleetgate_Lifecycle.status eq 'OFFLINE'"}) == ["d2"]
    assert await _names(api, {"lifecycleStatus": "DISABLED"}) == []
    counts = await api.get("/inventory/lifecycle", auth=ADMIN)
    assert counts.status_code == 200
    assert counts.json()["statuses"] == {"INACTIVE": 1, "ONLINE": 1, "OFFLINE": 1, "DISABLED": 0}
    assert counts.json()["total"] == 3


async def test_an_unknown_lifecycle_status_is_a_422(api: httpx.AsyncClient) -> None:
    answer = await api.get("/inventory/managedObjects?lifecycleStatus=online", auth=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["error"] == "general/validationError"
    assert "lifecycleStatus" in answer.json()["message"]


async def test_counting_needs_inventory_read(api: httpx.AsyncClient) -> None:
    assert (await api.get("/inventory/lifecycle")).status_code == 401


async def test_migration_0016_gives_older_devices_their_status(pool: asyncpg.Pool) -> None:
    await seed_tenants(pool, "t1")
    older = {
        "never": {"c8y_IsDevice": {}},
        "on": {"c8y_IsDevice": {}, "c8y_Connection": {"status": "CONNECTED"}},
        "off": {
            "c8y_IsDevice": {},
            "c8y_Connection": {"status": "DISCONNECTED"},
            "fleetgate_Connection": {"status": "DISCONNECTED", "reason": "connection closed"},
        },
        "thing": {"c8y_Thing": {}},
    }
    for name, fragments in older.items():
        # As rows were written before 0016 (the adapter would add INACTIVE).
        await pool.execute(
            "INSERT INTO managed_object (tenant_id, name, fragments) VALUES ('t1', $1, $2::jsonb)",
            name,
            json.dumps(fragments),
        )
    sql = Path(fleetgate.db.__file__).parent / "migrations" / "0016_device_lifecycle.sql"
    await pool.execute(sql.read_text())
    rows = await pool.fetch(
        "SELECT name, fragments -> 'fleetgate_Lifecycle' AS l FROM managed_object"
    )
    shown = {r["name"]: r["l"] for r in rows}
    assert shown == {
        "never": '{"status": "INACTIVE"}',
        "on": '{"status": "ONLINE"}',
        "off": '{"reason": "connection closed", "status": "OFFLINE"}',
        "thing": None,
    }
