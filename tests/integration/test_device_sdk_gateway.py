"""The SDK's gateway against a real mosquitto with the fleetgate plugin.

The test plays the service, as ``test_device_sdk`` does for devices: over its own service
connection it reads what the gateway publishes for itself and for its children
(``fg/d/<gw>/…`` and ``fg/d/<gw>/c/<child>/…``), and sends commands and errors to
either. Children never log in: only the gateway has an account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from fleetgate.device import (
    BrokerAddress,
    ChildDevice,
    Command,
    Connectivity,
    DeviceClient,
    ErrorReport,
    Firmware,
    GatewayClient,
    Inventory,
    OperationJournal,
    PasswordLogin,
    ReconnectPolicy,
    Status,
)
from fleetgate.domain import broker_control as control
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic

from broker_support import (
    REPLY_TIMEOUT,
    RunningBroker,
    broker,
    device_account,
    push,
    refused,
    reset_service,
    service_client,
)
from waiting import eventually

__all__ = ["broker"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "gateway-secret"
FAST_RECONNECT = ReconnectPolicy(initial=0.05, maximum=0.2)
Message = dict[str, Any]
#: (gateway, device the message is about, leaf); the device is the gateway for its own.
Key = tuple[str, str, DeviceLeaf]


@pytest.fixture
async def control_client(broker: RunningBroker) -> AsyncIterator[aiomqtt.Client]:
    async with reset_service(broker) as client:
        yield client


class Service:
    """What gateways published, per (gateway, device, leaf) in order of arrival, and
    every topic in the order it arrived."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.arrivals: list[str] = []
        self._queues: dict[Key, asyncio.Queue[Message]] = {}

    def _queue(self, key: Key) -> asyncio.Queue[Message]:
        return self._queues.setdefault(key, asyncio.Queue())

    async def read(self) -> None:
        async for message in self.client.messages:
            topic = DeviceTopic.parse(message.topic.value)
            assert topic is not None, message.topic.value
            assert isinstance(message.payload, bytes)
            self.arrivals.append(message.topic.value)
            key = (topic.owner, topic.device_id, topic.leaf)
            self._queue(key).put_nowait(json.loads(message.payload))

    async def next(self, gateway: str, device: str, leaf: DeviceLeaf) -> Message:
        return await asyncio.wait_for(self._queue((gateway, device, leaf)).get(), REPLY_TIMEOUT)

    async def statuses(self, gateway: str, device: str, count: int) -> list[Message]:
        return [await self.next(gateway, device, DeviceLeaf.OP_STATUS) for _ in range(count)]

    def pending(self, gateway: str, device: str, leaf: DeviceLeaf) -> int:
        return self._queue((gateway, device, leaf)).qsize()

    async def send(self, gateway: str, device: str, leaf: DeviceLeaf, body: Message) -> None:
        child = None if device == gateway else gateway
        topic = str(DeviceTopic(device, leaf, child))
        await self.client.publish(topic, json.dumps(body).encode(), qos=1)


@pytest.fixture
async def service(broker: RunningBroker) -> AsyncIterator[Service]:
    async with service_client(broker) as client:
        leaves = (DeviceLeaf.OP_SYNC, DeviceLeaf.OP_STATUS, DeviceLeaf.INVENTORY)
        filters = [DeviceTopic.pattern(leaf) for leaf in leaves]
        filters += [DeviceTopic.child_pattern(leaf) for leaf in (*leaves, DeviceLeaf.CONNECTION)]
        granted = await client.subscribe([(f, 1) for f in filters])
        assert not any(refused(code) for code in granted)
        playing = Service(client)
        reader = asyncio.create_task(playing.read())
        try:
            yield playing
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


@dataclass
class Operations:
    """The application's handlers: which device ran which operation, in order."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def child(self, child: ChildDevice, command: Command) -> None:
        await self._run(child, command)

    async def own(self, gateway: DeviceClient, command: Command) -> None:
        await self._run(gateway, command)

    async def _run(self, device: ChildDevice | DeviceClient, command: Command) -> None:
        self.seen.append((device.device_id, command.id))
        await device.report(command.id, Status.EXECUTING)
        if command.description == "wait":
            await self.release.wait()


def gateway_client(broker: RunningBroker, gateway_id: str, **options: Any) -> GatewayClient:
    return GatewayClient(
        gateway_id,
        BrokerAddress("localhost", broker.config.password_port, broker.pki.ca_file),
        PasswordLogin(TENANT, PASSWORD),
        reconnect=FAST_RECONNECT,
        timeout=REPLY_TIMEOUT,
        **options,
    )


def command(op_id: str, kind: str = "c8y_Restart", **fields: Any) -> Message:
    return {"id": op_id, "type": kind, **fields}


def plc(version: str) -> Inventory:
    return Inventory(
        type="plc", supported_operations=["c8y_Restart"], firmware=Firmware("plc-fw", version)
    )


# ---------------------------------------------------------------------------------------


async def test_each_childs_commands_reach_the_handler_with_that_child(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    gw = "gw-route"
    await push(control_client, device_account(TENANT, gw, PASSWORD))
    operations = Operations()
    client = gateway_client(
        broker, gw, on_operation=operations.own, on_child_operation=operations.child
    )
    async with client:
        await client.declare_children({"route-c1": plc("1.0"), "route-c2": plc("2.0")})
        assert await service.next(gw, gw, DeviceLeaf.OP_SYNC) == {}
        assert await service.next(gw, "route-c1", DeviceLeaf.INVENTORY) == plc("1.0").payload()
        assert await service.next(gw, "route-c2", DeviceLeaf.INVENTORY) == plc("2.0").payload()

        # The same operation id for two children is two operations; the gateway has its own.
        await service.send(gw, "route-c1", DeviceLeaf.OP_CMD, command("11"))
        await service.send(gw, "route-c2", DeviceLeaf.OP_CMD, command("11"))
        await service.send(gw, gw, DeviceLeaf.OP_CMD, command("12"))
        for device, op_id in (("route-c1", "11"), ("route-c2", "11"), (gw, "12")):
            assert await service.statuses(gw, device, 2) == [
                {"id": op_id, "status": "EXECUTING"},
                {"id": op_id, "status": "SUCCESSFUL"},
            ]
        assert sorted(operations.seen) == [(gw, "12"), ("route-c1", "11"), ("route-c2", "11")]

        # Sent again once finished: answered from the journal, on that child's topic only.
        await service.send(gw, "route-c2", DeviceLeaf.OP_CMD, command("11"))
        assert await service.statuses(gw, "route-c2", 1) == [{"id": "11", "status": "SUCCESSFUL"}]
        assert service.pending(gw, "route-c1", DeviceLeaf.OP_STATUS) == 0
        assert len(operations.seen) == 3

        # A child the application never named (a command after a restart, before it
        # declared its children) goes to the same handler.
        await service.send(gw, "route-c3", DeviceLeaf.OP_CMD, command("13"))
        assert [s["status"] for s in await service.statuses(gw, "route-c3", 2)] == [
            "EXECUTING",
            "SUCCESSFUL",
        ]
        assert "route-c3" in client.children


async def test_after_the_broker_drops_it_the_gateway_restores_the_tree_before_its_sync(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    gw = "gw-back"
    account = device_account(TENANT, gw, PASSWORD)
    await push(control_client, account)
    operations = Operations()
    client = gateway_client(broker, gw, on_child_operation=operations.child)
    async with client:
        await client.declare(Inventory(type="edge-box"))
        await client.declare_children({"back-c1": plc("1.0"), "back-c2": plc("1.0")})
        await client.child("back-c2").report_connectivity(Connectivity.DISCONNECTED, "no reply")
        await client.child("back-c2").declare(plc("1.1"))  # the newest declaration wins
        first_session = [
            (gw, DeviceLeaf.OP_SYNC),
            (gw, DeviceLeaf.INVENTORY),
            ("back-c1", DeviceLeaf.INVENTORY),
            ("back-c2", DeviceLeaf.INVENTORY),
            ("back-c2", DeviceLeaf.CONNECTION),
            ("back-c2", DeviceLeaf.INVENTORY),
        ]
        for device, leaf in first_session:
            await service.next(gw, device, leaf)
        service.arrivals.clear()

        # Removing the account drops the session; the gateway retries until it is back.
        await push(control_client, control.account_remove(f"{TENANT}/device_{gw}"))
        await push(control_client, account)
        await service.next(gw, gw, DeviceLeaf.OP_SYNC)
        await eventually(lambda: client.connections == 2, "the second session")
        prefix = f"fg/d/{gw}"
        assert service.arrivals == [
            f"{prefix}/inventory",
            f"{prefix}/c/back-c1/inventory",
            f"{prefix}/c/back-c2/inventory",
            f"{prefix}/c/back-c2/connection",
            f"{prefix}/op/sync",
        ]
        assert await service.next(gw, "back-c2", DeviceLeaf.INVENTORY) == plc("1.1").payload()
        assert await service.next(gw, "back-c2", DeviceLeaf.CONNECTION) == {
            "status": "DISCONNECTED",
            "reason": "no reply",
        }

        # Subscribed to the children's commands again before the sync.
        await service.send(gw, "back-c1", DeviceLeaf.OP_CMD, command("30"))
        assert [s["status"] for s in await service.statuses(gw, "back-c1", 2)] == [
            "EXECUTING",
            "SUCCESSFUL",
        ]


async def test_a_childs_connectivity_is_reported_with_its_reason(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    gw = "gw-link"
    await push(control_client, device_account(TENANT, gw, PASSWORD))
    async with gateway_client(broker, gw) as client:
        child = client.child("link-c1")
        await child.declare(plc("1.0"))
        await child.report_connectivity(Connectivity.CONNECTED)
        await child.report_connectivity("DISCONNECTED", "Modbus timeout on " + "x" * 2000)
        assert await service.next(gw, "link-c1", DeviceLeaf.CONNECTION) == {"status": "CONNECTED"}
        lost = await service.next(gw, "link-c1", DeviceLeaf.CONNECTION)
        assert lost["status"] == "DISCONNECTED"
        assert lost["reason"].startswith("Modbus timeout on xxx")
        assert len(lost["reason"]) == 1000  # what fleetgate accepts, cut by the SDK


async def test_errors_about_a_child_reach_the_application_naming_the_child(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    gw = "gw-err"
    await push(control_client, device_account(TENANT, gw, PASSWORD))
    errors: asyncio.Queue[ErrorReport] = asyncio.Queue()
    async with gateway_client(broker, gw, on_error=errors.put_nowait):
        await service.next(gw, gw, DeviceLeaf.OP_SYNC)
        body = {"error": "devices/notAChild", "message": "err-c1 is not your child"}
        await service.send(gw, "err-c1", DeviceLeaf.ERROR, {**body, "topic": "x"})
        await service.send(
            gw, gw, DeviceLeaf.ERROR, {"error": "inventory/badRequest", "message": "m"}
        )
        about_child = await asyncio.wait_for(errors.get(), REPLY_TIMEOUT)
        about_gateway = await asyncio.wait_for(errors.get(), REPLY_TIMEOUT)
    assert about_child == ErrorReport(
        "devices/notAChild", "err-c1 is not your child", "x", None, child="err-c1"
    )
    assert about_gateway == ErrorReport("inventory/badRequest", "m")


async def test_a_status_not_sent_before_a_restart_is_sent_when_the_command_comes_again(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service, tmp_path: Path
) -> None:
    gw = "gw-journal"
    account = device_account(TENANT, gw, PASSWORD)
    await push(control_client, account)
    operations = Operations()
    journal = tmp_path / "journal.jsonl"
    first = gateway_client(
        broker, gw, on_child_operation=operations.child, journal=OperationJournal(path=journal)
    )
    async with first:
        await service.next(gw, gw, DeviceLeaf.OP_SYNC)
        await service.send(gw, "jr-c1", DeviceLeaf.OP_CMD, command("40", description="wait"))
        assert await service.statuses(gw, "jr-c1", 1) == [{"id": "40", "status": "EXECUTING"}]
        # The gateway loses its session, then its operation ends: the status is written
        # to the journal but cannot be published before the process stops.
        await push(control_client, control.account_remove(f"{TENANT}/device_{gw}"))
        await eventually(lambda: not first.connected, "the session dropped")
        operations.release.set()
        await eventually(
            lambda: first.journal.final("40", device="jr-c1") is not None, "the journal"
        )
    assert service.pending(gw, "jr-c1", DeviceLeaf.OP_STATUS) == 0

    await push(control_client, account)
    operations.release.clear()
    second = gateway_client(
        broker, gw, on_child_operation=operations.child, journal=OperationJournal(path=journal)
    )
    async with second:
        await service.next(gw, gw, DeviceLeaf.OP_SYNC)
        # The service's answer to the sync: the child's operation is still open.
        await service.send(gw, "jr-c1", DeviceLeaf.OP_CMD, command("40", description="wait"))
        assert await service.statuses(gw, "jr-c1", 1) == [{"id": "40", "status": "SUCCESSFUL"}]
    assert operations.seen == [("jr-c1", "40")]  # carried out once, across the restart
