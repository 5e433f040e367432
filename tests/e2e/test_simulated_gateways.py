"""The simulator's gateways end to end: `fleetgate serve` on a real PostgreSQL and a real
mosquitto with the plugin, gateways of the SDK with real certificates speaking for their
children, which carry out operations as simulated devices do."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetgate.device import Connectivity

from serve_support import ADMIN, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def _upload(stack: Stack, name: str, data: bytes) -> str:
    response = await stack.api.post(
        "/inventory/binaries",
        files={
            "object": (None, json.dumps({"name": name, "type": "c8y_Firmware"})),
            "file": (name, data, "application/octet-stream"),
        },
        auth=ADMIN,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["self"])


async def _device(stack: Stack, device_id: str) -> dict[str, Any]:
    response = await stack.api.get(
        f"/inventory/managedObjects/{await stack.object_id(device_id)}", auth=ADMIN
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _firmware(stack: Stack, device_id: str, version: str) -> bool:
    return bool((await _device(stack, device_id))["c8y_Firmware"]["version"] == version)


async def _status(stack: Stack, op_id: str, status: str) -> bool:
    return (await stack.operation(op_id))["status"] == status


async def test_simulated_childrens_operations_succeed_through_their_gateway(stack: Stack) -> None:
    url = await _upload(stack, "child-fw.bin", bytes(range(256)) * 64)
    children = ["sg-gw-0002-c-0001", "sg-gw-0002-c-0003"]
    firmware = {"c8y_Firmware": {"name": "child-fw", "version": "2.0", "url": url}}
    async with running(stack.simulation("sg", 0, gateways=2, children=3, delay=0)):
        await eventually(lambda: stack.declared(["sg-gw-0001", *children]), "the declarations")
        child = await _device(stack, children[0])
        assert child["type"] == "fleetgate-simulator-child"
        assert "c8y_Firmware" in child["c8y_SupportedOperations"]
        ops = [await stack.create(c, firmware) for c in children]
        own = await stack.create("sg-gw-0001", firmware)  # the gateway's own
        for op in (*ops, own):
            await eventually(lambda op=op: _status(stack, op["id"], "SUCCESSFUL"), "SUCCESSFUL")
        assert (await _device(stack, children[0]))["c8y_Firmware"]["version"] == "2.0"
        untouched = await _device(stack, "sg-gw-0002-c-0002")
        assert untouched["c8y_Firmware"] == {"name": "sim-child-fw", "version": "1.0.0"}
    # Created while the gateway is away: its sync after the restart brings it.
    newer = {"c8y_Firmware": {**firmware["c8y_Firmware"], "version": "3.0"}}
    late = await stack.create(children[1], newer)
    assert (await stack.operation(late["id"]))["status"] == "PENDING"
    async with running(stack.simulation("sg", 0, gateways=2, children=3, delay=0)):
        await eventually(lambda: _status(stack, late["id"], "SUCCESSFUL"), "SUCCESSFUL")
        await eventually(
            lambda: _firmware(stack, children[1], "3.0"), "the child's new firmware declared"
        )


async def test_fleetgate_simulate_runs_gateways_with_children(stack: Stack) -> None:
    stack_file = stack.workdir / "stack-cli-gw.json"
    stack_file.write_text(json.dumps(stack.info.model_dump(mode="json")))
    simulate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetgate.cli", "simulate", "--stack", str(stack_file),
        "--gateways", "1", "--children", "2", "--prefix", "sgcli", "--delay", "0",
        "--summary-interval", "1", "--state-dir", str(stack.workdir / "simulator"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        ids = ["sgcli-gw-0001", "sgcli-gw-0001-c-0001", "sgcli-gw-0001-c-0002"]
        await eventually(lambda: stack.declared(ids), "the simulated gateway and children")
        op = await stack.create("sgcli-gw-0001-c-0002", {"c8y_UploadConfigFile": {"type": "ssh"}})
        await eventually(lambda: _status(stack, op["id"], "SUCCESSFUL"), "SUCCESSFUL")
    finally:
        simulate.send_signal(signal.SIGTERM)
        output, _ = await simulate.communicate()
    assert simulate.returncode == 0, output.decode()
    assert "all 1 gateways with 2 children each declared" in output.decode()


async def _connection(stack: Stack, device_id: str) -> dict[str, Any]:
    connection: dict[str, Any] = (await _device(stack, device_id)).get("fleetgate_Connection", {})
    return connection


async def test_a_childs_connectivity_reported_through_the_sdk_is_shown(stack: Stack) -> None:
    child_id = "sgc-gw-0001-c-0002"
    async with running(stack.simulation("sgc", 0, gateways=1, children=2, delay=0)) as simulation:
        await eventually(lambda: stack.declared([child_id]), "the declaration")
        child = simulation.gateways["sgc-gw-0001"].child(child_id)
        await child.report_connectivity(Connectivity.DISCONNECTED, "no Modbus reply")
        lost = {
            "status": "DISCONNECTED",
            "gateway": "sgc-gw-0001",
            "reason": "reported by gateway sgc-gw-0001: no Modbus reply",
        }

        async def shown(expected: dict[str, Any]) -> bool:
            return await _connection(stack, child_id) == expected

        await eventually(lambda: shown(lost), "the child reported lost")
        assert (await _connection(stack, "sgc-gw-0001-c-0001"))["status"] == "CONNECTED"
        await child.report_connectivity(Connectivity.CONNECTED)
        back = {"status": "CONNECTED", "gateway": "sgc-gw-0001"}
        await eventually(lambda: shown(back), "the child back")
