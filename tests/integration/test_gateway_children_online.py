"""Gateways' children online and offline, and their logins, end to end: the service's
broker bridge and connections service (wired as ``fleetgate.app`` wires them) on a real
PostgreSQL, a real mosquitto with the plugin, devices with real certificates and
passwords (docs/decisions/0008-gateway-children.md, docs/protocol.md "Online and offline").

A gateway's disconnect takes all its children offline with the reason and its reconnect
brings them back (but for one it reported lost); a connectivity report moves one child; a
report about a device that is not the gateway's child is refused; a restarted service
reconciles every child from the broker's live sessions; an attached child cannot log in by
itself (its live session ends when it is attached), a detached one can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.db.connections import PgChildConnections
from fleetgate.db.devices import PgDevices, set_device_password
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import ConnectivityReport
from fleetgate.domain.passwords import hash_password
from fleetgate.mqtt.bridge import BrokerBridge
from fleetgate.services.broker import full_state
from fleetgate.services.devices import Devices

from broker_support import (
    FAST_HASH,
    TrustedBroker,
    can_connect,
    connected,
    dropped,
    password_device_client,
    trusted_broker,
    wait_for_log,
)
from conftest import seed_tenants
from waiting import eventually

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "child-secret"
WAIT = 30.0


Trust = TrustedBroker


async def trust_lines(trust: Trust) -> list[str]:
    """The trust store's part of the plugin's state: one auto-registering CA."""
    return [trust.ca_line()]


@pytest.fixture(scope="module")
async def trust() -> AsyncIterator[Trust]:
    async with trusted_broker("online children CA", TENANT) as running:
        yield running


@dataclass
class Service:
    """The service's broker side, as ``fleetgate.app`` composes it."""

    devices: Devices
    bridge: BrokerBridge


@contextlib.asynccontextmanager
async def service(pool: asyncpg.Pool, trust: Trust) -> AsyncIterator[Service]:
    """A service (bridge and connections) until the block ends: then it is gone, as a
    stopped process is, and what it learned lives only in the database."""
    settings = MqttSettings(
        service_port=trust.broker.config.service_port,
        service_password=SecretStr(trust.broker.service_password),
        reconnect_min=0.05,
        reconnect_max=0.2,
    )
    bridge = BrokerBridge(settings, is_transient=is_transient)
    devices = Devices(
        PgInventory(pool),
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        bridge,
        is_transient=is_transient,
        child_connections=PgChildConnections(pool),
    )
    reconciled = asyncio.Event()

    async def reconcile(live: tuple[control.LiveClient, ...]) -> None:
        await devices.connections.reconcile(live)
        reconciled.set()  # the service is ready: its state is the broker's

    bridge.wire(
        state=partial(
            full_state, PgUsers(pool), partial(trust_lines, trust), devices.connections.broker_state
        ),
        on_event=devices.connections.on_events,
        on_live=reconcile,
        before_sync=devices.discard_released_sessions,
        handlers={},
    )
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.wait_for(reconciled.wait(), WAIT)
        yield Service(devices, bridge)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class World:
    pool: asyncpg.Pool
    trust: Trust

    async def shown(self, device_id: str) -> dict[str, Any] | None:
        """fleetgate_Connection of the device (its status checked against c8y_Connection)."""
        row = await self.pool.fetchrow(
            "SELECT m.fragments -> 'c8y_Connection' ->> 'status' AS status,"
            " m.fragments -> 'fleetgate_Connection' AS shown"
            " FROM managed_object m JOIN external_id e ON e.managed_object_id = m.id"
            " WHERE e.type = 'c8y_Serial' AND e.value = $1",
            device_id,
        )
        if row is None or row["shown"] is None:
            return None
        shown: dict[str, Any] = json.loads(row["shown"])
        assert shown["status"] == row["status"], (device_id, shown, row["status"])
        return shown

    async def until_shown(self, device_id: str, expected: dict[str, Any]) -> None:
        async def check() -> bool:
            return await self.shown(device_id) == expected

        await eventually(check, f"{device_id} to show {expected}", timeout=WAIT)

    async def device(self, device_id: str) -> int:
        """A registered device with no connection (a child, or one to be)."""
        registered = await PgDevices(self.pool).register(
            TENANT, device_id, fragments={"c8y_IsDevice": {}}, connection={},
            connection_id=None, at=await self.pool.fetchval("SELECT now()"),
        )  # fmt: skip
        return registered.object_id

    async def object_of(self, device_id: str) -> int:
        found = await PgIdentity(self.pool).device(device_id)
        assert found is not None
        return found.managed_object_id

    async def attach(self, gateway: str, *children: str) -> None:
        """What the REST attach path commits (the service is told separately)."""
        for child in children:
            assert await PgInventory(self.pool).add_child(
                TENANT, await self.object_of(gateway), "childDevices", await self.object_of(child)
            )

    async def detach(self, gateway: str, child: str) -> None:
        assert await PgInventory(self.pool).remove_child(
            TENANT, await self.object_of(gateway), "childDevices", await self.object_of(child)
        )


@pytest.fixture
async def world(pool: asyncpg.Pool, trust: Trust) -> World:
    await seed_tenants(pool, TENANT)
    return World(pool, trust)


def online(gateway: str = "gw-1") -> dict[str, str]:
    return {"status": "CONNECTED", "gateway": gateway}


def offline(reason: str, gateway: str = "gw-1") -> dict[str, str]:
    return {"status": "DISCONNECTED", "gateway": gateway, "reason": reason}


GATEWAY_AWAY = offline("gateway gw-1 disconnected")


# ---------------------------------------------------------------------------------------


async def test_a_gateways_children_go_and_come_back_with_it(world: World, trust: Trust) -> None:
    async with service(world.pool, trust) as running:
        connections = running.devices.connections
        async with trust.client("gw-1"):
            await world.until_shown("gw-1", {"status": "CONNECTED"})
            for child in ("c1", "c2", "c3"):
                await world.device(child)
            await world.attach("gw-1", "c1", "c2", "c3")
            await connections.children_changed(TENANT, [(c, "gw-1") for c in ("c1", "c2", "c3")])
            for child in ("c1", "c2", "c3"):
                assert await world.shown(child) == online()
            # The gateway reports one child lost: only that one goes, with its words.
            lost = ConnectivityReport("c2", "gw-1", False, "no answer on RS-485")
            assert await connections.on_connectivity([lost]) == []
            assert await world.shown("c2") == offline(
                "reported by gateway gw-1: no answer on RS-485"
            )
            assert await world.shown("c1") == online()
        # The gateway's connection ends: every child goes with it, with that reason.
        for child in ("c1", "c2", "c3"):
            await world.until_shown(child, GATEWAY_AWAY)
        assert await world.shown("gw-1") == {
            "status": "DISCONNECTED",
            "reason": "connection closed",
        }
        async with trust.client("gw-1"):
            # Back: all but the one it reported lost.
            await world.until_shown("c1", online())
            await world.until_shown("c3", online())
            await world.until_shown("c2", offline("reported by gateway gw-1: no answer on RS-485"))
            assert await connections.on_connectivity([ConnectivityReport("c2", "gw-1", True)]) == []
            assert await world.shown("c2") == online()


async def test_a_report_about_a_device_that_is_not_the_gateways_child_is_refused(
    world: World, trust: Trust
) -> None:
    async with service(world.pool, trust) as running, trust.client("gw-1"):
        await world.until_shown("gw-1", {"status": "CONNECTED"})
        await world.device("plain")
        errors = await running.devices.connections.on_connectivity(
            [ConnectivityReport("plain", "gw-1", False, "gone")]
        )
        assert [(e.error, e.message, e.reply_topic) for e in errors] == [
            (
                "devices/notAChild",
                "device plain is not a child of gateway gw-1",
                "fg/d/gw-1/c/plain/error",
            )
        ]
        assert await world.shown("plain") is None
        assert await world.pool.fetchval("SELECT count(*) FROM child_connection") == 0


async def test_a_restarted_service_reconciles_every_child(world: World, trust: Trust) -> None:
    for child in ("c1", "c2"):
        await world.device(child)
    async with service(world.pool, trust) as running, trust.client("gw-1"):
        await world.until_shown("gw-1", {"status": "CONNECTED"})
        await world.attach("gw-1", "c1", "c2")
        await running.devices.connections.children_changed(TENANT, [("c1", "gw-1"), ("c2", "gw-1")])
        assert await world.shown("c1") == online()
    # The service is away when the gateway leaves: nobody hears it.
    async with trust.client("gw-1"):
        pass
    assert await world.shown("c1") == online()  # the database does not know yet
    async with service(world.pool, trust):
        assert await world.shown("c1") == GATEWAY_AWAY
        assert await world.shown("c2") == GATEWAY_AWAY
    # The service is away when the gateway comes back: the next one finds it live.
    async with trust.client("gw-1"), service(world.pool, trust):
        assert await world.shown("c1") == online()
        assert await world.shown("c2") == online()


async def test_an_attached_child_cannot_log_in_by_itself_and_a_detached_one_can(
    world: World, trust: Trust
) -> None:
    broker = trust.broker
    await world.device("gw-1")
    await world.device("pw-child")
    async with world.pool.acquire() as conn:
        await set_device_password(conn, TENANT, "pw-child", hash_password(PASSWORD, **FAST_HASH))
    async with service(world.pool, trust) as running:
        connections = running.devices.connections
        # Connected by itself (its CA auto-registers it) when it is attached: it loses
        # that session at once, and shows its gateway's state from then on.
        async with connected(trust.client("cert-child")) as direct:
            await world.until_shown("cert-child", {"status": "CONNECTED"})
            await world.attach("gw-1", "cert-child", "pw-child")
            await connections.children_changed(
                TENANT, [("cert-child", "gw-1"), ("pw-child", "gw-1")]
            )
            assert await dropped(direct)
        assert await wait_for_log(
            broker,
            "fleetgate: kicking client 'cert-child': device cert-child is a child of gateway"
            " gw-1: it connects through its gateway",
        )
        await world.until_shown("cert-child", GATEWAY_AWAY)
        assert ("t1", "cert-child") not in await PgInventory(world.pool).connected_devices()
        # Neither logs in by itself while attached.
        assert not await can_connect(trust.client("cert-child"))
        assert not await can_connect(password_device_client(broker, TENANT, "pw-child", PASSWORD))
        assert await wait_for_log(
            broker,
            f"fleetgate: refused client 'pw-child' username '{TENANT}/device_pw-child': device"
            " pw-child is a child of gateway gw-1: it connects through its gateway",
        )
        # Detached: both may log in by themselves again.
        await world.detach("gw-1", "cert-child")
        await world.detach("gw-1", "pw-child")
        await connections.children_changed(TENANT, [("cert-child", None), ("pw-child", None)])
        assert await world.shown("cert-child") == {
            "status": "DISCONNECTED",
            "reason": "detached from gateway gw-1",
        }
        async with trust.client("cert-child"):
            await world.until_shown("cert-child", {"status": "CONNECTED"})
        assert await can_connect(password_device_client(broker, TENANT, "pw-child", PASSWORD))


async def test_a_child_attached_while_the_service_was_away_loses_its_session_at_the_next_sync(
    world: World, trust: Trust
) -> None:
    await world.device("gw-1")
    async with connected(trust.client("late-child")) as direct:
        async with service(world.pool, trust):
            await world.until_shown("late-child", {"status": "CONNECTED"})
        await world.attach("gw-1", "late-child")  # committed while no service runs
        # The next service's full state holds the child: its session ends.
        async with service(world.pool, trust):
            assert await dropped(direct)
            await world.until_shown("late-child", GATEWAY_AWAY)
    assert not await can_connect(trust.client("late-child"))
