"""Isolation, proved: every resource of tenant B (inventory, identity, operations, bulk
operations, binaries, trusted certificates, users, new device requests, tenant options,
device migrations, the tenant itself) by reading and writing from tenant A's admin, a
watcher of A (read roles only) and a device account of A → 403 or 404, and B, read back
by its own admin, is exactly as it was. The whole API on PostgreSQL, one database for the module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_binaries import upload
from test_trust_api import fingerprint, pem

from fleetgate.db.users import PgUsers
from fleetgate.domain.users import Role
from fleetgate.pki import generate_ca

from whole_api import ADMIN, WholeApi, fast_hash, fresh_pool, whole_api

pytestmark = pytest.mark.integration

MANAGER = ("management/admin", "mgmt-pw")
OWNER = ("acme/boss", "boss-pw-123")
WATCHER = ("t1/watcher", "watcher-pw")
DEVICE = ("t1/device_dev-a", "device-pw")
ACTORS = {"admin": ADMIN, "watcher": WATCHER, "device": DEVICE}
WATCHER_ROLES = (
    Role.INVENTORY_READ,
    Role.IDENTITY_READ,
    Role.DEVICE_CONTROL_READ,
    Role.BULK_OPERATION_READ,
    Role.USER_MANAGEMENT_READ,
    Role.OPTION_MANAGEMENT_READ,
    Role.TENANT_MANAGEMENT_READ,
    Role.USER_MANAGEMENT_OWN_READ,
)


@dataclass
class TenantB:
    """Tenant B's resources, made by its admin."""

    device: str
    group: str
    operation: str
    bulk: str
    binary: str
    fingerprint: str
    migration: str
    request: str = "acme-req-1"
    serial: str = "acme-dev-1"


@dataclass
class World:
    api: WholeApi
    b: TenantB


async def _made(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture(scope="module")
async def world(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    files = Path(tmp_path_factory.mktemp("files"))
    async with fresh_pool(postgres_admin_url) as pool, whole_api(pool, files) as api:
        client = api.client
        users = PgUsers(pool)
        await users.ensure_user("t1", "watcher", fast_hash(WATCHER[1]), WATCHER_ROLES)
        await users.ensure_user("t1", "device_dev-a", fast_hash(DEVICE[1]), [Role.DEVICE])
        await _made(
            await client.post(
                "/tenant/tenants",
                auth=MANAGER,
                json={
                    "id": "acme",
                    "company": "ACME",
                    "domain": "acme.example",
                    "adminName": "boss",
                    "adminPass": OWNER[1],
                },
            )
        )
        device = await _made(
            await client.post(
                "/inventory/managedObjects",
                auth=OWNER,
                json={"name": "d", "c8y_IsDevice": {}, "c8y_SupportedOperations": ["c8y_Restart"]},
            )
        )
        await _made(
            await client.post(
                f"/identity/globalIds/{device['id']}/externalIds",
                auth=OWNER,
                json={"type": "c8y_Serial", "externalId": "acme-dev-1"},
            )
        )
        group = await _made(
            await client.post(
                "/inventory/managedObjects",
                auth=OWNER,
                json={"name": "g", "c8y_IsDeviceGroup": {}},
            )
        )
        await _made(
            await client.post(
                f"/inventory/managedObjects/{group['id']}/childAssets",
                auth=OWNER,
                json={"managedObject": {"id": device["id"]}},
            )
        )
        operation = await _made(
            await client.post(
                "/devicecontrol/operations",
                auth=OWNER,
                json={"deviceId": device["id"], "c8y_Restart": {}},
            )
        )
        start = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        bulk = await _made(
            await client.post(
                "/devicecontrol/bulkoperations",
                auth=OWNER,
                json={
                    "groupId": group["id"],
                    "startDate": start,
                    "creationRamp": 1,
                    "operationPrototype": {"c8y_Restart": {}},
                },
            )
        )
        binary = await upload(client, b"acme's firmware", auth=OWNER, name="fw", type="t")
        ca = generate_ca("acme CA")
        await _made(
            await client.post(
                "/tenant/tenants/acme/trusted-certificates",
                auth=OWNER,
                json={
                    "name": "acme CA",
                    "certInPemFormat": pem(ca),
                    "status": "ENABLED",
                    "autoRegistrationEnabled": True,
                },
            )
        )
        await _made(
            await client.post(
                "/devicecontrol/newDeviceRequests", auth=OWNER, json={"id": "acme-req-1"}
            )
        )
        await _made(
            await client.post(
                "/user/acme/users", auth=OWNER, json={"userName": "ops", "password": "ops-pw-123"}
            )
        )
        await _made(
            await client.post(
                "/tenant/options", auth=OWNER, json={"category": "c", "key": "k", "value": "v"}
            )
        )
        # B asks to move its device to the management tenant: a migration A has no part in.
        migration = await _made(
            await client.post(
                "/inventory/migrations",
                auth=OWNER,
                json={"deviceId": device["id"], "targetTenant": "management"},
            )
        )
        yield World(
            api,
            TenantB(
                device=device["id"],
                group=group["id"],
                operation=operation["id"],
                bulk=bulk["id"],
                binary=binary["id"],
                fingerprint=fingerprint(ca),
                migration=migration["id"],
            ),
        )


def requests(b: TenantB) -> dict[str, list[tuple[str, str, Any]]]:
    """Per resource: (method, path, JSON body) reading or writing B's data."""
    other_ca = generate_ca("intruder CA")
    return {
        "inventory": [
            ("GET", f"/inventory/managedObjects/{b.device}", None),
            ("GET", f"/inventory/managedObjects/{b.group}/childAssets", None),
            ("PUT", f"/inventory/managedObjects/{b.device}", {"name": "taken"}),
            ("DELETE", f"/inventory/managedObjects/{b.device}", None),
            (
                "POST",
                f"/inventory/managedObjects/{b.group}/childAssets",
                {"managedObject": {"id": b.device}},
            ),
            ("DELETE", f"/inventory/managedObjects/{b.group}/childAssets/{b.device}", None),
        ],
        "identity": [
            ("GET", f"/identity/externalIds/c8y_Serial/{b.serial}", None),
            ("GET", f"/identity/globalIds/{b.device}/externalIds", None),
            (
                "POST",
                f"/identity/globalIds/{b.device}/externalIds",
                {"type": "c8y_Serial", "externalId": "stolen"},
            ),
            ("DELETE", f"/identity/externalIds/c8y_Serial/{b.serial}", None),
        ],
        "operations": [
            ("GET", f"/devicecontrol/operations/{b.operation}", None),
            (
                "PUT",
                f"/devicecontrol/operations/{b.operation}",
                {"status": "FAILED", "failureReason": "x"},
            ),
            ("POST", "/devicecontrol/operations", {"deviceId": b.device, "c8y_Restart": {}}),
        ],
        "bulk operations": [
            ("GET", f"/devicecontrol/bulkoperations/{b.bulk}", None),
            ("GET", f"/devicecontrol/bulkoperations/{b.bulk}/targets", None),
            ("PUT", f"/devicecontrol/bulkoperations/{b.bulk}", {"note": "x"}),
            ("POST", f"/devicecontrol/bulkoperations/{b.bulk}/pause", None),
            ("DELETE", f"/devicecontrol/bulkoperations/{b.bulk}", None),
        ],
        "binaries": [
            ("GET", f"/inventory/binaries/{b.binary}", None),
            ("DELETE", f"/inventory/binaries/{b.binary}", None),
        ],
        "trusted certificates": [
            ("GET", "/tenant/tenants/acme/trusted-certificates", None),
            ("GET", f"/tenant/tenants/acme/trusted-certificates/{b.fingerprint}", None),
            (
                "PUT",
                f"/tenant/tenants/acme/trusted-certificates/{b.fingerprint}",
                {"status": "DISABLED"},
            ),
            ("DELETE", f"/tenant/tenants/acme/trusted-certificates/{b.fingerprint}", None),
            (
                "POST",
                "/tenant/tenants/acme/trusted-certificates",
                {"name": "x", "certInPemFormat": pem(other_ca), "status": "ENABLED"},
            ),
        ],
        "users": [
            ("GET", "/user/acme/users", None),
            ("GET", "/user/acme/users/boss", None),
            ("PUT", "/user/acme/users/boss", {"password": "taken-over-1"}),
            ("POST", "/user/acme/users", {"userName": "mole", "password": "mole-pw-123"}),
            ("DELETE", "/user/acme/users/ops", None),
            ("POST", "/user/acme/users/ops/roles", {"role": {"id": "ROLE_TENANT_ADMIN"}}),
        ],
        "new device requests": [
            ("GET", f"/devicecontrol/newDeviceRequests/{b.request}", None),
            ("PUT", f"/devicecontrol/newDeviceRequests/{b.request}", {"status": "ACCEPTED"}),
            ("DELETE", f"/devicecontrol/newDeviceRequests/{b.request}", None),
            ("POST", "/devicecontrol/deviceCredentials", {"id": b.request}),
        ],
        "tenant options": [
            ("GET", "/tenant/options/c/k", None),
            ("DELETE", "/tenant/options/c/k", None),
        ],
        "migrations": [
            ("GET", f"/inventory/migrations/{b.migration}", None),
            ("POST", f"/inventory/migrations/{b.migration}/code", None),
            ("POST", f"/inventory/migrations/{b.migration}/confirmation", {"code": "12345678"}),
            ("DELETE", f"/inventory/migrations/{b.migration}", None),
            ("POST", "/inventory/migrations", {"deviceId": b.device, "targetTenant": "t1"}),
        ],
        "tenant": [
            ("GET", "/tenant/tenants/acme", None),
            ("PUT", "/tenant/tenants/acme", {"status": "SUSPENDED"}),
            ("DELETE", "/tenant/tenants/acme", None),
        ],
    }


async def snapshot(world: World) -> dict[str, Any]:
    """Everything of B, as its own admin reads it."""
    b, client = world.b, world.api.client
    paths = [
        f"/inventory/managedObjects/{b.device}",
        f"/inventory/managedObjects/{b.group}",
        f"/identity/globalIds/{b.device}/externalIds",
        f"/devicecontrol/operations/{b.operation}",
        f"/devicecontrol/bulkoperations/{b.bulk}",
        f"/inventory/binaries/{b.binary}",
        "/inventory/binaries",
        f"/tenant/tenants/acme/trusted-certificates/{b.fingerprint}",
        "/tenant/tenants/acme/trusted-certificates",
        "/user/acme/users?pageSize=100",
        "/user/acme/users/ops/roles",
        f"/devicecontrol/newDeviceRequests/{b.request}",
        "/tenant/options/c/k",
        f"/inventory/migrations/{b.migration}",
    ]
    seen: dict[str, Any] = {}
    for path in paths:
        response = await client.get(path, auth=OWNER)
        assert response.status_code == 200, (path, response.text)
        seen[path] = response.content
    tenant = await client.get("/tenant/tenants/acme", auth=MANAGER)
    seen["tenant"] = tenant.content
    assert (await client.get("/user/currentUser", auth=OWNER)).status_code == 200
    return seen


RESOURCES = [
    "inventory",
    "identity",
    "operations",
    "bulk operations",
    "binaries",
    "trusted certificates",
    "users",
    "new device requests",
    "tenant options",
    "migrations",
    "tenant",
]


@pytest.mark.parametrize("actor", sorted(ACTORS))
@pytest.mark.parametrize("resource", RESOURCES)
async def test_another_tenant_can_neither_read_nor_change(
    world: World, resource: str, actor: str
) -> None:
    before = await snapshot(world)
    for method, path, body in requests(world.b)[resource]:
        response = await world.api.client.request(method, path, json=body, auth=ACTORS[actor])
        assert response.status_code in (403, 404), (
            method,
            path,
            response.status_code,
            response.text,
        )
        assert response.json()["error"], (method, path)
    assert await snapshot(world) == before


@pytest.mark.parametrize(
    "path",
    [
        "/inventory/managedObjects?pageSize=2000",
        "/inventory/binaries?pageSize=2000",
        "/devicecontrol/operations?pageSize=2000",
        "/devicecontrol/bulkoperations?pageSize=2000",
        "/devicecontrol/newDeviceRequests?pageSize=2000",
        "/tenant/options?pageSize=2000",
        "/user/t1/users?pageSize=2000",
        "/inventory/migrations?pageSize=2000",
    ],
)
async def test_another_tenants_lists_hold_nothing_of_b(world: World, path: str) -> None:
    b = world.b
    for auth in (ADMIN, WATCHER):
        response = await world.api.client.get(path, auth=auth)
        if response.status_code == 403:
            continue  # the watcher may lack the role for this list
        assert response.status_code == 200, response.text
        text = response.text
        for mine in (
            f'"id":"{b.device}"',
            f'"id":"{b.operation}"',
            f'"id":"{b.bulk}"',
            f'"id":"{b.binary}"',
            b.request,
            "acme",
        ):
            assert mine not in text, (path, mine)
