"""Disabling and enabling a device against the real PostgreSQL (decision 0012, docs/api.md
"Enabling and disabling a device"): the REST shape and its roles, the device user kept
consistent, the broker lines, the lifecycle shown (a gateway's children DISABLED by
their parent), operations held PENDING and dispatched on enable, and a gateway's messages
for a disabled child refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from bulk_world import BulkWorld, bulk_body, bulk_world

import fleetgate.db
from fleetgate.api.services import services_of
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role
from fleetgate.services.operators import Operators

from operations_world import ADMIN, ALL_OPS, OTHER, World, world

__all__ = ["bulk_world", "world"]  # the fixtures

pytestmark = pytest.mark.integration

WATCHER = ("t1/watcher", "watcher-pw-1234")
CHILD = {"type": "plc", "c8y_SupportedOperations": ALL_OPS}


async def switch(world: World, object_id: str, action: str, auth: Any = ADMIN) -> Any:
    answer = await world.api.post(f"/inventory/managedObjects/{object_id}/{action}", auth=auth)
    return answer


async def lifecycle(world: World, object_id: str) -> Any:
    return (await world.mo(object_id))["fleetgate_Lifecycle"]


def broker_lines(world: World) -> list[str]:
    assert world.broker is not None
    lines = list(world.broker.lines)
    world.broker.lines.clear()
    return lines


async def test_disable_and_enable_a_connected_device(world: World) -> None:
    device = await world.device("d-1")
    broker_lines(world)
    disabled = await switch(world, device, "disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.managedObject+json"
    )
    body = disabled.json()
    assert body["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
    # Cumulocity's fragment keeps telling the truth: still connected until the kick.
    assert body["c8y_Connection"] == {"status": "CONNECTED"}
    assert broker_lines(world) == [control.device("d-1", "t1", False)]
    user = (await world.api.get("/user/t1/users/device_d-1", auth=ADMIN)).json()
    assert user["enabled"] is False
    # The broker kicks it: its disconnect keeps it DISABLED.
    await world.devices.connections.on_disconnected(control.Disconnected("d-1", "t1", "c-d-1"))
    mo = await world.mo(device)
    assert mo["c8y_Connection"] == {"status": "DISCONNECTED"}
    assert mo["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
    listed = await world.api.get("/inventory/managedObjects?lifecycleStatus=DISABLED", auth=ADMIN)
    assert [o["id"] for o in listed.json()["managedObjects"]] == [device]
    counts = (await world.api.get("/inventory/lifecycle", auth=ADMIN)).json()
    assert counts["statuses"]["DISABLED"] == 1
    # Idempotent.
    again = await switch(world, device, "disable")
    assert again.json()["fleetgate_Lifecycle"]["status"] == "DISABLED"
    enabled = await switch(world, device, "enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["fleetgate_Lifecycle"] == {
        "status": "OFFLINE",
        "reason": "connection closed",
    }
    assert broker_lines(world)[-1] == control.device("d-1", "t1", True)
    assert (await world.api.get("/user/t1/users/device_d-1", auth=ADMIN)).json()["enabled"]
    await world.devices.connections.on_connected(
        control.Connected("d-1", "t1", "ab" * 20, False, "c-2")
    )
    assert await lifecycle(world, device) == {"status": "ONLINE"}


async def test_a_never_connected_device_is_inactive_again_once_enabled(world: World) -> None:
    made = await world.api.post(
        "/inventory/managedObjects", json={"name": "pre", "c8y_IsDevice": {}}, auth=ADMIN
    )
    device = made.json()["id"]
    assert (await switch(world, device, "disable")).json()["fleetgate_Lifecycle"][
        "status"
    ] == "DISABLED"
    assert (await switch(world, device, "enable")).json()["fleetgate_Lifecycle"] == {
        "status": "INACTIVE"
    }


async def test_only_an_admin_switches_and_only_devices_of_the_tenant(
    world: World, pool: asyncpg.Pool
) -> None:
    device = await world.device("d-2")
    await PgUsers(pool).ensure_user(
        "t1",
        "watcher",
        hash_password(WATCHER[1]),
        frozenset({Role.DEVICE_CONTROL_READ, Role.INVENTORY_READ}),
    )
    refused = await switch(world, device, "disable", WATCHER)
    assert refused.status_code == 403
    assert refused.json()["error"] == "security/Forbidden"
    assert (await lifecycle(world, device))["status"] == "ONLINE"
    assert (await switch(world, device, "disable", OTHER)).status_code == 404
    assert (await switch(world, "999999", "enable")).status_code == 404
    assert (await switch(world, "x1", "enable")).status_code == 422
    thing = await world.api.post("/inventory/managedObjects", json={"name": "t"}, auth=ADMIN)
    not_device = await switch(world, thing.json()["id"], "disable")
    assert not_device.status_code == 422
    assert "not a device" in not_device.json()["message"]
    assert (await world.api.post(f"/inventory/managedObjects/{device}/disable")).status_code == 401


async def test_the_device_user_and_the_device_follow_each_other(
    world: World, pool: asyncpg.Pool
) -> None:
    services_of(world.app).operators = Operators(PgUsers(pool))
    device = await world.device("d-3")
    off = await world.api.put("/user/t1/users/device_d-3", json={"enabled": False}, auth=ADMIN)
    assert off.status_code == 200, off.text
    assert off.json()["enabled"] is False
    assert (await lifecycle(world, device))["status"] == "DISABLED"
    on = await world.api.put("/user/t1/users/device_d-3", json={"enabled": True}, auth=ADMIN)
    assert on.json()["enabled"] is True
    assert await lifecycle(world, device) == {"status": "ONLINE"}


async def test_a_disabled_devices_operations_stay_pending_until_it_is_enabled(
    world: World,
) -> None:
    device = await world.device("d-4")
    before = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    world.link.take("fg/d/d-4/op/cmd")
    await switch(world, device, "disable")
    held = await world.create({"deviceId": device, "c8y_Restart": {}})
    assert held.status_code == 201, held.text
    assert held.json()["status"] == "PENDING"
    assert world.link.take("fg/d/d-4/op/cmd") == []
    # Neither the device's sync, nor the start-up's sweep of undispatched ones, send it.
    await world.send("d-4", "op/sync", {})
    await world.operations.dispatch_undispatched()
    assert world.link.take("fg/d/d-4/op/cmd") == []
    await switch(world, device, "enable")
    sent = world.link.take("fg/d/d-4/op/cmd")
    assert sorted(c["id"] for c in sent) == sorted([before["id"], held.json()["id"]])
    await world.report("d-4", held.json()["id"], "EXECUTING")
    await world.report("d-4", held.json()["id"], "SUCCESSFUL")
    assert (await world.op(held.json()["id"]))["status"] == "SUCCESSFUL"


async def test_a_disabled_gateways_children_are_disabled_by_their_parent(world: World) -> None:
    gateway = await world.device("gw-1")
    await world.send("gw-1/c/ch-1", "inventory", CHILD)
    child = await world.object_id("ch-1")
    assert await lifecycle(world, child) == {"status": "ONLINE"}
    await switch(world, gateway, "disable")
    by_parent = {"status": "DISABLED", "reason": "gateway gw-1 disabled"}
    assert await lifecycle(world, child) == by_parent
    # The kick takes the gateway, and so its child, offline: still disabled by the parent.
    await world.devices.connections.on_disconnected(control.Disconnected("gw-1", "t1", "c-gw-1"))
    mo = await world.mo(child)
    assert mo["c8y_Connection"] == {"status": "DISCONNECTED"}
    assert mo["fleetgate_Connection"]["reason"] == "gateway gw-1 disconnected"
    assert mo["fleetgate_Lifecycle"] == by_parent
    listed = await world.api.get(
        f"/inventory/managedObjects?lifecycleStatus=DISABLED&deviceParentId={gateway}", auth=ADMIN
    )
    assert [o["id"] for o in listed.json()["managedObjects"]] == [child]
    op = (await world.create({"deviceId": child, "c8y_Restart": {}})).json()
    assert world.link.take("fg/d/gw-1/c/ch-1/op/cmd") == []
    await switch(world, gateway, "enable")
    assert await lifecycle(world, child) == {
        "status": "OFFLINE",
        "reason": "gateway gw-1 disconnected",
    }
    assert [c["id"] for c in world.link.take("fg/d/gw-1/c/ch-1/op/cmd")] == [op["id"]]
    await world.devices.connections.on_connected(
        control.Connected("gw-1", "t1", "ab" * 20, False, "c-gw-2")
    )
    assert await lifecycle(world, child) == {"status": "ONLINE"}


async def test_a_gateways_messages_for_a_disabled_child_are_refused(world: World) -> None:
    await world.device("gw-2")
    await world.send("gw-2/c/ch-2", "inventory", CHILD)
    child = await world.object_id("ch-2")
    op = (await world.create({"deviceId": child, "c8y_Restart": {}})).json()
    world.link.take("fg/d/gw-2/c/ch-2/op/cmd")
    disabled = await switch(world, child, "disable")
    assert disabled.json()["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
    await world.send("gw-2/c/ch-2", "inventory", {"c8y_Hardware": {"model": "new"}})
    await world.report("gw-2/c/ch-2", op["id"], "EXECUTING")
    await world.send("gw-2/c/ch-2", "op/sync", {})
    errors = world.link.take("fg/d/gw-2/c/ch-2/error")
    assert [e["error"] for e in errors] == ["devices/childDisabled"] * 3
    assert "device ch-2 is disabled" in str(errors[0]["message"])
    assert world.link.take("fg/d/gw-2/c/ch-2/op/cmd") == []
    assert "c8y_Hardware" not in await world.mo(child)
    assert (await world.op(op["id"]))["status"] == "PENDING"
    letters = (await world.api.get("/devicecontrol/deadLetters", auth=ADMIN)).json()
    assert {d["error"] for d in letters["deadLetters"]} == {"devices/childDisabled"}
    # Enabled: it is dispatched and what the gateway sends applies again.
    await switch(world, child, "enable")
    assert [c["id"] for c in world.link.take("fg/d/gw-2/c/ch-2/op/cmd")] == [op["id"]]
    await world.send("gw-2/c/ch-2", "inventory", {"c8y_Hardware": {"model": "new"}})
    assert (await world.mo(child))["c8y_Hardware"] == {"model": "new"}
    assert world.link.take("fg/d/gw-2/c/ch-2/error") == []


async def test_migration_0018_disables_the_devices_of_disabled_users(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO tenant (id) VALUES ('t9')")
    ids = {}
    for name in ("off", "on", "kid"):
        ids[name] = await pool.fetchval(
            "INSERT INTO managed_object (tenant_id, name, fragments)"
            " VALUES ('t9', $1, $2::jsonb) RETURNING id",
            name,
            json.dumps({"c8y_IsDevice": {}, "fleetgate_Lifecycle": {"status": "INACTIVE"}}),
        )
        await pool.execute(
            "INSERT INTO external_id VALUES ('t9', 'c8y_Serial', $1, $2)", f"m-{name}", ids[name]
        )
    await pool.execute(
        "INSERT INTO managed_object_child (parent_id, kind, child_id)"
        " VALUES ($1, 'childDevices', $2)",
        ids["off"],
        ids["kid"],
    )
    for name, enabled in (("off", False), ("on", True)):
        await pool.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, enabled, roles)"
            " VALUES ('t9', $1, 'x', $2, '{ROLE_DEVICE}')",
            f"device_m-{name}",
            enabled,
        )
    sql = (
        Path(fleetgate.db.__file__).parent / "migrations" / "0018_device_disabled.sql"
    ).read_text()
    # Its data part again, on rows made as before it (the column exists already).
    await pool.execute(sql.split("DEFAULT false;", 1)[1])
    rows = {
        r["name"]: (r["disabled"], json.loads(r["lifecycle"]))
        for r in await pool.fetch(
            "SELECT name, disabled, fragments -> 'fleetgate_Lifecycle' AS lifecycle"
            " FROM managed_object WHERE tenant_id = 't9'"
        )
    }
    assert rows == {
        "off": (True, {"status": "DISABLED", "reason": "disabled"}),
        "on": (False, {"status": "INACTIVE"}),
        "kid": (False, {"status": "DISABLED", "reason": "gateway m-off disabled"}),
    }


async def test_a_bulk_operation_holds_back_a_disabled_devices_command(
    bulk_world: BulkWorld,
) -> None:
    bw = bulk_world
    ids = [await bw.w.device(f"b-{i}") for i in range(3)]
    group = await bw.group("fleet", ids)
    await switch(bw.w, ids[1], "disable")
    created = await bw.post(bulk_body(group))
    assert created.status_code == 201, created.text
    await bw.run()
    ops = await bw.operations(created.json()["id"])
    assert sorted(o["deviceId"] for o in ops) == sorted(ids)  # every device gets one
    assert {o["status"] for o in ops} == {"PENDING"}
    assert len(bw.w.link.take("fg/d/b-0/op/cmd")) == 1
    assert len(bw.w.link.take("fg/d/b-2/op/cmd")) == 1
    assert bw.w.link.take("fg/d/b-1/op/cmd") == []
    await bw.w.operations.dispatch_undispatched()
    assert bw.w.link.take("fg/d/b-1/op/cmd") == []
    await switch(bw.w, ids[1], "enable")
    [held] = [o for o in ops if o["deviceId"] == ids[1]]
    assert [c["id"] for c in bw.w.link.take("fg/d/b-1/op/cmd")] == [held["id"]]
