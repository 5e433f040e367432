"""Device profiles: the pure rules (content, one firmware, device type, applying), the
checks on the in-memory inventory, applying through the operations use case and what
success records — and groups' child assets on the fakes."""

from __future__ import annotations

from typing import Any

import pytest
from test_operations_service import ALL_OPS, World, world

from fleetgate.domain import profiles
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.operations import Status
from fleetgate.services.groups import Groups
from fleetgate.services.profiles import Profiles, check_profile_object

from memory.groups import MemoryGroups

__all__ = ["world"]

URL = "http://fleetgate.test/x"
CONTENT: dict[str, Any] = {
    "firmware": {"name": "fw", "version": "2", "url": URL},
    "software": [
        {"name": "agent", "version": "2.1", "url": URL, "action": "install"},
        {"name": "old", "action": "delete"},
    ],
    "configuration": [{"name": "ssh config", "type": "ssh", "url": URL}],
}


def test_content_reads_items_in_install_order_with_labels() -> None:
    content = profiles.read_content(CONTENT)
    assert [i.label for i in content.items] == [
        "firmware 'fw' 2", "software 'agent' 2.1", "software 'old'", "configuration 'ssh config'",
    ]  # fmt: skip
    assert profiles.read_content(None).items == ()
    assert profiles.read_content({}).items == ()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"firmware": [CONTENT["firmware"]] * 2}, "one firmware only"),
        ({"firmware": {"name": "fw", "version": "2"}}, "c8y_DeviceProfile.firmware.url"),
        ({"software": [{"name": "a", "action": "upgrade"}]}, "software[0].action"),
        ({"software": [{"name": "a", "version": "1"}]}, "software[0].url"),
        ({"configuration": [{"name": "c", "url": URL}]}, "configuration[0].type"),
        ({"software": {}}, "software must be a list"),
        ({"firmwares": {}}, "not firmwares"),
        ({"firmware": {"name": "x" * 2001, "version": "1", "url": URL}}, "at most 2000"),
        ([], "must be an object"),
    ],
)
def test_bad_content_is_refused_naming_the_item(content: Any, problem: str) -> None:
    with pytest.raises(ValidationFailed, match=problem.replace("[", r"\[").replace("]", r"\]")):
        profiles.read_content(content)


def test_a_profile_applies_to_its_device_type_only() -> None:
    assert profiles.profile_mismatch("p", None, "x") is None
    assert profiles.profile_mismatch("p", "x", "x") is None
    assert profiles.profile_mismatch("p", "x", "y") == (
        "Profile 'p' is for devices of type 'x'; this device has 'y'"
    )
    assert profiles.profile_mismatch("p", "x", None) == (
        "Profile 'p' is for devices of type 'x'; this device has no type"
    )
    assert profiles.applies_to("p", {"c8y_Filter": {}}, "y") is None
    assert profiles.applies_to("p", {"c8y_Filter": {"type": "x"}}, "y") is not None
    with pytest.raises(ValidationFailed, match="c8y_Filter"):
        profiles.device_type_of({"c8y_Filter": []})


def test_an_item_of_a_typed_profile_must_be_a_repository_entry_of_that_type() -> None:
    [fw, *_] = profiles.read_content(CONTENT).items
    assert profiles.mismatch(fw, "x", [None]) is None
    assert profiles.mismatch(fw, "x", ["y", "x"]) is None
    assert profiles.mismatch(fw, "x", ["y"]) == "firmware 'fw' 2 is for device type 'y', not 'x'"
    assert "not in the firmware repository" in str(profiles.mismatch(fw, "x", []))


def test_the_operation_that_applies_a_profile() -> None:
    body = profiles.apply_operation(7, "p", CONTENT, 42)
    assert body == {
        "deviceId": "42", "description": "Assign device profile p to device", "profileId": "7",
        "profileName": "p", "c8y_DeviceProfile": CONTENT,
    }  # fmt: skip
    assert profiles.duplicate_name("p") == "Copy of p"


async def test_profiles_are_checked_against_the_repositories(world: World) -> None:
    inv = world.stores.inventory
    await inv.create("t1", name="fw", type="c8y_Firmware", owner=None,
                     fragments={"c8y_Filter": {"type": "thermo"}})  # fmt: skip
    await inv.create("t1", name="fw*", type="c8y_Firmware", owner=None,
                     fragments={"c8y_Filter": {"type": "boiler"}})  # fmt: skip
    fw_only = {
        "c8y_Filter": {"type": "thermo"},
        "c8y_DeviceProfile": {"firmware": CONTENT["firmware"]},
    }
    await check_profile_object(inv, "t1", "p", "c8y_Profile", fw_only)
    boiler = {**fw_only, "c8y_Filter": {"type": "boiler"}}
    with pytest.raises(ValidationFailed, match="'fw' 2 is for device type 'thermo', not 'boiler'"):
        await check_profile_object(inv, "t1", "p", "c8y_Profile", boiler)
    with pytest.raises(ValidationFailed, match="not in the firmware repository"):
        await check_profile_object(inv, "t2", "p", "c8y_Profile", fw_only)
    await check_profile_object(inv, "t1", None, "c8y_Firmware", {})  # not a profile


async def test_duplicating_a_profile(world: World) -> None:
    inv = world.stores.inventory
    made = await inv.create("t1", name="p", type="c8y_Profile", owner="admin",
                            fragments={"c8y_Filter": {}, "c8y_DeviceProfile": CONTENT})  # fmt: skip
    copy = await Profiles(inv).duplicate("t1", made.id, None)
    assert (copy.name, copy.type, copy.fragments) == ("Copy of p", "c8y_Profile", made.fragments)
    with pytest.raises(NotFound):
        await Profiles(inv).duplicate("t2", made.id, None)


async def test_applying_a_profile_records_it_on_success(world: World) -> None:
    inv = world.stores.inventory
    device = await world.device("d1", supported=[*ALL_OPS, "c8y_DeviceProfile"])
    boiler = await world.device("d2", type="boiler", supported=[*ALL_OPS, "c8y_DeviceProfile"])
    await inv.update("t1", device, {}, {"c8y_SoftwareList": [
        {"name": "old", "version": "1"}, {"name": "keep", "version": "3"}]})  # fmt: skip
    profile = await inv.create("t1", name="p", type="c8y_Profile", owner=None,
                               fragments={"c8y_Filter": {"type": "thermo"},
                                          "c8y_DeviceProfile": CONTENT})  # fmt: skip
    body = profiles.apply_operation(profile.id, "p", CONTENT, device)
    with pytest.raises(ValidationFailed, match="type 'thermo'; this device has 'boiler'"):
        await world.create({**body, "deviceId": boiler})
    op = await world.create(body)
    [command] = world.commands("d1")
    assert command["type"] == "c8y_DeviceProfile"
    assert command["payload"]["software"][0]["name"] == "agent"
    await world.report("d1", op, Status.SUCCESSFUL)
    record = await world.fragments(device)
    assert record["c8y_Profile"] == {"profileName": "p", "profileId": str(profile.id),
                                     "profileExecuted": True}  # fmt: skip
    assert record["c8y_Firmware"] == {"name": "fw", "version": "2", "url": URL}
    assert [s["name"] for s in record["c8y_SoftwareList"]] == ["keep", "agent"]
    assert record["c8y_Configuration_ssh"]["operationId"] == str(op.id)
    # Deleting the profile changes nothing on the device that applied it.
    await inv.delete("t1", profile.id)
    assert (await world.fragments(device))["c8y_Profile"]["profileExecuted"] is True


async def test_child_assets_on_the_fakes(world: World) -> None:
    inv = world.stores.inventory
    groups = Groups(inv, MemoryGroups(world.stores.db))
    top = await inv.create("t1", name="g", type="c8y_DeviceGroup", owner=None,
                           fragments={"c8y_IsDeviceGroup": {}})  # fmt: skip
    sub = await inv.create("t1", name="s", type="c8y_DeviceSubgroup", owner=None,
                           fragments={"c8y_IsDeviceSubgroup": {}})  # fmt: skip
    device = await world.device("d1")
    await groups.add_child_asset("t1", top.id, sub.id)
    await groups.add_child_asset("t1", sub.id, device)
    with pytest.raises(ValidationFailed, match="loop"):
        await groups.add_child_asset("t1", sub.id, top.id)
    assert await groups.device_ids("t1", top.id) == [device]
    with pytest.raises(ValidationFailed, match="not a device group"):
        await groups.device_ids("t1", device)
    with pytest.raises(NotFound):
        await groups.device_ids("t2", top.id)
    found, total = await groups.child_assets("t1", top.id, 0, 5, count=True)
    assert ([o.id for o in found], total) == ([sub.id], 1)
    await groups.remove_child_asset("t1", sub.id, device)
    with pytest.raises(NotFound):
        await groups.child_asset("t1", sub.id, device)
