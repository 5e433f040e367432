"""The device use cases on in-memory ports: the broker's connect events (registration,
online status, a failing device kept apart, the transient retry signal), inventory and
child additions, external ids and pre-registration, deletion with what the broker is
told, device users."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import Declaration
from fleetgate.domain.errors import Conflict, FleetgateError, NotFound, ValidationFailed
from fleetgate.domain.inventory import ObjectFilter, Reference
from fleetgate.domain.lifecycle import LifecycleStatus
from fleetgate.domain.users import ADMIN_ROLES
from fleetgate.services.binaries import Binaries
from fleetgate.services.broker import removed_device_lines, removed_user_lines
from fleetgate.services.devices import Devices

from fakes import RecordingBroker, unavailable
from memory import ManualClock, MemoryStores

FP = "ab" * 20


class CountingBroker(RecordingBroker):
    """Remembers each push apart, and can be out of reach for session discards."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[list[str]] = []
        self.reachable = True

    async def push(self, lines: list[str]) -> None:
        self.pushes.append(list(lines))
        await super().push(lines)

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        return await super().discard_sessions(device_ids) if self.reachable else []


@dataclass
class World:
    stores: MemoryStores
    clock: ManualClock
    broker: CountingBroker
    devices: Devices

    async def object_of(self, device_id: str, tenant: str = "t1") -> int:
        found = await self.stores.identity.get(tenant, "c8y_Serial", device_id)
        assert found is not None, device_id
        return found.managed_object_id

    async def connection_status(self, device_id: str, tenant: str = "t1") -> str:
        mo = await self.devices.get_object(tenant, await self.object_of(device_id, tenant))
        status: str = mo.fragments["c8y_Connection"]["status"]
        return status

    async def create(self, tenant: str = "t1", /, **body: object) -> int:
        return (await self.devices.create_object(tenant, dict(body))).id


@pytest.fixture
def world() -> World:
    clock = ManualClock()
    stores = MemoryStores.make("t1", "t2", clock=clock)
    broker = CountingBroker()
    binaries = Binaries(stores.binaries, stores.files)
    devices = Devices(
        stores.inventory,
        stores.identity,
        stores.users,
        stores.registry,
        broker,
        clock,
        is_transient=unavailable,
        files_released=binaries.release,
        child_connections=stores.connections,
    )
    return World(stores, clock, broker, devices)


def connected(
    device: str, connection: str = "e-1", *, new: bool = True, tenant: str = "t1"
) -> control.Connected:
    return control.Connected(device, tenant, FP, new, connection)


# --- broker events ------------------------------------------------------------------------


async def test_a_first_connection_registers_the_device_its_user_and_tells_the_broker(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("sensor-1"))
    mo = await world.devices.get_object("t1", await world.object_of("sensor-1"))
    assert (mo.name, mo.type, mo.owner) == ("sensor-1", "c8y_MQTTDevice", "device_sensor-1")
    assert mo.fragments == {
        "c8y_IsDevice": {},
        "fleetgate_CertificateAuthority": {"fingerprint": FP},
        "c8y_Connection": {"status": "CONNECTED"},
        "c8y_Availability": {"status": "AVAILABLE", "lastMessage": "2026-03-01T12:00:00.000Z"},
        "fleetgate_Connection": {"status": "CONNECTED"},
        "fleetgate_Lifecycle": {"status": "ONLINE"},
    }
    assert world.broker.pushes == [[control.device("sensor-1", "t1", True)]]
    user = await world.devices.get_user("t1", "device_sensor-1")
    assert user.enabled
    assert "ROLE_DEVICE" in user.roles


async def test_every_certificate_login_records_its_ca_for_a_later_migration(
    world: World,
) -> None:
    """fleetgate_CertificateAuthority names the CA of the last certificate login (decision
    0014 checks a migration's target against it), not only the first one's."""
    await world.devices.connections.on_connected(connected("sensor-ca"))
    await world.devices.connections.on_connected(
        control.Connected("sensor-ca", "t1", "cd" * 20, False, "e-2")
    )
    mo = await world.devices.get_object("t1", await world.object_of("sensor-ca"))
    assert mo.fragments["fleetgate_CertificateAuthority"] == {"fingerprint": "cd" * 20}
    await world.devices.connections.on_connected(
        control.Connected("sensor-ca", "t1", control.NO_CA, False, "e-3")
    )
    mo = await world.devices.get_object("t1", await world.object_of("sensor-ca"))
    assert mo.fragments["fleetgate_CertificateAuthority"] == {"fingerprint": "cd" * 20}


async def test_a_password_device_is_registered_without_a_certificate_authority(
    world: World,
) -> None:
    await world.devices.connections.on_connected(
        control.Connected("pw-1", "t1", control.NO_CA, False, "e")
    )
    mo = await world.devices.get_object("t1", await world.object_of("pw-1"))
    assert "fleetgate_CertificateAuthority" not in mo.fragments
    assert world.broker.lines == [control.device("pw-1", "t1", True)]  # its user was made


async def test_a_known_device_reconnecting_is_only_marked_connected(world: World) -> None:
    await world.devices.connections.on_connected(connected("d1", "e-1"))
    world.broker.pushes.clear()
    world.clock.advance(60)
    await world.devices.connections.on_connected(connected("d1", "e-2", new=False))
    assert world.broker.pushes == []
    mo = await world.devices.get_object("t1", await world.object_of("d1"))
    assert mo.fragments["c8y_Availability"]["lastMessage"] == "2026-03-01T12:01:00.000Z"
    # Unknown to the plugin (new) though known here: the plugin is told again.
    await world.devices.connections.on_connected(connected("d1", "e-3", new=True))
    assert world.broker.pushes == [[control.device("d1", "t1", True)]]


async def test_a_late_disconnect_of_an_older_connection_does_not_mark_offline(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("d1", "e-1"))
    await world.devices.connections.on_connected(connected("d1", "e-2", new=False))
    await world.devices.connections.on_disconnected(control.Disconnected("d1", "t1", "e-1"))
    assert await world.connection_status("d1") == "CONNECTED"
    await world.devices.connections.on_disconnected(control.Disconnected("d1", "t1", "e-2"))
    assert await world.connection_status("d1") == "DISCONNECTED"
    assert await world.stores.inventory.connected_devices() == []


async def test_a_batch_applies_each_devices_events_in_order_and_pushes_once(
    world: World,
) -> None:
    events: list[control.Connected | control.Disconnected] = [
        connected("a", "e-1"),
        connected("b", "e-2"),
        control.Disconnected("a", "t1", "e-1"),
        connected("c", "e-3"),
        connected("b", "e-4", new=False),
    ]
    await world.devices.connections.on_events(events)
    assert len(world.broker.pushes) == 1
    assert sorted(world.broker.pushes[0]) == sorted(
        control.device(d, "t1", True) for d in ("a", "b", "c")
    )
    assert [await world.connection_status(d) for d in "abc"] == [
        "DISCONNECTED", "CONNECTED", "CONNECTED",
    ]  # fmt: skip


async def test_a_failing_device_is_kept_apart_and_its_session_closed(world: World) -> None:
    world.stores.registry.failures["bad"] = ValueError("value out of range")
    await world.devices.connections.on_events(
        [connected("good-1", "e-1"), connected("bad", "e-2"), connected("good-2", "e-3")]
    )
    [pushed] = world.broker.pushes
    assert sorted(pushed) == sorted(
        [
            control.device("good-1", "t1", True),
            control.device_remove("bad"),
            control.device("good-2", "t1", True),
        ]
    )
    assert await world.stores.identity.device("bad") is None
    # A device the plugin already knew keeps its session: only a new one is closed.
    world.broker.pushes.clear()
    await world.devices.connections.on_events([connected("bad", "e-4", new=False)])
    assert world.broker.pushes == []


async def test_an_id_another_tenant_holds_has_the_whole_state_pushed_again(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("hd1", tenant="t1"))
    world.broker.pushes.clear()
    await world.devices.connections.on_events(
        [connected("hd1", "e-9", tenant="t2"), connected("t2-dev", "e-8", tenant="t2")]
    )
    assert world.broker.resyncs == 1
    assert world.broker.pushes == [[control.device("t2-dev", "t2", True)]]
    holder = await world.stores.identity.device("hd1")
    assert holder is not None
    assert holder.tenant_id == "t1"
    assert await world.stores.users.find_user("t2", "device_hd1") is None


async def test_an_absent_database_is_raised_after_the_batch_and_a_retry_completes_it(
    world: World,
) -> None:
    await world.devices.connections.on_events([connected("early", "e-1")])
    world.broker.pushes.clear()
    world.stores.registry.unavailable = True
    batch: list[control.Connected | control.Disconnected] = [
        control.Disconnected("early", "t1", "e-1"),
        connected("late", "e-2"),
    ]
    with pytest.raises(ConnectionRefusedError):
        await world.devices.connections.on_events(batch)
    assert await world.connection_status("early") == "DISCONNECTED"  # the rest went on
    assert world.broker.pushes == []  # nothing to tell: "late" is not registered
    world.stores.registry.unavailable = False
    await world.devices.connections.on_events(batch)  # the caller retries the same batch
    assert world.broker.pushes == [[control.device("late", "t1", True)]]
    assert await world.connection_status("late") == "CONNECTED"


async def test_reconcile_follows_the_brokers_live_sessions(world: World) -> None:
    await world.devices.connections.on_connected(connected("a", "e-1"))
    await world.devices.connections.on_connected(connected("b", "e-2"))
    await world.devices.connections.reconcile(
        (control.LiveClient("b", "t1", FP, "e-9"), control.LiveClient("c", "t1", FP, "e-3"))
    )
    assert [await world.connection_status(d) for d in "abc"] == [
        "DISCONNECTED", "CONNECTED", "CONNECTED",
    ]  # fmt: skip
    assert await world.stores.inventory.connected_devices() == [("t1", "b"), ("t1", "c")]


async def test_a_declaration_waits_for_the_registration_then_merges(world: World) -> None:
    declared = Declaration("d1", {"type": "thermo"}, {"c8y_Hardware": {"model": "x"}})
    assert await world.devices.declare(declared, last_try=False) is False
    with pytest.raises(ValidationFailed, match="Device d1 is not registered"):
        await world.devices.declare(declared, last_try=True)
    await world.devices.connections.on_connected(connected("d1"))
    assert await world.devices.declare(declared, last_try=False) is True
    again = Declaration("d1", {"name": None}, {"c8y_Hardware": None, "c8y_Other": {}})
    assert await world.devices.declare(again, last_try=False) is True
    mo = await world.devices.get_object("t1", await world.object_of("d1"))
    assert (mo.name, mo.type) == (None, "thermo")
    assert "c8y_Hardware" not in mo.fragments
    assert mo.fragments["c8y_Other"] == {}


# --- inventory ----------------------------------------------------------------------------


async def test_devices_are_counted_per_lifecycle_status(world: World) -> None:
    await world.create(name="never", c8y_IsDevice={})
    await world.create(name="thing")
    await world.devices.connections.on_connected(connected("on"))
    await world.devices.connections.on_connected(connected("off", "e-2"))
    await world.devices.connections.on_disconnected(control.Disconnected("off", "t1", "e-2"))
    await world.create("t2", name="theirs", c8y_IsDevice={})
    assert await world.devices.lifecycle_counts("t1") == {
        LifecycleStatus.INACTIVE: 1,
        LifecycleStatus.ONLINE: 1,
        LifecycleStatus.OFFLINE: 1,
        LifecycleStatus.DISABLED: 0,
    }


async def test_objects_are_created_found_counted_and_updated(world: World) -> None:
    for i in range(7):
        extra: dict[str, object] = {"c8y_IsDevice": {}} if i < 3 else {}
        await world.create(name=f"o{i}", type="even" if i % 2 == 0 else "odd", **extra)
    await world.create("t2", name="theirs", type="even")
    page, total = await world.devices.find_objects("t1", ObjectFilter(), 0, 3, count=True)
    assert ([m.name for m in page], total) == (["o0", "o1", "o2"], 7)
    found, _ = await world.devices.find_objects(
        "t1", ObjectFilter(type="even", fragment_type="c8y_IsDevice"), 0, 10, count=False
    )
    assert [m.name for m in found] == ["o0", "o2"]
    updated = await world.devices.update_object(
        "t1", page[0].id, {"name": "renamed", "c8y_IsDevice": None, "custom": {"a": 1}}
    )
    assert updated.name == "renamed"
    # A device's lifecycle status stays with the object (the fragment is fleetgate's).
    assert updated.fragments == {"custom": {"a": 1}, "fleetgate_Lifecycle": {"status": "INACTIVE"}}
    assert (await world.devices.get_object("t1", page[0].id)) == updated


async def test_inventory_refusals(world: World) -> None:
    object_id = await world.create(name="x")
    with pytest.raises(ValidationFailed, match="read-only properties cannot be set: id"):
        await world.devices.update_object("t1", object_id, {"id": "99"})
    with pytest.raises(ValidationFailed, match="name must be a string"):
        await world.devices.create_object("t1", {"name": 5})
    with pytest.raises(ValidationFailed, match="c8y_IsBinary is set by the server"):
        await world.devices.create_object("t1", {"name": "fake", "c8y_IsBinary": {}})
    with pytest.raises(NotFound) as missing:
        await world.devices.get_object("t1", 999)
    assert (missing.value.code, missing.value.message) == (
        "inventory/Not Found", "Managed object 999 not found",
    )  # fmt: skip
    with pytest.raises(NotFound):
        await world.devices.get_object("t2", object_id)
    with pytest.raises(NotFound):
        await world.devices.update_object("t2", object_id, {"name": "theirs now"})


async def test_an_update_ignores_the_read_only_fields_a_client_sends_back(world: World) -> None:
    """Cumulocity's clients send the whole object back (@c8y/client's inventory.update, a
    read-modify-write): the read-only fields are ignored, and the id must be the object's."""
    object_id = await world.create(name="x", custom={"a": 1})
    echoed = {
        "id": str(object_id),
        "self": "http://elsewhere/inventory/managedObjects/1",
        "creationTime": "1999-01-01T00:00:00.000Z",
        "lastUpdated": "anything",
        "childDevices": {"references": []},
        "childAssets": {"references": [{"managedObject": {"id": "5"}}]},
        "childAdditions": {},
        "deviceParents": {},
        "assetParents": {},
        "additionParents": {},
        "name": "y",
        "custom": {"a": 2},
    }
    updated = await world.devices.update_object("t1", object_id, echoed)
    assert (updated.name, updated.fragments["custom"]) == ("y", {"a": 2})
    assert not set(updated.fragments) & set(echoed) - {"custom"}
    # As a JSON number, too.
    await world.devices.update_object("t1", object_id, {"id": object_id, "name": "z"})
    other = await world.create(name="other")
    for wrong in (str(other), other, f"{object_id} ", True, None, [object_id]):
        with pytest.raises(ValidationFailed, match="read-only properties cannot be set: id"):
            await world.devices.update_object("t1", object_id, {"id": wrong, "name": "w"})
    assert (await world.devices.get_object("t1", object_id)).name == "z"
    assert (await world.devices.get_object("t1", other)).name == "other"
    # A new object has no id to echo: every read-only field is refused.
    for field in ("id", "self", "creationTime", "childDevices"):
        with pytest.raises(ValidationFailed, match=f"read-only properties cannot be set: {field}"):
            await world.devices.create_object("t1", {field: "1", "name": "n"})


async def test_operators_switch_a_gateways_child_auto_registration(world: World) -> None:
    gateway = await world.create(name="gw", c8y_IsDevice={})
    off = {"fleetgate_Gateway": {"childAutoRegistration": False}}
    updated = await world.devices.update_object("t1", gateway, off)
    assert updated.fragments["fleetgate_Gateway"] == {"childAutoRegistration": False}
    for bad in ({"childAutoRegistration": "no"}, {"auto": False}, True):
        with pytest.raises(ValidationFailed, match="fleetgate_Gateway must be"):
            await world.devices.update_object("t1", gateway, {"fleetgate_Gateway": bad})
        with pytest.raises(ValidationFailed, match="fleetgate_Gateway must be"):
            await world.devices.create_object("t1", {"name": "g", "fleetgate_Gateway": bad})
    cleared = await world.devices.update_object("t1", gateway, {"fleetgate_Gateway": None})
    assert "fleetgate_Gateway" not in cleared.fragments


async def test_repository_entries_must_be_usable_by_devices(world: World) -> None:
    with pytest.raises(ValidationFailed, match="needs a name"):
        await world.devices.create_object("t1", {"type": "c8y_Firmware"})
    firmware = await world.create(type="c8y_Firmware", name="fw")
    with pytest.raises(ValidationFailed, match=r"c8y_Firmware\.url"):
        await world.devices.create_child_addition(
            "t1", firmware, {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1"}}
        )
    with pytest.raises(ValidationFailed, match="the url names binary 42, which does not exist"):
        await world.devices.create_child_addition(
            "t1", firmware,
            {"type": "c8y_FirmwareBinary",
             "c8y_Firmware": {"version": "1", "url": "/inventory/binaries/42"}},
        )  # fmt: skip
    version = await world.devices.create_child_addition(
        "t1", firmware,
        {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1", "url": "http://x/1"}},
    )  # fmt: skip
    # An update is checked on the object it makes.
    with pytest.raises(ValidationFailed, match=r"c8y_Firmware\.url"):
        await world.devices.update_object("t1", version.id, {"c8y_Firmware": {"version": "2"}})
    with pytest.raises(ValidationFailed, match="needs a name"):
        await world.devices.update_object("t1", firmware, {"name": None})
    children, total = await world.devices.children(
        "t1", firmware, "childAdditions", 0, 10, count=True
    )
    assert ([c.id for c in children], total) == ([version.id], 1)


async def test_a_binary_stays_a_binary_through_the_inventory(world: World) -> None:
    binaries = Binaries(world.stores.binaries, world.stores.files)
    binary = await binaries.store(
        "t1", name="f", content_type="a/b", chunks=chunks(b"12345"), owner=None
    )
    for change in ({"length": 1}, {"contentType": "x/y"}, {"c8y_IsBinary": None}):
        with pytest.raises(ValidationFailed, match=r"PUT /inventory/binaries/\{id\}"):
            await world.devices.update_object("t1", binary.id, change)
    renamed = await world.devices.update_object("t1", binary.id, {"name": "g", "length": 5})
    assert (renamed.name, renamed.fragments["length"]) == ("g", 5)
    plain = await world.create(name="plain")
    with pytest.raises(ValidationFailed, match="c8y_IsBinary is set by the server"):
        await world.devices.update_object("t1", plain, {"c8y_IsBinary": {}})


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


# --- child additions ----------------------------------------------------------------------


async def test_child_additions_are_added_listed_shown_and_removed(world: World) -> None:
    parent = await world.create(name="parent")
    child = await world.create(name="child")
    assert (await world.devices.add_child_addition("t1", parent, child)).name == "child"
    await world.devices.add_child_addition("t1", parent, child)  # again: no change
    children, total = await world.devices.children(
        "t1", parent, "childAdditions", 0, 10, count=True
    )
    assert ([c.id for c in children], total) == ([child], 1)
    assert (await world.devices.child("t1", parent, "childAdditions", child)).id == child
    assert await world.devices.references_of("t1", parent) == [
        Reference("childAdditions", child, "child")
    ]
    assert await world.devices.references_of("t1", child) == [
        Reference("additionParents", parent, "parent")
    ]
    await world.devices.remove_child_addition("t1", parent, child)
    with pytest.raises(NotFound) as gone:
        await world.devices.child("t1", parent, "childAdditions", child)
    assert gone.value.message == f"Managed object {child} is not a child addition of {parent}"
    with pytest.raises(NotFound):
        await world.devices.remove_child_addition("t1", parent, child)
    assert (await world.devices.get_object("t1", child)).name == "child"  # the object stays


async def test_child_addition_refusals(world: World) -> None:
    parent = await world.create(name="parent")
    theirs = await world.create("t2", name="theirs")
    with pytest.raises(ValidationFailed, match="cannot be its own child addition"):
        await world.devices.add_child_addition("t1", parent, parent)
    for missing in (999, theirs):
        with pytest.raises(NotFound, match=f"Managed object {missing} not found"):
            await world.devices.add_child_addition("t1", parent, missing)
    with pytest.raises(NotFound, match=f"Managed object {theirs} not found"):
        await world.devices.add_child_addition("t1", theirs, parent)
    with pytest.raises(NotFound, match="Managed object 999 not found"):
        await world.devices.children("t1", 999, "childAdditions", 0, 10, count=False)
    with pytest.raises(NotFound, match=f"Managed object {theirs} not found"):
        await world.devices.create_child_addition("t1", theirs, {"name": "x"})


# --- deletion -----------------------------------------------------------------------------


async def test_deleting_a_device_removes_its_user_tells_the_broker_and_discards_its_session(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("bye"))
    world.broker.pushes.clear()
    await world.devices.delete_object("t1", await world.object_of("bye"))
    assert world.broker.pushes == [removed_device_lines("t1", "bye")]
    assert world.broker.discarded == ["bye"]
    assert await world.stores.registry.released(10) == []
    with pytest.raises(NotFound, match="User device_bye not found"):
        await world.devices.get_user("t1", "device_bye")
    assert await world.stores.identity.device("bye") is None
    with pytest.raises(NotFound):
        await world.devices.delete_object("t1", await world.create("t2", name="theirs"))


async def test_a_forced_cascade_deletes_the_hierarchy_and_releases_devices_and_files(
    world: World,
) -> None:
    binaries = Binaries(world.stores.binaries, world.stores.files)
    site = await world.create(name="site")
    pump = await world.create(name="pump", c8y_IsDevice={})
    await world.devices.add_external_id("t1", pump, "c8y_Serial", "pump-9")
    image = await binaries.store(
        "t1", name="i", content_type="a/b", chunks=chunks(b"img"), owner=None
    )
    shared = await binaries.store(
        "t1", name="j", content_type="a/b", chunks=chunks(b"img"), owner=None
    )
    bystander = await world.create(name="bystander")
    await world.devices.add_child_addition("t1", site, pump)
    await world.devices.add_child_addition("t1", pump, image.id)
    await world.devices.add_child_addition("t1", image.id, site)  # a cycle ends nowhere

    await world.devices.delete_object("t1", site, force_cascade=True)
    for gone in (site, pump, image.id):
        with pytest.raises(NotFound):
            await world.devices.get_object("t1", gone)
    await world.devices.get_object("t1", bystander)
    assert world.broker.lines[-3:] == removed_device_lines("t1", "pump-9")
    assert world.broker.discarded == ["pump-9"]
    assert list(world.stores.files.files.values()) == [b"img"]  # "j" still uses it
    await binaries.delete("t1", shared.id)
    assert world.stores.files.files == {}


async def gateway_with_children(world: World) -> tuple[int, int, int]:
    """A gateway ``gw`` with the child devices ``c1`` and ``c2``: their object ids."""
    ids = []
    for serial in ("gw", "c1", "c2"):
        made = await world.create(name=serial, c8y_IsDevice={})
        await world.devices.add_external_id("t1", made, "c8y_Serial", serial)
        ids.append(made)
    gw, c1, c2 = ids
    for child in (c1, c2):
        await world.stores.child_devices.attach("t1", gw, child)
    await world.devices.connections.children_changed("t1", [("c1", "gw"), ("c2", "gw")])
    return gw, c1, c2


async def test_a_cascade_deletes_a_gateway_with_its_children(world: World) -> None:
    gw, c1, c2 = await gateway_with_children(world)
    world.broker.lines.clear()
    await world.devices.delete_object("t1", gw, cascade=True, by="admin")
    for gone in (gw, c1, c2):
        with pytest.raises(NotFound):
            await world.devices.get_object("t1", gone)
    assert sorted(world.broker.discarded) == ["c1", "c2", "gw"]
    assert await world.stores.child_devices.removed_children("t1", gw) == []


async def test_without_cascade_a_gateways_children_stay_as_devices(world: World) -> None:
    gw, c1, c2 = await gateway_with_children(world)
    world.broker.lines.clear()
    await world.devices.delete_object("t1", gw, by="admin")
    # Detached: they may log in by themselves again, and show why they are offline.
    assert [control.child_remove("c1"), control.child_remove("c2")] == [
        line for line in world.broker.lines if line.startswith("child-remove c")
    ]
    shown = await world.devices.get_object("t1", c1)
    assert shown.fragments["fleetgate_Connection"]["reason"] == "detached from gateway gw"
    for child in (c1, c2):
        assert await world.devices.references_of("t1", child) == []
    roots, _ = await world.devices.find_objects(
        "t1", ObjectFilter(only_roots=True), 0, 10, count=False
    )
    assert [o.id for o in roots] == [c1, c2]


async def test_a_deleted_child_is_remembered_as_removed_by_its_gateway(world: World) -> None:
    gw, c1, c2 = await gateway_with_children(world)
    await world.devices.delete_object("t1", c1, by="admin")
    await world.devices.delete_object("t1", c2, cascade=True, by="ops")
    removed = await world.stores.child_devices.removed_children("t1", gw)
    assert [(r.device_id, r.removed_by, r.how.value) for r in removed] == [
        ("c1", "admin", "deleted"), ("c2", "ops", "deleted"),
    ]  # fmt: skip


async def test_cascade_reaches_devices_and_groups_only(world: World) -> None:
    site = await world.create(name="site")
    group = await world.create(name="group", c8y_IsDeviceGroup={})
    members = [await world.create(name=f"m{i}") for i in range(2)]
    await world.stores.inventory.add_child("t1", site, "childAssets", members[0])
    await world.stores.inventory.add_child("t1", group, "childAssets", members[1])
    await world.devices.delete_object("t1", site, cascade=True)  # no device, no group
    await world.devices.get_object("t1", members[0])
    await world.devices.delete_object("t1", group, cascade=True)
    with pytest.raises(NotFound):
        await world.devices.get_object("t1", members[1])
    with pytest.raises(NotFound):
        await world.devices.delete_object("t1", 424242, cascade=True)


async def test_deleting_without_cascade_leaves_the_children(world: World) -> None:
    firmware = await world.create(type="c8y_Firmware", name="fw")
    version = await world.devices.create_child_addition(
        "t1", firmware,
        {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1", "url": "http://x"}},
    )  # fmt: skip
    await world.devices.delete_object("t1", firmware)
    assert await world.devices.references_of("t1", version.id) == []
    assert world.broker.lines == []


# --- identity -----------------------------------------------------------------------------


async def test_an_operator_pre_registers_a_device_and_the_broker_learns_it(world: World) -> None:
    pump = await world.create(name="Pump 7", type="pump", c8y_IsDevice={})
    added = await world.devices.add_external_id("t1", pump, "c8y_Serial", "pump-7")
    assert (added.tenant_id, added.managed_object_id) == ("t1", pump)
    assert world.broker.pushes == [[control.device("pump-7", "t1", True)]]
    assert (await world.devices.get_user("t1", "device_pump-7")).enabled
    assert await world.devices.external_ids_of("t1", pump) == [added]
    assert await world.devices.get_external_id("t1", "c8y_Serial", "pump-7") == added
    # Not a device: an id, but no user and nothing for the broker.
    thing = await world.create(name="thing")
    await world.devices.add_external_id("t1", thing, "c8y_Serial", "thing-1")
    await world.devices.add_external_id("t1", thing, "asset_tag", "A-1")
    assert len(world.broker.pushes) == 1
    with pytest.raises(NotFound):
        await world.devices.get_user("t1", "device_thing-1")


async def test_the_id_may_come_before_the_device_marker(world: World) -> None:
    """Pre-registration does not depend on the order: c8y_Serial first, c8y_IsDevice later."""
    valve = await world.create(name="Valve 2")
    await world.devices.add_external_id("t1", valve, "c8y_Serial", "valve-2")
    assert world.broker.pushes == []
    await world.devices.update_object("t1", valve, {"c8y_IsDevice": {}})
    assert world.broker.pushes == [[control.device("valve-2", "t1", True)]]
    assert (await world.devices.get_user("t1", "device_valve-2")).enabled
    await world.devices.update_object("t1", valve, {"name": "Valve 2b"})
    assert len(world.broker.pushes) == 1  # once a device, nothing more to tell


async def test_external_id_refusals(world: World) -> None:
    mine = await world.create(name="mine", c8y_IsDevice={})
    theirs = await world.create("t2", name="theirs", c8y_IsDevice={})
    await world.devices.add_external_id("t1", mine, "c8y_Serial", "first")

    async def refused(tenant: str, object_id: int, type: str, value: str) -> FleetgateError:
        with pytest.raises(FleetgateError) as caught:
            await world.devices.add_external_id(tenant, object_id, type, value)
        return caught.value

    twice = await refused("t1", mine, "c8y_Serial", "first")
    assert (type(twice), twice.code) == (Conflict, "identity/Duplicate")
    second = await refused("t1", mine, "c8y_Serial", "second")
    assert "has the device id first already" in str(second)
    taken = await refused("t2", theirs, "c8y_Serial", "first")
    assert (type(taken), taken.code) == (Conflict, "identity/Duplicate")
    assert "in use in another tenant" in str(taken)
    assert "'/'" in str(await refused("t1", mine, "c8y_Serial", "a/b"))
    assert "required" in str(await refused("t1", mine, "", "x"))
    missing = await refused("t1", 999, "asset_tag", "x")
    assert (type(missing), missing.code) == (NotFound, "inventory/Not Found")
    with pytest.raises(NotFound) as unknown:
        await world.devices.get_external_id("t2", "c8y_Serial", "first")
    assert unknown.value.code == "identity/Not Found"
    with pytest.raises(NotFound):
        await world.devices.external_ids_of("t1", theirs)
    # Other types are per tenant.
    await world.devices.add_external_id("t1", mine, "asset_tag", "A-1")
    await world.devices.add_external_id("t2", theirs, "asset_tag", "A-1")


async def test_deleting_a_device_id_removes_the_user_and_discards_the_session(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("hd1"))
    world.broker.pushes.clear()
    await world.devices.delete_external_id("t1", "c8y_Serial", "hd1")
    assert world.broker.pushes == [removed_device_lines("t1", "hd1")]
    assert world.broker.discarded == ["hd1"]
    with pytest.raises(NotFound):
        await world.devices.get_user("t1", "device_hd1")
    with pytest.raises(NotFound, match="External id c8y_Serial/hd1 not found"):
        await world.devices.delete_external_id("t1", "c8y_Serial", "hd1")
    # The id is free: another tenant's device may take it.
    await world.devices.connections.on_connected(connected("hd1", tenant="t2"))
    assert world.broker.resyncs == 0


async def test_released_ids_wait_until_the_broker_takes_them(world: World) -> None:
    await world.devices.connections.on_connected(connected("hd1"))
    world.broker.reachable = False
    await world.devices.delete_external_id("t1", "c8y_Serial", "hd1")
    assert world.broker.discarded == []
    assert await world.stores.registry.released(10) == ["hd1"]
    world.broker.reachable = True
    await world.devices.discard_released_sessions()
    assert world.broker.discarded == ["hd1"]
    assert await world.stores.registry.released(10) == []


# --- device users -------------------------------------------------------------------------


async def test_device_users_are_listed_apart_from_operators(world: World) -> None:
    await world.stores.users.ensure_user("t1", "admin", "hash", ADMIN_ROLES)
    for device in ("c", "a", "b"):
        await world.devices.connections.on_connected(connected(device))
    await world.devices.connections.on_connected(connected("z", tenant="t2"))
    users, total = await world.devices.list_users(
        "t1", only_devices=True, offset=1, limit=5, count=True
    )
    assert ([u.username for u in users], total) == (["device_b", "device_c"], 3)
    operators, _ = await world.devices.list_users(
        "t1", only_devices=False, offset=0, limit=5, count=False
    )
    assert [u.username for u in operators] == ["admin"]


async def test_disabling_and_deleting_a_device_user_is_pushed_to_the_broker(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("d9"))
    world.broker.pushes.clear()
    off = await world.devices.set_user_enabled("t1", "device_d9", False)
    assert not off.enabled
    assert world.broker.pushes == [[control.device("d9", "t1", False)]]
    await world.devices.delete_user("t1", "device_d9")
    assert world.broker.pushes[-1] == removed_user_lines("t1", "d9")
    with pytest.raises(NotFound) as gone:
        await world.devices.get_user("t1", "device_d9")
    assert gone.value.code == "user/Not Found"
    # A factory-reset device comes back: its user is made again, enabled.
    world.broker.pushes.clear()
    await world.devices.connections.on_connected(connected("d9", "e-2", new=False))
    assert world.broker.pushes == [[control.device("d9", "t1", True)]]


async def test_a_disabled_device_user_stays_disabled_when_the_device_reconnects(
    world: World,
) -> None:
    await world.devices.connections.on_connected(connected("d9"))
    await world.devices.set_user_enabled("t1", "device_d9", False)
    world.broker.pushes.clear()
    await world.devices.connections.on_connected(connected("d9", "e-2", new=True))
    assert world.broker.pushes == [[control.device("d9", "t1", False)]]


async def test_operator_users_change_nothing_in_the_broker(world: World) -> None:
    await world.stores.users.ensure_user("t1", "device_fake", "hash", ADMIN_ROLES)
    await world.devices.set_user_enabled("t1", "device_fake", False)
    await world.devices.delete_user("t1", "device_fake")
    assert world.broker.pushes == []
    with pytest.raises(NotFound, match="User nobody not found"):
        await world.devices.set_user_enabled("t1", "nobody", True)
    with pytest.raises(NotFound, match="User device_fake not found"):
        await world.devices.delete_user("t2", "device_fake")
