"""Disabling and enabling a device on in-memory ports (decision 0012): what the broker is
pushed, the device user following, operations held back and dispatched on enable, the
refusals; what the broker's full state says of a disabled device; and a gateway's
messages for a disabled child refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.devices import NO_PASSWORD, registration_fragments
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.users import Role, User
from fleetgate.services.binaries import Binaries
from fleetgate.services.broker import device_lines, full_state
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.enablement import DeviceEnablement
from fleetgate.services.operations import FileSigning, OperationFeed, Operations

from fakes import (
    FakeChildren,
    FakeDeadLetters,
    FakeOperations,
    InMemoryUsers,
    RecordingBroker,
    RecordingPublisher,
    unavailable,
)
from memory import ManualClock, MemoryStores

BASE = "http://fleetgate.test"
NOW = datetime(2026, 12, 2, tzinfo=UTC)


@dataclass
class World:
    stores: MemoryStores
    broker: RecordingBroker
    link: RecordingPublisher
    operations: Operations
    enablement: DeviceEnablement

    async def device(self, serial: str) -> int:
        registered = await self.stores.registry.register(
            "t1",
            serial,
            fragments=registration_fragments(None),
            connection={},
            connection_id=f"c-{serial}",
            at=NOW,
        )
        await self.stores.inventory.update(
            "t1", registered.object_id, {}, {"c8y_SupportedOperations": ["c8y_Restart"]}
        )
        return registered.object_id

    def commands(self, topic: str) -> list[object]:
        return [c["id"] for c in self.link.take(topic)]


@pytest.fixture
def world() -> World:
    stores = MemoryStores.make("t1", "t2", base_url=BASE, clock=ManualClock())
    broker, link = RecordingBroker(), RecordingPublisher()
    operations = Operations(
        stores.operations,
        Binaries(stores.binaries, stores.files),
        link,
        FileSigning(b"s" * 32, BASE, 600),
        OperationFeed(),
    )
    enablement = DeviceEnablement(
        stores.enablement, stores.inventory, broker, operations, clock=lambda: NOW
    )
    return World(stores, broker, link, operations, enablement)


async def test_disabling_pushes_the_device_disabled_and_its_user_follows(world: World) -> None:
    object_id = await world.device("d1")
    shown = await world.enablement.disable("t1", object_id)
    assert shown.fragments["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
    assert world.broker.lines == [control.device("d1", "t1", False)]
    found = await world.stores.users.find_user("t1", "device_d1")
    assert found is not None
    assert not found[1].enabled
    await world.enablement.enable("t1", object_id)
    assert world.broker.lines[-1] == control.device("d1", "t1", True)
    found = await world.stores.users.find_user("t1", "device_d1")
    assert found is not None
    assert found[1].enabled


async def test_a_disabled_devices_operations_wait_and_go_out_once_enabled(world: World) -> None:
    object_id = await world.device("d2")
    await world.enablement.disable("t1", object_id)
    op = await world.operations.create("t1", {"deviceId": object_id, "c8y_Restart": {}})
    assert op.held
    assert world.commands("fg/d/d2/op/cmd") == []
    await world.operations.dispatch_undispatched()
    await world.operations.dispatch(await world.stores.operations.open_for(["d2"]))
    assert world.commands("fg/d/d2/op/cmd") == []
    await world.enablement.enable("t1", object_id)
    assert world.commands("fg/d/d2/op/cmd") == [str(op.id)]
    assert await world.stores.operations.undispatched(10) == []


async def test_a_device_user_switched_by_an_operator_switches_its_device(world: World) -> None:
    object_id = await world.device("d3")
    user = await world.enablement.set_device_user_enabled("t1", "device_d3", False)
    assert user is not None
    assert not user.enabled
    found = await world.stores.inventory.get("t1", object_id)
    assert found is not None
    assert found.fragments["fleetgate_Lifecycle"]["status"] == "DISABLED"
    assert await world.enablement.set_device_user_enabled("t1", "admin", False) is None
    assert await world.enablement.set_device_user_enabled("t1", "device_nobody", False) is None


async def test_what_is_no_device_of_the_tenant_is_refused(world: World) -> None:
    object_id = await world.device("d4")
    with pytest.raises(NotFound):
        await world.enablement.disable("t2", object_id)
    thing = await world.stores.inventory.create(
        "t1", name="thing", type=None, owner=None, fragments={}
    )
    with pytest.raises(ValidationFailed, match="not a device"):
        await world.enablement.disable("t1", thing.id)
    assert world.broker.lines == []


async def test_a_device_without_a_user_is_known_to_the_broker_only_while_disabled(
    world: World,
) -> None:
    made = await world.stores.inventory.create(
        "t1", name="pre", type=None, owner=None, fragments={"c8y_IsDevice": {}}
    )
    await world.stores.identity.add("t1", made.id, "c8y_Serial", "pre-1")
    await world.enablement.disable("t1", made.id)
    assert world.broker.lines == [control.device("pre-1", "t1", False)]
    # A user made for it now (its first login, a credential) is made disabled.
    assert await world.stores.registry.ensure_user("t1", "pre-1") == (True, False)
    await world.enablement.enable("t1", made.id)
    assert world.broker.lines[-1] == control.device("pre-1", "t1", True)


def _user(device_id: str, password_hash: str = NO_PASSWORD, enabled: bool = True) -> User:
    return User("t1", f"device_{device_id}", password_hash, enabled, frozenset({Role.DEVICE}), NOW)


def test_a_disabled_password_device_loses_its_account_at_the_broker() -> None:
    user = _user("pw", "$scrypt$fake")
    assert device_lines(user, device_disabled=True) == [
        control.device("pw", "t1", False),
        control.account_remove("t1/device_pw"),
    ]
    assert device_lines(user)[0] == control.device("pw", "t1", True)
    assert device_lines(_user("pw", enabled=False))[0] == control.device("pw", "t1", False)


async def test_the_full_state_pushes_disabled_devices_disabled() -> None:
    users = InMemoryUsers()
    for name in ("on", "off"):
        users.users[("t1", f"device_{name}")] = _user(name)

    async def disabled() -> dict[str, str]:
        return {"off": "t1", "child": "t2"}

    lines = await full_state(users, disabled=disabled)
    assert control.device("off", "t1", False) in lines
    assert control.device("off", "t1", True) not in lines
    assert control.device("on", "t1", True) in lines
    assert lines[-1] == control.device("child", "t2", False)  # no user: disabled all the same


async def test_a_gateways_messages_for_its_disabled_child_are_refused() -> None:
    ops, letters, replies = FakeOperations(), FakeDeadLetters(), RecordingPublisher()
    children = FakeChildren(attached=[("ch", "gw"), ("ok", "gw")], disabled=[("ch", "gw")])

    async def declare(*_: object) -> bool:
        raise AssertionError("no device declares itself here")

    messages = DeviceMessages(
        ops, declare, letters, replies, children=children, is_transient=unavailable
    )
    batch = [
        Incoming(f"fg/d/gw/c/{child}/{leaf}", json.dumps(body).encode())
        for child in ("ch", "ok")
        for leaf, body in (
            ("inventory", {"type": "plc"}),
            ("op/status", {"id": "5", "status": "EXECUTING"}),
            ("op/sync", {}),
            ("connection", {"status": "CONNECTED"}),
        )
    ]
    await messages.handle(batch)
    assert [d.device_id for d in children.declared] == ["ok"]
    assert [r.device_id for r in children.reached] == ["ok"]
    assert [r.device_id for r in ops.applied] == ["ok"]
    assert [r.device_id for r in ops.synced] == ["ok"]
    refused = [body for topic, body in replies.messages if topic == "fg/d/gw/c/ch/error"]
    assert [r["error"] for r in refused] == ["devices/childDisabled"] * 4
    assert {letter.topic for letter in letters.letters} == {m.topic for m in batch[:4]}
    assert all(letter.gateway == "gw" for letter in letters.letters)
