"""Gateways speaking for their children, against the real PostgreSQL: registration through
the gateway's declaration and what refuses it, operations that reach a child through its
gateway only, and the gateway's sync that restores its whole tree. The device link is a
recording fake; the end-to-end tests run the same paths through mosquitto."""

from __future__ import annotations

from typing import Any

import pytest

from operations_world import ADMIN, ALL_OPS, OTHER, World, world

__all__ = ["world"]  # the fixture

pytestmark = pytest.mark.integration

CHILD = {"type": "plc", "name": "line 1 PLC", "c8y_SupportedOperations": ALL_OPS}


async def declare(world: World, gateway: str, child: str, body: Any = None) -> None:
    await world.send(f"{gateway}/c/{child}", "inventory", CHILD if body is None else body)


async def children_of(world: World, gateway_id: str) -> list[str]:
    mo = await world.mo(gateway_id)
    return sorted(
        r["managedObject"]["id"] for r in mo.get("childDevices", {}).get("references", [])
    )


async def test_a_gateways_first_declaration_registers_the_child_below_it(world: World) -> None:
    gateway = await world.device("gw-1")
    await declare(world, "gw-1", "ch-1")
    assert world.link.take("fg/d/gw-1/c/ch-1/error") == []

    child = await world.object_id("ch-1")
    mo = await world.mo(child)
    assert mo["name"] == "line 1 PLC"
    assert mo["type"] == "plc"
    assert mo["owner"] == "device_gw-1"
    assert "c8y_IsDevice" in mo
    assert mo["c8y_SupportedOperations"] == ALL_OPS
    assert mo["c8y_Connection"]["status"] == "CONNECTED"
    assert [r["managedObject"]["id"] for r in mo["deviceParents"]["references"]] == [gateway]
    assert await children_of(world, gateway) == [child]

    # Declared again (after a reconnect): the same child, each named fragment replaced.
    await declare(world, "gw-1", "ch-1", {"c8y_SupportedOperations": ["c8y_Restart"]})
    assert await world.object_id("ch-1") == child
    assert (await world.mo(child))["c8y_SupportedOperations"] == ["c8y_Restart"]
    # No device user: a child does not log in.
    users = await world.api.get("/user/t1/users/device_ch-1", auth=ADMIN)
    assert users.status_code == 404


async def test_an_unnamed_child_gets_its_id_as_name_and_the_child_type(world: World) -> None:
    await world.device("gw-1")
    await declare(world, "gw-1", "ch-2", {"c8y_Hardware": {"model": "x"}})
    mo = await world.mo(await world.object_id("ch-2"))
    assert (mo["name"], mo["type"]) == ("ch-2", "c8y_MQTTChildDevice")


async def refusal(world: World, gateway: str, child: str) -> str:
    [error] = world.link.take(f"fg/d/{gateway}/c/{child}/error")
    assert error["error"] == "devices/childRefused"
    assert error["topic"] == f"fg/d/{gateway}/c/{child}/inventory"
    message = error["message"]
    assert isinstance(message, str)
    return message


async def test_nobody_takes_a_device_by_naming_it_as_a_child(world: World) -> None:
    await world.device("gw-1")
    await world.device("gw-2")
    await world.device("plain-1")
    await world.device("foreign-1", tenant="t2")
    await declare(world, "gw-1", "ch-1")

    await declare(world, "gw-2", "ch-1")
    assert "child of gateway gw-1" in await refusal(world, "gw-2", "ch-1")
    await declare(world, "gw-2", "plain-1")
    assert "not a child of gateway gw-2" in await refusal(world, "gw-2", "plain-1")
    await declare(world, "gw-2", "foreign-1")
    assert "another tenant" in await refusal(world, "gw-2", "foreign-1")
    await declare(world, "gw-2", "gw-1")
    assert "not a child of gateway gw-2" in await refusal(world, "gw-2", "gw-1")
    await declare(world, "gw-1", "gw-1")
    assert "its own child" in await refusal(world, "gw-1", "gw-1")

    # Nothing moved: ch-1 is still gw-1's, the others nobody's children.
    gw1, gw2 = await world.object_id("gw-1"), await world.object_id("gw-2")
    assert await children_of(world, gw1) == [await world.object_id("ch-1")]
    assert await children_of(world, gw2) == []
    foreign = await world.mo(await world.object_id("foreign-1", tenant="t2"))
    assert "deviceParents" not in foreign or foreign["deviceParents"]["references"] == []
    # Every refusal is kept for the gateway's operators, never for another tenant's.
    letters = await world.api.get("/devicecontrol/deadLetters?pageSize=100", auth=ADMIN)
    refused = {d["topic"]: d for d in letters.json()["deadLetters"]}
    assert refused["fg/d/gw-2/c/ch-1/inventory"]["deviceId"] == await world.object_id("ch-1")
    assert "deviceId" not in refused["fg/d/gw-2/c/foreign-1/inventory"]
    other = await world.api.get("/devicecontrol/deadLetters?pageSize=100", auth=OTHER)
    assert other.json()["deadLetters"] == []


async def test_a_child_of_a_child_has_no_topic(world: World) -> None:
    await world.device("gw-1")
    await declare(world, "gw-1", "ch-1")
    await declare(world, "gw-1/c/ch-1", "x")  # fg/d/gw-1/c/ch-1/c/x/…: not a topic at all
    assert world.link.messages == []


async def test_a_malformed_first_message_does_not_poison_the_child(world: World) -> None:
    await world.device("gw-1")
    await world.send("gw-1/c/ch-1", "inventory", b'{"c8y_X": NaN}')
    [error] = world.link.take("fg/d/gw-1/c/ch-1/error")
    assert error["error"] == "inventory/badRequest"
    await world.send("gw-1/c/ch-1", "inventory", {"c8y_IsDevice": {}})
    [error] = world.link.take("fg/d/gw-1/c/ch-1/error")
    assert "c8y_IsDevice" in str(error["message"])
    await declare(world, "gw-1", "ch-1")
    assert world.link.take("fg/d/gw-1/c/ch-1/error") == []
    assert (await world.mo(await world.object_id("ch-1")))["name"] == "line 1 PLC"


async def test_a_child_id_that_is_no_device_id_is_refused_to_the_gateway(world: World) -> None:
    await world.device("gw-1")
    await declare(world, "gw-1", "bad:id")
    [error] = world.link.take("fg/d/gw-1/error")
    assert error["topic"] == "fg/d/gw-1/c/bad:id/inventory"
    assert "cannot be a child's id" in str(error["message"])


async def test_a_removed_child_stays_removed_until_an_operator_attaches_it(world: World) -> None:
    gateway = await world.device("gw-1")
    await world.pool.execute(
        "INSERT INTO removed_child (gateway_id, device_id, how, removed_by)"
        " VALUES ($1, 'ch-9', 'deleted', 'admin')",
        int(gateway),
    )
    await declare(world, "gw-1", "ch-9")
    assert "an operator removed child ch-9 from gateway gw-1 (deleted" in await refusal(
        world, "gw-1", "ch-9"
    )
    missing = await world.api.get("/identity/externalIds/c8y_Serial/ch-9", auth=ADMIN)
    assert missing.status_code == 404
    # Another gateway may still register it: the removal was from gw-1.
    await world.device("gw-2")
    await declare(world, "gw-2", "ch-9")
    assert world.link.take("fg/d/gw-2/c/ch-9/error") == []


async def test_auto_registration_switched_off_per_gateway_or_per_tenant(world: World) -> None:
    gateway = await world.device("gw-1")
    put = await world.api.put(
        f"/inventory/managedObjects/{gateway}",
        json={"fleetgate_Gateway": {"childAutoRegistration": False}},
        auth=ADMIN,
    )
    assert put.status_code == 200, put.text
    await declare(world, "gw-1", "ch-1")
    assert "switched off for gateway gw-1" in await refusal(world, "gw-1", "ch-1")

    await world.device("gw-2")
    await world.pool.execute(
        "INSERT INTO tenant_option (tenant_id, category, key, value)"
        " VALUES ('t1', 'fleetgate.gateways', 'childAutoRegistration', 'false')"
    )
    await declare(world, "gw-2", "ch-2")
    assert "switched off" in await refusal(world, "gw-2", "ch-2")
    await world.pool.execute("UPDATE tenant_option SET value = 'true'")
    await declare(world, "gw-2", "ch-2")
    assert world.link.take("fg/d/gw-2/c/ch-2/error") == []


def firmware(url: str) -> dict[str, str]:
    return {"name": "plc-fw", "version": "2.0", "url": url}


async def test_a_childs_operation_goes_through_its_gateway_and_back(world: World) -> None:
    await world.device("gw-1")
    await world.device("gw-2")
    await declare(world, "gw-1", "ch-1")
    child = await world.object_id("ch-1")
    url = await world.upload("plc.bin", b"plc" * 100)
    created = await world.create({"deviceId": child, "c8y_Firmware": firmware(url)})
    assert created.status_code == 201, created.text
    op = created.json()
    assert op["deviceName"] == "line 1 PLC"
    [command] = world.link.take("fg/d/gw-1/c/ch-1/op/cmd")
    assert command["id"] == op["id"]
    assert world.link.take("fg/d/ch-1/op/cmd") == []

    # Only its gateway moves it: not another gateway, not the child by itself.
    await world.report("gw-2/c/ch-1", op["id"], "EXECUTING")
    [error] = world.link.take("fg/d/gw-2/c/ch-1/error")
    assert error["error"] == "operations/notFound"
    await world.report("ch-1", op["id"], "EXECUTING")
    [error] = world.link.take("fg/d/ch-1/error")
    assert error["error"] == "operations/notFound"
    await world.report("gw-1", op["id"], "EXECUTING")
    [error] = world.link.take("fg/d/gw-1/error")
    assert error["error"] == "operations/notFound"
    assert (await world.op(op["id"]))["status"] == "PENDING"

    await world.report("gw-1/c/ch-1", op["id"], "EXECUTING")
    await world.report("gw-1/c/ch-1", op["id"], "SUCCESSFUL")
    assert world.link.take("fg/d/gw-1/c/ch-1/error") == []
    assert (await world.op(op["id"]))["status"] == "SUCCESSFUL"
    assert (await world.mo(child))["c8y_Firmware"] == firmware(url)
    # An illegal move is answered on the child's error topic.
    await world.report("gw-1/c/ch-1", op["id"], "EXECUTING")
    [error] = world.link.take("fg/d/gw-1/c/ch-1/error")
    assert error["error"] == "operations/illegalTransition"


async def test_the_gateways_sync_restores_its_whole_tree(world: World) -> None:
    gateway = await world.device("gw-1")
    await world.device("gw-2")
    for child in ("ch-1", "ch-2"):
        await declare(world, "gw-1", child)
    await declare(world, "gw-2", "ch-3")
    restart = {"c8y_Restart": {}}
    own = (await world.create({"deviceId": gateway, **restart})).json()["id"]
    first = (await world.create({"deviceId": await world.object_id("ch-1"), **restart})).json()
    second = (await world.create({"deviceId": await world.object_id("ch-2"), **restart})).json()
    await world.create({"deviceId": await world.object_id("ch-3"), **restart})
    world.link.messages.clear()

    await world.send("gw-1", "op/sync", {})
    assert [c["id"] for c in world.link.take("fg/d/gw-1/op/cmd")] == [own]
    assert [c["id"] for c in world.link.take("fg/d/gw-1/c/ch-1/op/cmd")] == [first["id"]]
    assert [c["id"] for c in world.link.take("fg/d/gw-1/c/ch-2/op/cmd")] == [second["id"]]
    assert world.link.messages == []  # nothing of gw-2's child

    await world.send("gw-1/c/ch-2", "op/sync", {})
    assert [c["id"] for c in world.link.take("fg/d/gw-1/c/ch-2/op/cmd")] == [second["id"]]
    assert world.link.messages == []

    # Not its child: refused, nothing sent.
    await world.send("gw-1/c/ch-3", "op/sync", {})
    [error] = world.link.take("fg/d/gw-1/c/ch-3/error")
    assert error["error"] == "devices/notAChild"
    assert world.link.messages == []


async def test_a_gateways_connection_reports_reach_its_children_only(world: World) -> None:
    await world.device("gw-1")
    await world.device("gw-2")
    await declare(world, "gw-1", "ch-1")
    await declare(world, "gw-2", "ch-2")
    child = await world.object_id("ch-1")
    assert (await world.mo(child))["c8y_Connection"]["status"] == "CONNECTED"

    await world.send("gw-1/c/ch-1", "connection", {"status": "DISCONNECTED", "reason": "no bus"})
    mo = await world.mo(child)
    assert mo["c8y_Connection"]["status"] == "DISCONNECTED"
    assert mo["fleetgate_Connection"]["reason"] == "reported by gateway gw-1: no bus"
    await world.send("gw-1/c/ch-1", "connection", {"status": "CONNECTED"})
    assert (await world.mo(child))["c8y_Connection"]["status"] == "CONNECTED"

    # Another gateway's child: refused, nothing changed.
    await world.send("gw-1/c/ch-2", "connection", {"status": "DISCONNECTED"})
    [error] = world.link.take("fg/d/gw-1/c/ch-2/error")
    assert error["error"] == "devices/notAChild"
    other = await world.mo(await world.object_id("ch-2"))
    assert other["c8y_Connection"]["status"] == "CONNECTED"
    # A bad report is refused whole.
    await world.send("gw-1/c/ch-1", "connection", {"status": "ONLINE"})
    [error] = world.link.take("fg/d/gw-1/c/ch-1/error")
    assert error["error"] == "devices/badRequest"
