"""Disabling and enabling a device end to end (issue 13, decision 0012): `fleetgate serve` on
a real PostgreSQL and a real mosquitto with the plugin, simulated devices and gateways of
the SDK with real certificates that keep reconnecting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetgate.device import Connectivity
from fleetgate.device.connection import ReconnectPolicy

from serve_support import ADMIN, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

#: The issue's bound on the kick, from the moment the REST call has answered (it answers
#: once the plugin has applied the push), checked by polling the broker's log.
KICK_BOUND = 1.0
#: Simulated devices try again soon after a refusal (the default cap is 120 s).
QUICK = ReconnectPolicy(initial=0.2, maximum=1.0)
#: An operation simulated devices carry out.
UPLOAD = {"c8y_UploadConfigFile": {"type": "ssh"}}


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def _device(stack: Stack, device_id: str) -> dict[str, Any]:
    response = await stack.api.get(
        f"/inventory/managedObjects/{await stack.object_id(device_id)}", auth=ADMIN
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _lifecycle(stack: Stack, device_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = (await _device(stack, device_id))["fleetgate_Lifecycle"]
    return shown


async def _lifecycle_is(stack: Stack, device_id: str, expected: dict[str, Any]) -> bool:
    return await _lifecycle(stack, device_id) == expected


async def _switch(stack: Stack, device_id: str, action: str) -> dict[str, Any]:
    object_id = await stack.object_id(device_id)
    answer = await stack.api.post(f"/inventory/managedObjects/{object_id}/{action}", auth=ADMIN)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def _status(stack: Stack, op_id: str, status: str) -> bool:
    return (await stack.operation(op_id))["status"] == status


def _logged(stack: Stack, *parts: str) -> int:
    """How many lines of the broker's recent log hold every one of ``parts``."""
    return sum(all(p in line for p in parts) for line in stack.broker.process.log_tail())


async def test_a_disabled_device_is_kicked_refused_and_gets_its_operation_once_enabled(
    stack: Stack,
) -> None:
    device = "dis-0001"
    async with running(stack.simulation("dis", 1, delay=0, reconnect=QUICK)):
        await eventually(lambda: stack.declared([device]), "the declaration")

        async def online() -> bool:
            return await _lifecycle(stack, device) == {"status": "ONLINE"}

        await eventually(online, "the device online")
        shown = await _switch(stack, device, "disable")
        assert shown["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
        await eventually(
            lambda: _logged(stack, f"kicking client '{device}'", "device is disabled") > 0,
            "the live session kicked",
            timeout=KICK_BOUND,
        )
        # It keeps trying; the plugin refuses it, saying why.
        await eventually(
            lambda: _logged(stack, f"refused client '{device}'", "device is disabled") > 0,
            "its reconnect refused",
        )
        op = await stack.create(device, UPLOAD)
        refusals = _logged(stack, f"refused client '{device}'")
        await eventually(
            lambda: _logged(stack, f"refused client '{device}'") > refusals,
            "another reconnect refused",
        )
        assert (await stack.operation(op["id"]))["status"] == "PENDING"
        mo = await _device(stack, device)
        assert mo["c8y_Connection"] == {"status": "DISCONNECTED"}
        assert mo["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
        listed = await stack.api.get(
            "/inventory/managedObjects?lifecycleStatus=DISABLED", auth=ADMIN
        )
        assert mo["id"] in [o["id"] for o in listed.json()["managedObjects"]]
        counts = (await stack.api.get("/inventory/lifecycle", auth=ADMIN)).json()
        assert counts["statuses"]["DISABLED"] >= 1

        await _switch(stack, device, "enable")
        await eventually(lambda: _status(stack, op["id"], "SUCCESSFUL"), "SUCCESSFUL")
        await eventually(online, "the device online again")


async def test_a_disabled_child_and_a_disabled_gateway(stack: Stack) -> None:
    gateway, child, sibling = "dg-gw-0001", "dg-gw-0001-c-0001", "dg-gw-0001-c-0002"
    simulation = stack.simulation("dg", 0, gateways=1, children=2, delay=0, reconnect=QUICK)
    async with running(simulation):
        await eventually(lambda: stack.declared([gateway, child, sibling]), "the declarations")

        # A disabled child: its operation waits, what its gateway sends for it is refused.
        # The gateway's "unplugged" stands in the SDK (sent again at every reconnect): it
        # is applied at the gateway's first reconnect after the child is enabled, below.
        await _switch(stack, child, "disable")
        op = await stack.create(child, UPLOAD)
        await (
            simulation.gateways[gateway]
            .child(child)
            .report_connectivity(Connectivity.DISCONNECTED, "unplugged")
        )

        async def refused() -> bool:
            letters = await stack.api.get("/devicecontrol/deadLetters?pageSize=100", auth=ADMIN)
            return any(
                d["externalId"] == child and d["error"] == "devices/childDisabled"
                for d in letters.json()["deadLetters"]
            )

        await eventually(refused, "the gateway's report for its disabled child refused")
        assert (await _device(stack, child))["fleetgate_Connection"]["status"] == "CONNECTED"
        assert (await stack.operation(op["id"]))["status"] == "PENDING"
        await _switch(stack, child, "enable")
        await eventually(lambda: _status(stack, op["id"], "SUCCESSFUL"), "the child's SUCCESSFUL")

        # A disabled gateway: kicked; its children DISABLED by their parent.
        await _switch(stack, gateway, "disable")
        by_parent = {"status": "DISABLED", "reason": f"gateway {gateway} disabled"}

        async def children_show(expected: dict[str, Any]) -> bool:
            return all([await _lifecycle(stack, c) == expected for c in (child, sibling)])

        await eventually(lambda: children_show(by_parent), "the children disabled by the gateway")
        await eventually(
            lambda: _logged(stack, f"refused client '{gateway}'", "device is disabled") > 0,
            "the gateway's reconnect refused",
        )

        async def sibling_left_with_its_gateway() -> bool:
            # The kick's disconnect event is applied after the disable has answered (and
            # by any instance): polled, not read once.
            shown = (await _device(stack, sibling))["fleetgate_Connection"]
            return bool(shown.get("reason") == f"gateway {gateway} disconnected")

        await eventually(sibling_left_with_its_gateway, "the sibling offline with its gateway")
        late = await stack.create(sibling, UPLOAD)
        await _switch(stack, gateway, "enable")
        # Back online, the gateway re-sends every child's last connectivity: the sibling
        # is ONLINE, and the report for the child refused while it was disabled (the
        # gateway still says "unplugged") is applied now — it was not lost.
        await eventually(
            lambda: _lifecycle_is(stack, sibling, {"status": "ONLINE"}), "the sibling online"
        )
        unplugged = {"status": "OFFLINE", "reason": f"reported by gateway {gateway}: unplugged"}
        await eventually(
            lambda: _lifecycle_is(stack, child, unplugged), "the refused report applied at last"
        )
        await eventually(lambda: _status(stack, late["id"], "SUCCESSFUL"), "SUCCESSFUL")
        # The gateway reaches the child again: both children online.
        await (
            simulation.gateways[gateway]
            .child(child)
            .report_connectivity(Connectivity.CONNECTED, "plugged in")
        )
        await eventually(lambda: children_show({"status": "ONLINE"}), "the children online")
