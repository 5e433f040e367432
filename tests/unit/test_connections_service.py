"""Gateways' children's online and offline, and their logins, as the connections service
applies them (services/connections.py on in-memory ports): a gateway's events take its
children with it, a connectivity report moves one child, reconcile makes them all true,
an attachment or detachment is pushed to the broker in one go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import ConnectivityReport, DeviceError
from fleetgate.services.broker import removed_device_lines
from fleetgate.services.devices import Devices

from fakes import RecordingBroker, unavailable
from memory import ManualClock, MemoryStores

FP = "ab" * 20


class PushingBroker(RecordingBroker):
    """Remembers each push apart."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[list[str]] = []

    async def push(self, lines: list[str]) -> None:
        self.pushes.append(list(lines))
        await super().push(lines)


@dataclass
class World:
    stores: MemoryStores
    clock: ManualClock
    broker: PushingBroker
    devices: Devices

    async def object_of(self, device_id: str, tenant: str = "t1") -> int:
        found = await self.stores.identity.get(tenant, "c8y_Serial", device_id)
        assert found is not None, device_id
        return found.managed_object_id

    async def shown(self, device_id: str, tenant: str = "t1") -> dict[str, Any]:
        """The device's fleetgate_Connection (its status is c8y_Connection's)."""
        mo = await self.devices.get_object(tenant, await self.object_of(device_id, tenant))
        fragment: dict[str, Any] = mo.fragments["fleetgate_Connection"]
        assert mo.fragments["c8y_Connection"] == {"status": fragment["status"]}
        return fragment

    async def gateway(self, gateway: str, *children: str, tenant: str = "t1") -> None:
        """A registered gateway (not connected) with these children attached."""
        at = self.clock()
        for device in (gateway, *children):
            await self.stores.registry.register(
                tenant, device, fragments={"c8y_IsDevice": {}}, connection={},
                connection_id=None, at=at,
            )  # fmt: skip
        for child in children:
            assert await self.stores.inventory.add_child(
                tenant, await self.object_of(gateway, tenant), "childDevices",
                await self.object_of(child, tenant),
            )  # fmt: skip


@pytest.fixture
def world() -> World:
    clock = ManualClock()
    stores = MemoryStores.make("t1", "t2", clock=clock)
    broker = PushingBroker()
    devices = Devices(
        stores.inventory,
        stores.identity,
        stores.users,
        stores.registry,
        broker,
        clock,
        is_transient=unavailable,
        child_connections=stores.connections,
    )
    return World(stores, clock, broker, devices)


def online(gateway: str = "gw-1") -> dict[str, str]:
    return {"status": "CONNECTED", "gateway": gateway}


def offline(reason: str, gateway: str = "gw-1") -> dict[str, str]:
    return {"status": "DISCONNECTED", "gateway": gateway, "reason": reason}


def connected(device: str, connection: str, tenant: str = "t1") -> control.Connected:
    return control.Connected(device, tenant, FP, False, connection)


def report(child: str, connected: bool, reason: str | None = None, gateway: str = "gw-1"):
    return ConnectivityReport(child, gateway, connected, reason)


# --- the gateway's connection -------------------------------------------------------------


async def test_a_gateway_takes_its_children_with_it_when_it_leaves_and_comes_back(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1", "c2", "c3")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1")])
    assert [await world.shown(c) for c in ("c1", "c2", "c3")] == [online()] * 3
    # The gateway reports one child lost, then leaves: all go, each with the true reason.
    assert await connections.on_connectivity([report("c2", False, "no answer on RS-485")]) == []
    await connections.on_events([control.Disconnected("gw-1", "t1", "e-1")])
    assert [await world.shown(c) for c in ("c1", "c2", "c3")] == [
        offline("gateway gw-1 disconnected")
    ] * 3
    # Back: every child but the one it reported lost.
    world.clock.advance(60)
    await connections.on_events([connected("gw-1", "e-2")])
    assert await world.shown("c1") == online()
    assert await world.shown("c2") == offline("reported by gateway gw-1: no answer on RS-485")
    assert await world.shown("c3") == online()
    mo = await world.devices.get_object("t1", await world.object_of("c1"))
    assert mo.fragments["c8y_Availability"]["lastMessage"] == "2026-03-01T12:01:00.000Z"


async def test_a_late_disconnect_of_the_gateways_older_connection_changes_nothing(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1"), connected("gw-1", "e-2")])
    await connections.on_events([control.Disconnected("gw-1", "t1", "e-1")])
    assert await world.shown("c1") == online()


# --- what the gateway reports -------------------------------------------------------------


async def test_a_connectivity_report_moves_one_child_with_the_gateways_reason(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1", "c2")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1")])
    lost = report("c1", False, "BLE link lost")
    assert await connections.on_connectivity([lost]) == []
    assert await world.shown("c1") == offline("reported by gateway gw-1: BLE link lost")
    assert await world.shown("c2") == online()
    # Redelivered: nothing more happens.
    before = await world.devices.get_object("t1", await world.object_of("c1"))
    world.clock.advance(5)
    assert await connections.on_connectivity([lost]) == []
    assert await world.devices.get_object("t1", await world.object_of("c1")) == before
    assert await connections.on_connectivity([report("c1", True)]) == []
    assert await world.shown("c1") == online()


async def test_a_report_about_a_device_that_is_not_the_gateways_child_is_refused(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1")
    await world.gateway("gw-2", "c2")
    await world.gateway("gw-t2", "c-t2", tenant="t2")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1")])
    refused = [report("c2", False), report("nobody", False), report("c-t2", False)]
    errors = await connections.on_connectivity([*refused, report("c1", False)])
    assert errors == [
        DeviceError(
            r.device_id,
            "devices/notAChild",
            f"device {r.device_id} is not a child of gateway gw-1",
            f"fg/d/gw-1/c/{r.device_id}/connection",
            gateway="gw-1",
        )
        for r in refused
    ]
    assert errors[0].reply_topic == "fg/d/gw-1/c/c2/error"
    assert await world.shown("c1") == offline("reported by gateway gw-1")
    untouched = await world.devices.get_object("t1", await world.object_of("c2"))
    assert "fleetgate_Connection" not in untouched.fragments


async def test_a_report_while_the_database_is_away_is_retried_by_the_caller(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1")

    async def away(*_: object) -> list[ConnectivityReport]:
        raise ConnectionRefusedError("the database is away")

    world.stores.connections.report = away  # type: ignore[method-assign]
    with pytest.raises(ConnectionRefusedError):
        await world.devices.connections.on_connectivity([report("c1", False)])


# --- attaching and detaching ------------------------------------------------------------


async def test_attachments_reach_the_broker_in_one_push_and_the_children_their_state(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1", "c2")
    await world.gateway("gw-2")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1")])
    world.broker.pushes.clear()
    assert await world.stores.inventory.remove_child(
        "t1", await world.object_of("gw-1"), "childDevices", await world.object_of("c2")
    )
    await connections.children_changed("t1", [("c1", "gw-1"), ("c2", None)])
    assert world.broker.pushes == [[control.child("c1", "gw-1"), control.child_remove("c2")]]
    assert await world.shown("c1") == online()
    assert await world.shown("c2") == {
        "status": "DISCONNECTED",
        "reason": "detached from gateway gw-1",
    }
    # Moved to another gateway (offline): it follows that one.
    assert await world.stores.inventory.add_child(
        "t1", await world.object_of("gw-2"), "childDevices", await world.object_of("c2")
    )
    await connections.children_changed("t1", [("c2", "gw-2")])
    assert await world.shown("c2") == offline("gateway gw-2 disconnected", "gw-2")
    assert world.broker.pushes[-1] == [control.child("c2", "gw-2")]
    await connections.children_changed("t1", [])
    assert len(world.broker.pushes) == 2


async def test_an_attached_childs_own_late_events_do_not_make_it_a_plain_device(
    world: World,
) -> None:
    """It was connected by itself when it was attached: the broker closed that session,
    whose events may come after the attachment."""
    await world.gateway("gw-1", "c1")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1")])
    await connections.on_events([connected("c1", "own-1")])
    assert await world.shown("c1") == online()
    await connections.on_events([control.Disconnected("c1", "t1", "own-1")])
    assert await world.shown("c1") == online()
    assert ("t1", "c1") not in await world.stores.inventory.connected_devices()


async def test_the_full_state_holds_every_attached_child(world: World) -> None:
    await world.gateway("gw-1", "c2", "c1")
    await world.gateway("gw-t2", "c3", tenant="t2")
    assert await world.devices.connections.broker_state() == [
        control.child("c1", "gw-1"),
        control.child("c2", "gw-1"),
        control.child("c3", "gw-t2"),
    ]


async def test_a_deleted_child_is_no_child_for_the_broker_any_more(world: World) -> None:
    await world.gateway("gw-1", "c1")
    world.broker.pushes.clear()
    await world.devices.delete_object("t1", await world.object_of("c1"))
    assert world.broker.pushes == [removed_device_lines("t1", "c1")]
    assert control.child_remove("c1") in world.broker.pushes[0]


# --- reconcile ------------------------------------------------------------------------


async def test_reconcile_makes_every_child_true(world: World) -> None:
    await world.gateway("gw-1", "c1")
    await world.gateway("gw-2", "c2")
    connections = world.devices.connections
    await connections.on_events([connected("gw-1", "e-1"), connected("gw-2", "e-2")])
    await connections.on_connectivity([report("c2", False, "asleep", "gw-2")])
    # The service was away: gw-1 left, gw-2 came back on a new connection.
    await connections.reconcile((control.LiveClient("gw-2", "t1", FP, "e-9"),))
    assert await world.shown("c1") == offline("gateway gw-1 disconnected")
    assert await world.shown("c2") == offline("reported by gateway gw-2: asleep", "gw-2")
    await connections.on_connectivity([report("c2", True, gateway="gw-2")])
    await connections.reconcile(
        (control.LiveClient("gw-1", "t1", FP, "e-10"), control.LiveClient("gw-2", "t1", FP, "e-9"))
    )
    assert [await world.shown(c) for c in ("c1", "c2")] == [online("gw-1"), online("gw-2")]


async def test_without_a_childrens_store_devices_alone_still_work() -> None:
    stores = MemoryStores.make("t1")
    devices = Devices(
        stores.inventory, stores.identity, stores.users, stores.registry, RecordingBroker(),
        is_transient=unavailable,
    )  # fmt: skip
    await devices.connections.on_events([connected("d1", "e-1")])
    await devices.connections.reconcile(())
    assert await devices.connections.broker_state() == []
    with pytest.raises(RuntimeError, match="children's store"):
        await devices.connections.on_connectivity([report("c1", False)])


async def test_a_pair_the_plugin_would_refuse_does_not_keep_the_state_from_the_broker(
    world: World,
) -> None:
    await world.gateway("gw-1", "c1")

    async def attached() -> list[tuple[str, str]]:
        return [("c1", "gw-1"), ("bad/id", "gw-1"), ("same", "same")]

    world.stores.connections.attached = attached  # type: ignore[method-assign]
    assert await world.devices.connections.broker_state() == [control.child("c1", "gw-1")]
