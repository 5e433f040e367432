"""Device profiles end to end: `fleetgate serve`, a real broker, simulated devices of the
SDK. A profile with firmware, two software packages and one configuration file, applied
to the devices of a group: the device that runs it ends SUCCESSFUL with c8y_Profile
executed and the filter finds it; a step that fails (a named item, a corrupted download)
ends FAILED with the step and the item named. Then the issue's test: one bulk operation
applies the profile to a group of 20 (made through the REST routes), every device ends
SUCCESSFUL with c8y_Profile executed, and a second one narrowed to the devices that have
not applied it yet (``fleetgate_Targets``) reaches none."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fleetgate.domain.profiles import apply_operation

from serve_support import ADMIN, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

OBJECTS = "/inventory/managedObjects"
TYPE = "fleetgate-simulator"


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def _create(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.api.post(OBJECTS, json=body, auth=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _upload(stack: Stack, name: str) -> str:
    response = await stack.api.post(
        "/inventory/binaries",
        files={
            "object": (None, json.dumps({"name": name, "type": "application/octet-stream"})),
            "file": (name, name.encode() * 500, "application/octet-stream"),
        },
        auth=ADMIN,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["self"])


async def _profile(stack: Stack) -> tuple[str, dict[str, Any]]:
    return await _profile_named(stack, "sim profile")


async def _profile_named(stack: Stack, name: str) -> tuple[str, dict[str, Any]]:
    """A profile named ``name``, its files uploaded and its repository entries made."""
    urls = {n: await _upload(stack, n) for n in ("sim-fw", "agent", "tools", "ssh")}
    await _create(stack, {"name": "sim-fw", "type": "c8y_Firmware", "c8y_Filter": {"type": TYPE}})
    for package in ("agent", "tools"):
        await _create(
            stack, {"name": package, "type": "c8y_Software", "c8y_Filter": {"type": TYPE}}
        )
    dump = {"deviceType": TYPE, "configurationType": "ssh", "url": urls["ssh"]}
    await _create(stack, {"name": "ssh config", "type": "c8y_ConfigurationDump", **dump})
    content = {
        "firmware": {"name": "sim-fw", "version": "2.0", "url": urls["sim-fw"]},
        "software": [
            {"name": "agent", "version": "2.1", "url": urls["agent"], "action": "install"},
            {"name": "tools", "version": "1.0", "url": urls["tools"], "action": "install"},
        ],
        "configuration": [{"name": "ssh config", "type": "ssh", "url": urls["ssh"]}],
    }
    body = {"name": name, "type": "c8y_Profile", "c8y_Filter": {"type": TYPE}}
    profile = await _create(stack, {**body, "c8y_DeviceProfile": content})
    return profile, content


async def _ids(stack: Stack, q: str) -> list[str]:
    found = await stack.api.get(OBJECTS, params={"q": q, "pageSize": 100}, auth=ADMIN)
    assert found.status_code == 200, found.text
    return sorted(o["name"] for o in found.json()["managedObjects"])


async def test_a_profile_applied_to_a_group_of_simulated_devices(stack: Stack) -> None:
    profile, content = await _profile(stack)
    simulation = stack.simulation(
        "prof", 3, delay=0,
        failing_items=frozenset({("prof-0002", "agent")}),
        corrupt_downloads=frozenset({"prof-0003"}),
    )  # fmt: skip
    async with running(simulation):
        names = ["prof-0001", "prof-0002", "prof-0003"]
        await eventually(lambda: stack.declared(names), "the declarations")
        group = await _create(stack, {"name": "prof", "type": "c8y_DeviceGroup",
                                      "c8y_IsDeviceGroup": {}})  # fmt: skip
        ops: dict[str, str] = {}
        for name in names:
            device = await stack.object_id(name)
            response = await stack.api.post(
                f"{OBJECTS}/{group}/childAssets", json={"managedObject": {"id": device}},
                auth=ADMIN,
            )  # fmt: skip
            assert response.status_code == 201, response.text
            body = apply_operation(int(profile), "sim profile", content, int(device))
            created = await stack.api.post("/devicecontrol/operations", json=body, auth=ADMIN)
            assert created.status_code == 201, created.text
            ops[name] = created.json()["id"]

        async def finished() -> bool:
            statuses = await stack.statuses(list(ops.values()))
            return all(s in ("SUCCESSFUL", "FAILED") for s in statuses.values())

        await eventually(finished, "every profile operation finished", timeout=60)

    good = await stack.operation(ops["prof-0001"])
    assert good["status"] == "SUCCESSFUL", good
    failed = await stack.operation(ops["prof-0002"])
    assert failed["status"] == "FAILED"
    assert failed["failureReason"] == "software 'agent' 2.1: Simulated failure"
    corrupt = await stack.operation(ops["prof-0003"])
    assert corrupt["failureReason"].startswith("firmware 'sim-fw' 2.0: SHA-256 mismatch")

    mo = (await stack.api.get(f"{OBJECTS}/{await stack.object_id('prof-0001')}", auth=ADMIN)).json()
    assert mo["c8y_Profile"] == {"profileName": "sim profile", "profileId": profile,
                                 "profileExecuted": True}  # fmt: skip
    assert mo["c8y_Firmware"]["version"] == "2.0"
    software = {s["name"]: s["version"] for s in mo["c8y_SoftwareList"]}
    assert (software["agent"], software["tools"]) == ("2.1", "1.0")
    assert mo["c8y_Configuration_ssh"]["url"] == content["configuration"][0]["url"]
    # The one that failed at its software step kept what it installed before it.
    mo2 = (
        await stack.api.get(f"{OBJECTS}/{await stack.object_id('prof-0002')}", auth=ADMIN)
    ).json()
    assert mo2["c8y_Profile"]["profileExecuted"] is False
    assert mo2["c8y_Firmware"]["version"] == "2.0"

    executed = "c8y_Profile.profileName eq 'sim profile' and c8y_Profile.profileExecuted eq true"
    assert await _ids(stack, f"$filter=(bygroupid({group}) and {executed})") == ["prof-0001"]
    pending = f"$filter=(bygroupid({group}) and not({executed}))"
    assert await _ids(stack, pending) == ["prof-0002", "prof-0003"]


N = 20
BULK = "/devicecontrol/bulkoperations"


async def _bulk(stack: Stack, bulk_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"{BULK}/{bulk_id}", auth=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_bulk_operation_applies_a_profile_to_a_group_of_20_devices(
    stack: Stack,
) -> None:
    """The issue's end-to-end test: a group of 20 simulated devices (made through the REST
    routes), a profile with firmware, two packages and a configuration file, **one** bulk
    operation → every device SUCCESSFUL with c8y_Profile executed; the profile filter
    finds them all; a second bulk operation narrowed to the devices that have not
    applied the profile yet has no device at all."""
    profile, content = await _profile_named(stack, "group profile")
    simulation = stack.simulation("bulkprof", N, delay=0)
    names = list(simulation.config.device_ids)
    async with running(simulation):
        await eventually(lambda: stack.declared(names), "the declarations")
        group = await stack.group("bulk profile", [await stack.object_id(n) for n in names])
        prototype = apply_operation(int(profile), "group profile", content, 0)
        del prototype["deviceId"]
        not_applied = (
            "not(c8y_Profile.profileName eq 'group profile'"
            " and c8y_Profile.profileExecuted eq true)"
        )
        body = {
            "groupId": group, "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0,
            "operationPrototype": prototype, "fleetgate_Targets": {"query": not_applied},
        }  # fmt: skip
        created = await stack.api.post(BULK, json=body, auth=ADMIN)
        assert created.status_code == 201, created.text
        bulk_id = created.json()["id"]
        assert created.json()["fleetgate_RolloutStatus"]["targets"] == N

        async def done() -> bool:
            return (await _bulk(stack, bulk_id))["generalStatus"] in ("SUCCESSFUL", "FAILED")

        await eventually(done, "the bulk operation", timeout=120)
    bulk = await _bulk(stack, bulk_id)
    assert bulk["generalStatus"] == "SUCCESSFUL", bulk
    assert bulk["progress"] == {"all": N, "pending": 0, "executing": 0, "successful": N,
                                "failed": 0}  # fmt: skip
    ops = await stack.api.get(
        "/devicecontrol/operations", params={"bulkOperationId": bulk_id, "pageSize": 100},
        auth=ADMIN,
    )  # fmt: skip
    assert sorted(o["status"] for o in ops.json()["operations"]) == ["SUCCESSFUL"] * N

    executed = "c8y_Profile.profileName eq 'group profile' and c8y_Profile.profileExecuted eq true"
    assert await _ids(stack, f"$filter=(bygroupid({group}) and {executed})") == sorted(names)
    found = await stack.api.get(
        OBJECTS, params={"query": f"$filter=(bygroupid({group}))", "pageSize": 100}, auth=ADMIN
    )
    for mo in found.json()["managedObjects"]:
        assert mo["c8y_Profile"] == {"profileName": "group profile", "profileId": profile,
                                     "profileExecuted": True}  # fmt: skip
        assert mo["c8y_Firmware"]["version"] == "2.0"
        assert {s["name"] for s in mo["c8y_SoftwareList"]} >= {"agent", "tools"}
        assert mo["c8y_Configuration_ssh"]["url"] == content["configuration"][0]["url"]

    again = await stack.api.post(BULK, json=body, auth=ADMIN)
    assert again.status_code == 201, again.text
    assert again.json()["fleetgate_RolloutStatus"]["targets"] == 0

    async def completed() -> bool:
        return (await _bulk(stack, again.json()["id"]))["status"] == "COMPLETED"

    await eventually(completed, "the empty bulk operation")
    nothing = await stack.api.get(
        "/devicecontrol/operations", params={"bulkOperationId": again.json()["id"]}, auth=ADMIN
    )
    assert nothing.json()["operations"] == []
