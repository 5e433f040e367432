"""Groups (childAssets), device profiles and inventory queries through the REST API, on
the real PostgreSQL: the seed's profile rules, applying a profile to one device, the
profile filter; roles and bad input answered with Cumulocity's error body, never 500."""

from __future__ import annotations

from typing import Any

import pytest

from fleetgate.db.groups import PgGroups
from fleetgate.domain.inventory_query import parse_query

from operations_world import ADMIN, ALL_OPS, OTHER, World, world

pytestmark = pytest.mark.integration
__all__ = ["world"]

BOOTSTRAP = ("t1/devicebootstrap", "boot-pw")
OBJECTS = "/inventory/managedObjects"
ERROR = "application/vnd.com.nsn.cumulocity.error+json"
PROFILE_OPS = [*ALL_OPS, "c8y_DeviceProfile"]


async def create(world: World, body: dict[str, Any], auth: Any = ADMIN) -> str:
    response = await world.api.post(OBJECTS, json=body, auth=auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def refused(response: Any, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(ERROR)
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["message"], body
    return body


async def group(world: World, name: str, *, sub: bool = False) -> str:
    fragment = "c8y_IsDeviceSubgroup" if sub else "c8y_IsDeviceGroup"
    kind = "c8y_DeviceSubgroup" if sub else "c8y_DeviceGroup"
    return await create(world, {"name": name, "type": kind, fragment: {}})


async def assign(world: World, parent: str, child: str, auth: Any = ADMIN) -> Any:
    return await world.api.post(
        f"{OBJECTS}/{parent}/childAssets", json={"managedObject": {"id": child}}, auth=auth
    )


# --- groups --------------------------------------------------------------------------------


async def test_a_group_holds_devices_and_subgroups_as_child_assets(world: World) -> None:
    top, sub = await group(world, "Plant"), await group(world, "Hall 1", sub=True)
    d1, d2, d3 = [await world.device(f"g-{n}") for n in (1, 2, 3)]
    for parent, child in ((top, sub), (top, d1), (sub, d2), (sub, d3)):
        response = await assign(world, parent, child)
        assert response.status_code == 201, response.text
        assert response.json()["managedObject"]["id"] == child
        assert response.json()["self"].endswith(f"/{parent}/childAssets/{child}")
    again = await assign(world, top, d1)
    assert again.status_code == 201  # a reference that exists changes nothing

    listed = await world.api.get(
        f"{OBJECTS}/{top}/childAssets", params={"withTotalPages": "true"}, auth=ADMIN
    )
    assert listed.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.managedObjectReferenceCollection+json"
    )
    assert [r["managedObject"]["id"] for r in listed.json()["references"]] == sorted(
        [sub, d1], key=int
    )
    assert listed.json()["statistics"]["totalElements"] == 2
    one = await world.api.get(f"{OBJECTS}/{sub}/childAssets/{d2}", auth=ADMIN)
    assert one.status_code == 200
    shown = (await world.api.get(f"{OBJECTS}/{d2}", auth=ADMIN)).json()
    assert [r["managedObject"]["id"] for r in shown["assetParents"]["references"]] == [sub]

    # bygroupid: the group's own child assets (Cumulocity's); the group's devices for a
    # bulk operation: every device below it, subgroups' included.
    direct = await world.api.get(OBJECTS, params={"query": f"bygroupid({top})"}, auth=ADMIN)
    assert sorted(o["id"] for o in direct.json()["managedObjects"]) == sorted([sub, d1])
    devices = await world.api.get(
        OBJECTS, params={"q": f"bygroupid({top})"}, auth=ADMIN
    )  # q: devices only
    assert [o["id"] for o in devices.json()["managedObjects"]] == [d1]
    store = PgGroups(world.pool)
    assert await store.device_ids("t1", int(top)) == sorted(int(d) for d in (d1, d2, d3))
    assert await store.device_ids("t1", int(top), parse_query("name eq 'g-2'")) == [int(d2)]
    assert await store.device_ids("t2", int(top)) == []

    gone = await world.api.delete(f"{OBJECTS}/{sub}/childAssets/{d3}", auth=ADMIN)
    assert gone.status_code == 204
    assert (await world.api.get(f"{OBJECTS}/{d3}", auth=ADMIN)).status_code == 200
    await refused(
        await world.api.delete(f"{OBJECTS}/{sub}/childAssets/{d3}", auth=ADMIN), 404, "not a child"
    )


async def test_child_assets_refuse_loops_strangers_and_bad_references(world: World) -> None:
    top, sub = await group(world, "A"), await group(world, "B", sub=True)
    assert (await assign(world, top, sub)).status_code == 201
    await refused(await assign(world, sub, top), 422, "loop")
    await refused(await assign(world, top, top), 422, "own child asset")
    theirs = await create(world, {"name": "x"}, auth=OTHER)
    await refused(await assign(world, top, theirs), 404)
    await refused(await assign(world, theirs, top), 404)
    for body in ({"managedObject": {"id": "x"}}, {"managedObject": {}}, {"id": sub}, []):
        response = await world.api.post(f"{OBJECTS}/{top}/childAssets", json=body, auth=ADMIN)
        assert response.status_code == 422, (body, response.text)
    await refused(await assign(world, top, sub, auth=BOOTSTRAP), 403)
    listed = await world.api.get(f"{OBJECTS}/{top}/childAssets", auth=BOOTSTRAP)
    await refused(listed, 403)
    await refused(await world.api.get(f"{OBJECTS}/{theirs}/childAssets", auth=ADMIN), 404)


# --- inventory queries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("name eq 'x", "at position 9: a text value is not closed"),
        ("c8y_Profile.profileName gt 'x'", "at position 25: gt is not supported"),
        ("$filter=(has(c8y_IsDevice)", "at position 27"),
        ("bygroupid(abc)", "at position 11"),
        ("a eq 1 $orderby=name", "at position 8"),
    ],
)
async def test_a_bad_query_is_a_422_naming_the_position(
    world: World, query: str, where: str
) -> None:
    response = await world.api.get(OBJECTS, params={"query": query}, auth=ADMIN)
    body = await refused(response, 422, where)
    assert body["error"] == "general/validationError"


# --- profiles --------------------------------------------------------------------------------


async def repositories(world: World) -> dict[str, str]:
    """Firmware, software and configuration entries for device type 'thermo' and one
    firmware for another type; the binaries' URLs by name."""
    urls = {n: await world.upload(n, n.encode() * 100) for n in ("fw", "agent", "tools", "ssh")}
    fw = await create(world, {"name": "thermo-fw", "type": "c8y_Firmware",
                              "c8y_Filter": {"type": "thermo"}})  # fmt: skip
    await create(world, {"name": "other-fw", "type": "c8y_Firmware",
                         "c8y_Filter": {"type": "boiler"}})  # fmt: skip
    await world.api.post(
        f"{OBJECTS}/{fw}/childAdditions",
        json={"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "2.0", "url": urls["fw"]}},
        headers={"content-type": "application/vnd.com.nsn.cumulocity.managedObject+json"},
        auth=ADMIN,
    )
    for name in ("agent", "tools"):
        await create(world, {"name": name, "type": "c8y_Software", "softwareType": "apt",
                             "c8y_Filter": {"type": "thermo"}})  # fmt: skip
    await create(world, {"name": "ssh config", "type": "c8y_ConfigurationDump",
                         "deviceType": "thermo", "configurationType": "ssh",
                         "url": urls["ssh"]})  # fmt: skip
    return urls


def content(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "firmware": {"name": "thermo-fw", "version": "2.0", "url": urls["fw"]},
        "software": [
            {"name": "agent", "version": "2.1", "url": urls["agent"], "action": "install"},
            {"name": "tools", "version": "1.0", "url": urls["tools"], "action": "install"},
        ],
        "configuration": [{"name": "ssh config", "type": "ssh", "url": urls["ssh"]}],
    }


async def test_profile_rules_one_firmware_device_type_and_complete_items(world: World) -> None:
    urls = await repositories(world)
    good = {"name": "thermo 2", "type": "c8y_Profile", "c8y_Filter": {"type": "thermo"},
            "c8y_DeviceProfile": content(urls)}  # fmt: skip
    profile = await create(world, good)
    # Added empty, then items (the seed's order): both are writes of the same object.
    empty = await create(world, {"name": "later", "type": "c8y_Profile", "c8y_Filter": {}})
    put = await world.api.put(
        f"{OBJECTS}/{empty}", json={"c8y_DeviceProfile": content(urls)}, auth=ADMIN
    )
    assert put.status_code == 200, put.text

    two_firmware = {**good, "c8y_DeviceProfile": {**content(urls), "firmware": [
        content(urls)["firmware"], content(urls)["firmware"]]}}  # fmt: skip
    await refused(await world.api.post(OBJECTS, json=two_firmware, auth=ADMIN), 422, "one firmware")
    other = {**good, "c8y_DeviceProfile": {"firmware": {"name": "other-fw", "version": "1",
                                                          "url": urls["fw"]}}}  # fmt: skip
    await refused(
        await world.api.post(OBJECTS, json=other, auth=ADMIN),
        422, "firmware 'other-fw' 1 is for device type 'boiler', not 'thermo'",
    )  # fmt: skip
    unknown = {**good, "c8y_DeviceProfile": {"software": [
        {"name": "curl", "version": "8", "url": urls["agent"], "action": "install"}]}}  # fmt: skip
    await refused(
        await world.api.post(OBJECTS, json=unknown, auth=ADMIN),
        422, "software 'curl' 8 is not in the software repository",
    )  # fmt: skip
    retyped = await world.api.put(
        f"{OBJECTS}/{profile}", json={"c8y_Filter": {"type": "boiler"}}, auth=ADMIN
    )
    await refused(retyped, 422, "'thermo-fw' 2.0 is for device type 'thermo', not 'boiler'")
    for bad in (
        {"name": "", "type": "c8y_Profile"},
        {"name": "x", "type": "c8y_Profile", "c8y_Filter": {"type": 7}},
        {"name": "x", "type": "c8y_Profile", "c8y_Filter": {"types": ["a"]}},
        {"name": "x", "type": "c8y_Profile", "c8y_DeviceProfile": {"software": [{"name": "a"}]}},
        {"name": "x", "type": "c8y_Profile", "c8y_DeviceProfile": {"configuration": [{}]}},
        {"name": "x", "type": "c8y_Profile", "c8y_DeviceProfile": {"extra": []}},
        {"name": "x", "type": "c8y_Profile", "c8y_DeviceProfile": {"software": ["a"] * 201}},
    ):
        response = await world.api.post(OBJECTS, json=bad, auth=ADMIN)
        await refused(response, 422)
    # Without a device type, any complete item goes.
    anything = {"software": unknown["c8y_DeviceProfile"]["software"]}
    await create(
        world,
        {"name": "any", "type": "c8y_Profile", "c8y_Filter": {}, "c8y_DeviceProfile": anything},
    )


async def test_a_duplicate_is_a_copy_of_the_content_named_copy_of(world: World) -> None:
    urls = await repositories(world)
    original = await create(world, {"name": "thermo 2", "type": "c8y_Profile",
                                    "c8y_Filter": {"type": "thermo"},
                                    "c8y_DeviceProfile": content(urls)})  # fmt: skip
    copy = await world.api.post(f"/inventory/deviceProfiles/{original}/copies", auth=ADMIN)
    assert copy.status_code == 201, copy.text
    body = copy.json()
    assert body["name"] == "Copy of thermo 2"
    assert body["type"] == "c8y_Profile"
    assert body["c8y_DeviceProfile"] == content(urls)
    assert body["c8y_Filter"] == {"type": "thermo"}
    assert body["id"] != original
    named = await world.api.post(
        f"/inventory/deviceProfiles/{original}/copies", json={"name": "v3"}, auth=ADMIN
    )
    assert named.json()["name"] == "v3"
    not_profile = await create(world, {"name": "plain"})
    await refused(
        await world.api.post(f"/inventory/deviceProfiles/{not_profile}/copies", auth=ADMIN), 404
    )
    await refused(
        await world.api.post(f"/inventory/deviceProfiles/{original}/copies", auth=OTHER), 404
    )
    await refused(
        await world.api.post(f"/inventory/deviceProfiles/{original}/copies", auth=BOOTSTRAP), 403
    )
    bad = await world.api.post(
        f"/inventory/deviceProfiles/{original}/copies", json={"nom": "x"}, auth=ADMIN
    )
    await refused(bad, 422, "only name")
    # Deleting a profile leaves what it is a copy of, and the devices that applied it.
    assert (await world.api.delete(f"{OBJECTS}/{original}", auth=ADMIN)).status_code == 204
    assert (await world.api.get(f"{OBJECTS}/{body['id']}", auth=ADMIN)).status_code == 200


async def apply(world: World, device: str, profile: str, body: dict[str, Any]) -> Any:
    return await world.create(
        {"deviceId": device, "profileId": profile, "profileName": "thermo 2", **body}
    )


async def test_applying_a_profile_to_one_device(world: World) -> None:
    urls = await repositories(world)
    profile = await create(world, {"name": "thermo 2", "type": "c8y_Profile",
                                   "c8y_Filter": {"type": "thermo"},
                                   "c8y_DeviceProfile": content(urls)})  # fmt: skip
    device = await world.device("p-1", supported=PROFILE_OPS)
    boiler = await world.device("p-2", type="boiler", supported=PROFILE_OPS)
    no_profiles = await world.device("p-3")
    command = {"c8y_DeviceProfile": content(urls)}

    mismatch = "Profile 'thermo 2' is for devices of type 'thermo'; this device has 'boiler'"
    await refused(await apply(world, boiler, profile, command), 422, mismatch)
    unsupported = await apply(world, no_profiles, profile, command)
    await refused(unsupported, 422, "does not support c8y_DeviceProfile")
    await refused(await world.create({"deviceId": device, **command}), 422, "profileId")
    await refused(await apply(world, device, str(int(profile) + 999), command), 422,
                  "not a device profile")  # fmt: skip
    bad = {"c8y_DeviceProfile": {"firmware": {"name": "x"}}}
    await refused(await apply(world, device, profile, bad), 422, "c8y_DeviceProfile.firmware.url")

    created = await apply(world, device, profile, command)
    assert created.status_code == 201, created.text
    op = created.json()
    assert op["description"] == "Assign device profile thermo 2 to device"
    [sent] = world.link.take("fg/d/p-1/op/cmd")
    payload: Any = sent["payload"]
    assert payload["firmware"]["file"]["sha256"]  # signed URLs beside every item
    assert all(s["file"]["url"] for s in payload["software"])
    assert payload["configuration"][0]["file"]["size"] == 300

    # The filter finds devices by applied profile and whether it was executed.
    find = (
        "$filter=(c8y_Profile.profileName eq 'thermo 2'"
        " and not(c8y_Profile.profileExecuted eq true))"
    )
    started = {"profileName": "thermo 2", "profileId": profile, "profileExecuted": False}
    await world.send("p-1", "inventory", {"c8y_Profile": started})
    await world.report("p-1", op["id"], "EXECUTING")
    pending = await world.api.get(OBJECTS, params={"q": find}, auth=ADMIN)
    assert [o["id"] for o in pending.json()["managedObjects"]] == [device]
    await world.report("p-1", op["id"], "SUCCESSFUL")
    mo = await world.mo(device)
    assert mo["c8y_Profile"] == {"profileName": "thermo 2", "profileId": profile,
                                 "profileExecuted": True}  # fmt: skip
    assert mo["c8y_Firmware"] == {"name": "thermo-fw", "version": "2.0", "url": urls["fw"]}
    assert [(s["name"], s["version"]) for s in mo["c8y_SoftwareList"]] == [
        ("agent", "2.1"), ("tools", "1.0")]  # fmt: skip
    assert mo["c8y_Configuration_ssh"]["url"] == urls["ssh"]
    assert (await world.api.get(OBJECTS, params={"q": find}, auth=ADMIN)).json()[
        "managedObjects"] == []  # fmt: skip
    done = "c8y_Profile.profileName eq 'thermo 2' and c8y_Profile.profileExecuted eq true"
    found = await world.api.get(OBJECTS, params={"q": done}, auth=ADMIN)
    assert [o["id"] for o in found.json()["managedObjects"]] == [device]

    # A failing step is FAILED with the step and the item named by the device; the record
    # keeps what the device reported before it failed.
    again = (await apply(world, device, profile, command)).json()
    reason = "software 'agent' 2.1: SHA-256 mismatch: expected 00, got 9f"
    await world.report("p-1", again["id"], "FAILED", reason)
    assert (await world.op(again["id"]))["failureReason"] == reason
