"""Moving devices between tenants over REST on a real PostgreSQL (docs/api.md "Device
migrations", decision 0014): the trust check before any code, the code only for the
target's administrators, wrong, expired and exhausted codes (an injected clock), the move
of a gateway with or without its children in one transaction, concurrent confirmations,
and what each tenant sees afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.device_migrations import PgDeviceMigrations
from fleetgate.db.devices import set_device_password
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.users import Role
from fleetgate.pki import Issued, generate_ca
from fleetgate.services.device_migrations import DeviceMigrations

from conftest import seed_tenants
from whole_api import ADMIN, WholeApi, fast_hash, whole_api

pytestmark = pytest.mark.integration

B_ADMIN = ("t2/admin", "admin-pw")
C_ADMIN = ("t3/admin", "admin-pw")
B_WATCHER = ("t2/watcher", "watch-pw")
MIGRATIONS = "/inventory/migrations"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def world(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[tuple[WholeApi, Clock]]:
    """Tenants t1 (source), t2 (target, with a watcher) and t3 (a third party)."""
    async with whole_api(pool, tmp_path) as api:
        await seed_tenants(pool, "t2", "t3")
        await PgUsers(pool).ensure_user(
            "t2", "watcher", fast_hash("watch-pw"), [Role.DEVICE_CONTROL_READ, Role.INVENTORY_READ]
        )
        clock = Clock()
        services = services_of(api.app)
        assert services.devices is not None
        services.device_migrations = DeviceMigrations(
            PgDeviceMigrations(pool),
            api.fakes.broker,
            services.devices.connections.children_changed,
            clock=clock,
        )
        yield api, clock


async def trust(api: httpx.AsyncClient, tenant: str, ca: Issued, auth: Any) -> str:
    made = await api.post(
        f"/tenant/tenants/{tenant}/trusted-certificates",
        json={
            "name": "fleet CA",
            "certInPemFormat": ca.cert_pem().decode(),
            "status": "ENABLED",
            "autoRegistrationEnabled": True,
        },
        auth=auth,
    )
    assert made.status_code == 201, made.text
    fingerprint: str = made.json()["fingerprint"]
    return fingerprint


async def device(api: httpx.AsyncClient, serial: str) -> str:
    made = await api.post(
        "/inventory/managedObjects", json={"name": serial, "c8y_IsDevice": {}}, auth=ADMIN
    )
    object_id: str = made.json()["id"]
    added = await api.post(
        f"/identity/globalIds/{object_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": serial},
        auth=ADMIN,
    )
    assert added.status_code == 201, added.text
    return object_id


async def certificate_gateway(world: WholeApi, ca: Issued, kids: int) -> tuple[str, list[str]]:
    """A gateway that logged in with a certificate of ``ca`` (trusted by t1), with
    ``kids`` children attached over REST: (its id, its children's ids)."""
    fingerprint = await trust(world.client, "t1", ca, ADMIN)
    devices = services_of(world.app).devices
    assert devices is not None
    await devices.connections.on_connected(control.Connected("gw", "t1", fingerprint, True, "c1"))
    ext = await world.client.get("/identity/externalIds/c8y_Serial/gw", auth=ADMIN)
    gateway = str(ext.json()["managedObject"]["id"])
    children = [await device(world.client, f"kid-{i}") for i in range(1, kids + 1)]
    for child in children:
        attached = await world.client.post(
            f"/inventory/managedObjects/{gateway}/childDevices",
            json={"managedObject": {"id": child}},
            auth=ADMIN,
        )
        assert attached.status_code == 201, attached.text
    return gateway, children


async def hand_over_ca(world: WholeApi, ca: Issued) -> None:
    """t1 gives the CA up and t2 trusts it (a CA belongs to one tenant)."""
    listed = await world.client.get("/tenant/tenants/t1/trusted-certificates", auth=ADMIN)
    for cert in listed.json()["certificates"]:
        gone = await world.client.delete(
            f"/tenant/tenants/t1/trusted-certificates/{cert['fingerprint']}", auth=ADMIN
        )
        assert gone.status_code == 204, gone.text
    await trust(world.client, "t2", ca, B_ADMIN)


async def request(api: httpx.AsyncClient, object_id: str, **body: Any) -> httpx.Response:
    return await api.post(
        MIGRATIONS, json={"deviceId": object_id, "targetTenant": "t2", **body}, auth=ADMIN
    )


async def code_of(api: httpx.AsyncClient, migration: str, auth: Any = B_ADMIN) -> str:
    issued = await api.post(f"{MIGRATIONS}/{migration}/code", auth=auth)
    assert issued.status_code == 201, issued.text
    code: str = issued.json()["code"]
    return code


async def enter(api: httpx.AsyncClient, migration: str, code: str, auth: Any = B_ADMIN) -> Any:
    return await api.post(f"{MIGRATIONS}/{migration}/confirmation", json={"code": code}, auth=auth)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


async def test_a_certificate_gateway_moves_with_its_children_only_with_the_targets_code(
    world: tuple[WholeApi, Clock], pool: asyncpg.Pool
) -> None:
    w, _ = world
    api = w.client
    ca = generate_ca("Migrating Fleet CA")
    gateway, (kid1, kid2) = await certificate_gateway(w, ca, 2)
    group = await api.post(
        "/inventory/managedObjects",
        json={"name": "site", "c8y_IsDeviceGroup": {}, "type": "c8y_DeviceGroup"},
        auth=ADMIN,
    )
    await api.post(
        f"/inventory/managedObjects/{group.json()['id']}/childAssets",
        json={"managedObject": {"id": gateway}},
        auth=ADMIN,
    )
    op_ids = [
        await pool.fetchval(
            "INSERT INTO operation (tenant_id, device_id, serial, fragment_type, fragments)"
            " VALUES ('t1', $1, $2, 'c8y_Restart', '{\"c8y_Restart\": {}}') RETURNING id",
            int(object_id),
            serial,
        )
        for object_id, serial in ((gateway, "gw"), (kid1, "kid-1"))
    ]

    # t2 does not trust the gateway's CA: refused before any code, saying what to trust.
    refused = await request(api, gateway)
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert "Tenant t2 does not trust" in message
    assert "CN=Migrating Fleet CA" in message
    assert (await api.get(MIGRATIONS, auth=ADMIN)).json()["migrations"] == []

    await hand_over_ca(w, ca)
    made = await request(api, gateway)
    assert made.status_code == 201, made.text
    migration = made.json()
    assert (migration["status"], migration["externalId"], migration["attemptsLeft"]) == (
        "REQUESTED",
        "gw",
        5,
    )
    mid = migration["id"]
    assert (await request(api, gateway)).status_code == 409  # one open request per device

    # Nobody but t2's administrators gets a code.
    assert (await api.post(f"{MIGRATIONS}/{mid}/code", auth=ADMIN)).status_code == 403
    assert (await api.post(f"{MIGRATIONS}/{mid}/code", auth=B_WATCHER)).status_code == 403
    assert (await api.post(f"{MIGRATIONS}/{mid}/code", auth=C_ADMIN)).status_code == 404
    assert (await api.get(f"{MIGRATIONS}/{mid}", auth=C_ADMIN)).status_code == 404
    assert (await api.get(MIGRATIONS, auth=C_ADMIN)).json()["migrations"] == []
    code = await code_of(api, mid)
    stored = await pool.fetchval("SELECT code_hash FROM device_migration WHERE id = $1", int(mid))
    assert code not in stored  # only its hash is kept
    # Nor does anyone else enter it.
    assert (await enter(api, mid, code, auth=ADMIN)).status_code == 403
    assert (await enter(api, mid, code, auth=C_ADMIN)).status_code == 404
    bad = await enter(api, mid, wrong(code))
    assert bad.status_code == 422
    assert "4 attempts left" in bad.json()["message"]
    assert (await api.get(f"{MIGRATIONS}/{mid}", auth=B_ADMIN)).json()["attemptsLeft"] == 4

    done = await enter(api, mid, code)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "CONFIRMED"
    assert done.json()["movedDevices"] == ["gw", "kid-1", "kid-2"]
    assert (await enter(api, mid, code)).status_code == 409  # once

    # Gone from t1, in t2: inventory, external ids, tree, users.
    for object_id in (gateway, kid1, kid2):
        assert (
            await api.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)
        ).status_code == 404
        assert (
            await api.get(f"/inventory/managedObjects/{object_id}", auth=B_ADMIN)
        ).status_code == 200
    assert (await api.get("/identity/externalIds/c8y_Serial/gw", auth=ADMIN)).status_code == 404
    found = await api.get("/identity/externalIds/c8y_Serial/kid-2", auth=B_ADMIN)
    assert found.json()["managedObject"]["id"] == kid2
    children = await api.get(f"/inventory/managedObjects/{gateway}/childDevices", auth=B_ADMIN)
    assert {r["managedObject"]["id"] for r in children.json()["references"]} == {kid1, kid2}
    site = await api.get(f"/inventory/managedObjects/{group.json()['id']}", auth=ADMIN)
    assert site.json()["childAssets"]["references"] == []
    assert (await api.get("/user/t2/users/device_gw", auth=B_ADMIN)).status_code == 200
    assert (await api.get("/user/t1/users/device_gw", auth=ADMIN)).status_code == 404
    moved = (await api.get(f"/inventory/managedObjects/{gateway}", auth=B_ADMIN)).json()
    assert moved["fleetgate_Lifecycle"] == {"status": "OFFLINE", "reason": "moved to tenant t2"}
    listed = await api.get(
        "/inventory/managedObjects", params={"fragmentType": "c8y_IsDevice"}, auth=ADMIN
    )
    assert {m["id"] for m in listed.json()["managedObjects"]} & {gateway, kid1, kid2} == set()
    listed = await api.get(
        "/inventory/managedObjects", params={"fragmentType": "c8y_IsDevice"}, auth=B_ADMIN
    )
    assert {m["id"] for m in listed.json()["managedObjects"]} == {gateway, kid1, kid2}

    # The open operations ended in t1 with the reason; their history stays t1's only.
    for op_id in op_ids:
        op = (await api.get(f"/devicecontrol/operations/{op_id}", auth=ADMIN)).json()
        assert op["status"] == "FAILED"
        assert op["failureReason"] == f"The device moved to tenant t2 (migration {mid})"
        assert "deviceName" not in op or op["deviceName"] is None
        assert (
            await api.get(f"/devicecontrol/operations/{op_id}", auth=B_ADMIN)
        ).status_code == 404

    # The live stream's change log (every instance's feed) has them end, in t1.
    logged = await pool.fetch(
        "SELECT object_id, tenant_id FROM operation_change WHERE kind = 'operation'"
        " AND state ->> 'status' = 'FAILED'"
    )
    assert sorted((r["object_id"], r["tenant_id"]) for r in logged) == sorted(
        (i, "t1") for i in op_ids
    )

    # The broker learns the devices' new tenant (which closes a session in t1).
    assert control.device("gw", "t2", True) in w.fakes.broker.lines
    assert control.child("kid-1", "gw") in w.fakes.broker.lines

    # The id is t2's now: t1 cannot take it back by any path but a confirmed move.
    other = await api.post(
        "/inventory/managedObjects", json={"name": "x", "c8y_IsDevice": {}}, auth=ADMIN
    )
    taken = await api.post(
        f"/identity/globalIds/{other.json()['id']}/externalIds",
        json={"type": "c8y_Serial", "externalId": "gw"},
        auth=ADMIN,
    )
    assert taken.status_code == 409


async def test_a_gateway_alone_leaves_its_children_in_the_source_detached(
    world: tuple[WholeApi, Clock],
) -> None:
    w, _ = world
    api = w.client
    gateway = await device(api, "gw-alone")
    kid = await device(api, "kid-alone")
    await api.post(
        f"/inventory/managedObjects/{gateway}/childDevices",
        json={"managedObject": {"id": kid}},
        auth=ADMIN,
    )
    mid = (await request(api, gateway, withChildren=False)).json()["id"]
    done = await enter(api, mid, await code_of(api, mid))
    assert done.json()["movedDevices"] == ["gw-alone"]
    kid_mo = await api.get(f"/inventory/managedObjects/{kid}", auth=ADMIN)
    assert kid_mo.status_code == 200
    assert kid_mo.json().get("deviceParents", {}).get("references", []) == []
    assert control.child_remove("kid-alone") in w.fakes.broker.lines
    children = await api.get(f"/inventory/managedObjects/{gateway}/childDevices", auth=B_ADMIN)
    assert children.json()["references"] == []


async def test_an_expired_code_is_refused_and_a_new_request_may_follow(
    world: tuple[WholeApi, Clock],
) -> None:
    w, clock = world
    api = w.client
    gateway = await device(api, "gw-late")
    mid = (await request(api, gateway)).json()["id"]
    code = await code_of(api, mid)
    clock.now += timedelta(minutes=10)
    late = await enter(api, mid, code)
    assert late.status_code == 409
    assert "expired" in late.json()["message"]
    assert (await api.get(f"{MIGRATIONS}/{mid}", auth=ADMIN)).json()["status"] == "EXPIRED"
    assert (await api.post(f"{MIGRATIONS}/{mid}/code", auth=B_ADMIN)).status_code == 409
    assert (await api.get(f"/inventory/managedObjects/{gateway}", auth=ADMIN)).status_code == 200
    again = await request(api, gateway)
    assert again.status_code == 201, again.text


async def test_concurrent_wrong_codes_are_counted_exactly_and_end_the_request(
    world: tuple[WholeApi, Clock],
) -> None:
    w, _ = world
    api = w.client
    gateway = await device(api, "gw-guess")
    mid = (await request(api, gateway)).json()["id"]
    code = await code_of(api, mid)
    answers = await asyncio.gather(*(enter(api, mid, wrong(code)) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [409] * 3 + [422] * 5
    shown = (await api.get(f"{MIGRATIONS}/{mid}", auth=B_ADMIN)).json()
    assert (shown["status"], shown["attempts"]) == ("EXHAUSTED", 5)
    assert (await enter(api, mid, code)).status_code == 409
    assert (await api.get(f"/inventory/managedObjects/{gateway}", auth=ADMIN)).status_code == 200


async def test_two_right_codes_at_once_move_the_device_once(
    world: tuple[WholeApi, Clock], pool: asyncpg.Pool
) -> None:
    w, _ = world
    api = w.client
    gateway = await device(api, "gw-twice")
    mid = (await request(api, gateway)).json()["id"]
    code = await code_of(api, mid)
    answers = await asyncio.gather(*(enter(api, mid, code) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    assert (
        await pool.fetchval("SELECT tenant_id FROM managed_object WHERE id = $1", int(gateway))
        == "t2"
    )


async def test_what_cannot_move_is_refused_with_the_reason(
    world: tuple[WholeApi, Clock],
) -> None:
    w, _ = world
    api = w.client
    gateway, kid = await device(api, "gw-r"), await device(api, "kid-r")
    await api.post(
        f"/inventory/managedObjects/{gateway}/childDevices",
        json={"managedObject": {"id": kid}},
        auth=ADMIN,
    )
    child_alone = await request(api, kid)
    assert child_alone.status_code == 422
    assert "child of gateway gw-r" in child_alone.json()["message"]
    group = await api.post("/inventory/managedObjects", json={"name": "g"}, auth=ADMIN)
    assert (await request(api, group.json()["id"])).status_code == 422
    nowhere = await api.post(
        MIGRATIONS, json={"deviceId": gateway, "targetTenant": "t9"}, auth=ADMIN
    )
    assert nowhere.status_code == 422
    home = await api.post(MIGRATIONS, json={"deviceId": gateway, "targetTenant": "t1"}, auth=ADMIN)
    assert home.status_code == 422
    foreign = await api.post(
        MIGRATIONS, json={"deviceId": gateway, "targetTenant": "t1"}, auth=B_ADMIN
    )
    assert foreign.status_code == 404  # t2 cannot move t1's device
    assert (await api.post(MIGRATIONS, json={"targetTenant": "t2"}, auth=ADMIN)).status_code == 422
    watcher = await api.post(
        MIGRATIONS, json={"deviceId": gateway, "targetTenant": "t1"}, auth=B_WATCHER
    )
    assert watcher.status_code == 403
    mid = (await request(api, gateway)).json()["id"]
    assert (await api.delete(f"{MIGRATIONS}/{mid}", auth=C_ADMIN)).status_code == 404
    cancelled = await api.delete(f"{MIGRATIONS}/{mid}", auth=ADMIN)
    assert cancelled.json()["status"] == "CANCELLED"
    assert (await api.post(f"{MIGRATIONS}/{mid}/code", auth=B_ADMIN)).status_code == 409
    await w.pool.execute("UPDATE tenant SET status = 'SUSPENDED' WHERE id = 't3'")
    suspended = await api.post(
        MIGRATIONS, json={"deviceId": gateway, "targetTenant": "t3"}, auth=ADMIN
    )
    assert suspended.status_code == 422
    assert "t3 is suspended" in suspended.json()["message"]


async def test_a_password_device_keeps_its_password_and_logs_in_to_the_target_from_now_on(
    world: tuple[WholeApi, Clock], pool: asyncpg.Pool
) -> None:
    w, _ = world
    api = w.client
    object_id = await device(api, "pw-dev")
    hashed = fast_hash("device-secret")
    async with pool.acquire() as conn:
        await set_device_password(conn, "t1", "pw-dev", hashed)
    mid = (await request(api, object_id)).json()["id"]
    await enter(api, mid, await code_of(api, mid))
    moved = await pool.fetchrow(
        "SELECT tenant_id, password_hash FROM app_user WHERE username = 'device_pw-dev'"
    )
    assert (moved["tenant_id"], moved["password_hash"]) == ("t2", hashed)
    lines = w.fakes.broker.lines
    assert control.account_remove("t1/device_pw-dev") in lines  # its session in t1 ends
    assert control.device_account("t2", "pw-dev", hashed) in lines
    assert control.device("pw-dev", "t2", True) in lines


async def test_the_sources_bulk_operations_make_no_more_operations_for_a_moved_device(
    world: tuple[WholeApi, Clock], pool: asyncpg.Pool
) -> None:
    w, _ = world
    api = w.client
    waiting, failed = await device(api, "bulk-waiting"), await device(api, "bulk-failed")
    bulk = await pool.fetchval(
        "INSERT INTO bulk_operation (tenant_id, group_id, start_date, creation_ramp, prototype,"
        " next_creation_at, next_step_at, targets) VALUES ('t1', 1, now(), 0, '{}', now(),"
        " now(), 2) RETURNING id"
    )
    op = await pool.fetchval(
        "INSERT INTO operation (tenant_id, device_id, serial, fragment_type, status,"
        " failure_reason, bulk_operation_id, bulk_attempt) VALUES ('t1', $1, 'bulk-failed',"
        " 'c8y_Restart', 'FAILED', 'it broke', $2, 1) RETURNING id",
        int(failed),
        bulk,
    )
    await pool.execute(
        "INSERT INTO bulk_operation_target (bulk_operation_id, device_id, position, state,"
        " operation_id, attempts) VALUES ($1, $2, 0, 'WAITING', NULL, 0),"
        " ($1, $3, 1, 'CREATED', $4, 1)",
        bulk,
        int(waiting),
        int(failed),
        op,
    )
    for object_id in (waiting, failed):
        mid = (await request(api, object_id)).json()["id"]
        assert (await enter(api, mid, await code_of(api, mid))).status_code == 200
    targets = await pool.fetch(
        "SELECT state, attempts, reason FROM bulk_operation_target WHERE bulk_operation_id = $1"
        " ORDER BY position",
        bulk,
    )
    assert [(t["state"], t["attempts"] >= 1000) for t in targets] == [
        ("SKIPPED", False),
        ("CREATED", True),
    ]
    assert all("moved to tenant t2" in t["reason"] for t in targets)
    assert await pool.fetchval("SELECT skipped FROM bulk_operation WHERE id = $1", bulk) == 1
    retry = await api.post(
        "/devicecontrol/bulkoperations",
        json={
            "failedParentId": str(bulk),
            "startDate": "2026-12-01T00:00:00Z",
            "creationRamp": 0,
            "operationPrototype": {"c8y_Restart": {}},
        },
        auth=ADMIN,
    )
    # Retrying the failed devices finds none of the source's: the one that failed moved.
    assert retry.status_code == 201, retry.text
    assert retry.json()["fleetgate_RolloutStatus"]["targets"] == 0
