"""A gateway's tree end to end (issue 11): `fleetgate serve` on a real PostgreSQL and a real
mosquitto with the plugin, simulated gateways of the SDK with real certificates.

- nobody takes a child by naming it, operators attach, detach and move children over
  REST, and a child an operator removed is not brought back by its gateway;
- a gateway's disconnect takes its children offline with the reason, and back;
- a SIGKILL of the service while a gateway reports for 500 children loses no
  acknowledged status.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from fleetgate.device import BrokerAddress, GatewayClient, Inventory
from fleetgate.device.enrolment import ensure_device_certificates, ensure_fleet_ca
from fleetgate.device.messages import ErrorReport
from fleetgate.domain.operations import Status

from serve_support import ADMIN, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e


async def _firmware(stack: Stack, version: str) -> dict[str, Any]:
    """A firmware operation's fragment, its file uploaded once per version."""
    name = f"tree-fw-{version}.bin"
    uploaded = await stack.api.post(
        "/inventory/binaries",
        files={
            "object": (None, json.dumps({"name": name, "type": "c8y_Firmware"})),
            "file": (name, version.encode() * 512, "application/octet-stream"),
        },
        auth=ADMIN,
    )
    assert uploaded.status_code == 201, uploaded.text
    url = uploaded.json()["self"]
    return {"c8y_Firmware": {"name": "tree-fw", "version": version, "url": url}}


async def _children(stack: Stack, gateway: str) -> int:
    response = await stack.api.get(
        f"/inventory/managedObjects/{await stack.object_id(gateway)}/childDevices",
        params={"pageSize": 1, "withTotalPages": "true"},
        auth=ADMIN,
    )
    assert response.status_code == 200, response.text
    return int(response.json()["statistics"]["totalPages"])


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def _mo(stack: Stack, device_id: str) -> dict[str, Any]:
    response = await stack.api.get(
        f"/inventory/managedObjects/{await stack.object_id(device_id)}", auth=ADMIN
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _parents(stack: Stack, device_id: str) -> list[str]:
    mo = await _mo(stack, device_id)
    return [r["managedObject"]["id"] for r in mo.get("deviceParents", {}).get("references", [])]


async def _connection(stack: Stack, device_id: str) -> tuple[str, str | None]:
    mo = await _mo(stack, device_id)
    return mo["c8y_Connection"]["status"], mo.get("fleetgate_Connection", {}).get("reason")


async def _exists(stack: Stack, device_id: str) -> bool:
    found = await stack.api.get(f"/identity/externalIds/c8y_Serial/{device_id}", auth=ADMIN)
    return found.status_code == 200


async def test_a_gateways_tree_is_the_operators(stack: Stack) -> None:
    simulation = stack.simulation("tree", 0, gateways=2, children=3, delay=0)
    gw1, gw2 = simulation.config.gateway_ids
    c1, c2, c3 = simulation.config.child_ids(gw1)
    async with running(simulation):
        await eventually(lambda: stack.declared([c1, c2, c3]), "the children")
        assert await _parents(stack, c1) == [await stack.object_id(gw1)]
        assert await _connection(stack, c1) == ("CONNECTED", None)

        # Another gateway names gw1's child: refused with the reason, nothing moves.
        state = stack.workdir / "simulator"
        ca = await asyncio.to_thread(ensure_fleet_ca, state)
        logins = await asyncio.to_thread(ensure_device_certificates, state, ca, ["tree-rogue"])
        errors: asyncio.Queue[ErrorReport] = asyncio.Queue()
        rogue = GatewayClient(
            "tree-rogue",
            BrokerAddress("localhost", stack.broker.config.cert_port, stack.info.ca_file),
            logins["tree-rogue"],
            on_error=errors.put_nowait,
        )
        async with rogue:
            await rogue.child(c1).declare(Inventory(type="stolen"))
            refused = await asyncio.wait_for(errors.get(), timeout=30)
        assert (refused.child, refused.error) == (c1, "devices/childRefused")
        assert f"child of gateway {gw1}" in refused.message
        assert await _parents(stack, c1) == [await stack.object_id(gw1)]
        assert (await _mo(stack, c1))["type"] != "stolen"

    # The gateways went away with the simulation: their children are offline, with why.

    async def offline() -> bool:
        return await _connection(stack, c1) == ("DISCONNECTED", f"gateway {gw1} disconnected")

    await eventually(offline, "gw1's children offline with the reason")

    # Operators: detach c2, move c2 to gw2, delete c3.
    gw1_id, gw2_id = await stack.object_id(gw1), await stack.object_id(gw2)
    c2_id, c3_id = await stack.object_id(c2), await stack.object_id(c3)
    detached = await stack.api.delete(
        f"/inventory/managedObjects/{gw1_id}/childDevices/{c2_id}", auth=ADMIN
    )
    assert detached.status_code == 204, detached.text
    moved = await stack.api.post(
        f"/inventory/managedObjects/{gw2_id}/childDevices",
        json={"managedObject": {"id": c2_id}},
        auth=ADMIN,
    )
    assert moved.status_code == 201, moved.text
    back = await stack.api.post(
        f"/inventory/managedObjects/{gw1_id}/childDevices",
        json={"managedObject": {"id": c2_id}},
        auth=ADMIN,
    )
    assert back.status_code == 409, back.text
    assert gw2 in back.json()["message"]
    deleted = await stack.api.delete(f"/inventory/managedObjects/{c3_id}", auth=ADMIN)
    assert deleted.status_code == 204, deleted.text

    # The gateway comes back and declares its children again, as after any reconnect:
    # c1 is back online, c2 stays gw2's, c3 is not re-created.
    async with running(stack.simulation("tree", 0, gateways=2, children=3, delay=0)):

        async def online() -> bool:
            return await _connection(stack, c1) == ("CONNECTED", None)

        await eventually(online, "gw1's children back online")

        async def refused_again() -> bool:
            """gw1 declared c2 and c3 again: both refused, as the operator removed them."""
            letters = await stack.api.get(
                "/devicecontrol/deadLetters", params={"pageSize": 2000}, auth=ADMIN
            )
            found = {
                (d["topic"], d["error"])
                for d in letters.json()["deadLetters"]
                if "removed child" in d["reason"]
            }
            return {
                (f"fg/d/{gw1}/c/{c}/inventory", "devices/childRefused") for c in (c2, c3)
            } <= found

        await eventually(refused_again, "gw1's declarations of c2 and c3 refused")
        assert await _parents(stack, c2) == [gw2_id]
        assert not await _exists(stack, c3)
        # c2's operation now reaches it through gw2 — whose simulator does not know the
        # child it was given, but the SDK runs a command for any child it is sent.
        op = await stack.create(c2, await _firmware(stack, "2"))

        async def done() -> bool:
            return bool((await stack.operation(op["id"]))["status"] == "SUCCESSFUL")

        await eventually(done, "c2's operation through gw2")


async def test_sigkill_of_the_service_loses_no_acknowledged_status_of_children(
    stack: Stack,
) -> None:
    """A gateway reports for 500 children while the service is SIGKILLed and restarted:
    afterwards every operation has the last status the broker acknowledged."""
    count = 500
    simulation = stack.simulation("gkill", 0, gateways=1, children=count, delay=2.0,
                                  failure_rate=0.2)  # fmt: skip
    [gateway] = simulation.config.gateway_ids
    children = simulation.config.child_ids(gateway)
    firmware = await _firmware(stack, "7")
    async with running(simulation):

        async def all_children() -> bool:
            return await stack.declared([gateway]) and await _children(stack, gateway) == count

        await eventually(all_children, "the children", timeout=240)
        gate = asyncio.Semaphore(16)

        async def create(child: str) -> str:
            async with gate:
                return str((await stack.create(child, firmware))["id"])

        op_ids = await asyncio.gather(*(create(c) for c in children))
        child_of = dict(zip(op_ids, children, strict=True))

        def reported(at_least: int) -> bool:
            return sum(len(v) for v in simulation.acknowledged.values()) >= at_least

        await eventually(lambda: reported(count // 10), "the first reports")
        await stack.serve.kill()
        reported_at_kill = sum(len(v) for v in simulation.acknowledged.values())
        await asyncio.sleep(1.0)  # the gateway goes on reporting to the broker meanwhile
        await stack.serve.start()

        def all_final() -> bool:
            acked = simulation.acknowledged
            return all(
                acked.get(child_of[i], {}).get(i) in (Status.SUCCESSFUL, Status.FAILED)
                for i in op_ids
            )

        await eventually(all_final, "every child to finish", timeout=240)

        async def database_agrees() -> bool:
            statuses = await stack.statuses(op_ids)
            return all(statuses[i] == simulation.acknowledged[child_of[i]][i].value for i in op_ids)

        await eventually(database_agrees, "the database to hold every acknowledged status")
    statuses = await stack.statuses(op_ids)
    assert reported_at_kill < 2 * count  # the kill happened while reports were flowing
    assert set(statuses.values()) <= {"SUCCESSFUL", "FAILED"}
    assert list(statuses.values()).count("FAILED") > 0


async def test_a_malformed_first_declaration_does_not_poison_the_child(stack: Stack) -> None:
    """A gateway's first message about a child is malformed (thin-edge.io #2737): the child
    is not registered, the gateway is told why, and its next valid declaration registers
    it — a raw MQTT client, so that nothing in the SDK mends the message."""
    state = stack.workdir / "simulator"
    ca = await asyncio.to_thread(ensure_fleet_ca, state)
    login = (await asyncio.to_thread(ensure_device_certificates, state, ca, ["mal-gw"]))["mal-gw"]
    # The simulator's CA is trusted with auto-registration once a simulation ran.
    async with running(stack.simulation("mal", 1, delay=0)):
        await eventually(lambda: stack.declared(["mal-0001"]), "the simulator's CA in use")
    context = ssl.create_default_context(cafile=str(stack.info.ca_file))
    context.load_cert_chain(str(login.cert_file), str(login.key_file))
    async with aiomqtt.Client(
        "localhost", stack.broker.config.cert_port, identifier="mal-gw", tls_context=context
    ) as gateway:
        await eventually(lambda: _exists(stack, "mal-gw"), "the gateway registered")
        await gateway.subscribe("fg/d/mal-gw/c/+/error", qos=1)
        topic = "fg/d/mal-gw/c/mal-kid/inventory"
        await gateway.publish(topic, b'{"type": "plc", "c8y_X": NaN}', qos=1)
        message = await asyncio.wait_for(anext(aiter(gateway.messages)), timeout=30)
        assert str(message.topic) == "fg/d/mal-gw/c/mal-kid/error"
        assert isinstance(message.payload, bytes)
        error = json.loads(message.payload)
        assert (error["error"], error["topic"]) == ("inventory/badRequest", topic)
        assert not await _exists(stack, "mal-kid")
        await gateway.publish(topic, b'{"type": "plc"}', qos=1)
        await eventually(lambda: _exists(stack, "mal-kid"), "the child registered")
    assert await _parents(stack, "mal-kid") == [await stack.object_id("mal-gw")]
