"""Two device links in the shared subscription on a real mosquitto (decision 0018): the
broker deals messages to both; when one dies holding messages it did not acknowledge,
and while the broker goes on dealing it its share, another drains its session — every
message is handled, none lost — and afterwards the survivor gets everything."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
import pytest
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.domain.device_messages import Incoming
from fleetgate.mqtt import device_link
from fleetgate.mqtt.device_link import DeviceLink
from integration.broker_support import running_broker, service_client

from waiting import eventually

pytestmark = pytest.mark.integration

FILTERS = ["fg/d/+/inventory"]


async def publish(client: aiomqtt.Client, numbers: range) -> None:
    for n in numbers:
        await client.publish(f"fg/d/d-{n}/inventory", str(n).encode(), qos=1)


async def test_a_drain_waits_for_what_it_put_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message the handler cannot take yet (a device still being registered) waits
    ``DEFER_DELAY``; a drain must not end meanwhile, or the session it drops takes the
    message with it."""
    monkeypatch.setattr(device_link, "DEFER_DELAY", 3 * device_link.DRAIN_QUIET)
    async with running_broker() as broker:
        settings = MqttSettings(
            service_port=broker.config.service_port,
            service_password=SecretStr(broker.service_password),
        )
        orphan = DeviceLink(settings, FILTERS, _never, client_id="fleetgate:t:2")
        task = asyncio.create_task(orphan.run())
        await asyncio.wait_for(orphan.ready.wait(), 30)
        task.cancel()  # a member that is gone: the broker queues its share
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with service_client(broker) as publisher:
            await publish(publisher, range(5))
        handled: list[str] = []

        async def later_once(batch: list[Incoming]) -> list[Incoming]:
            handled.extend(m.payload.decode() for m in batch if m.deferrals)
            return [m for m in batch if not m.deferrals]

        drainer = DeviceLink(settings, FILTERS, later_once, client_id="fleetgate:t:2")
        assert await asyncio.wait_for(drainer.drain(), 60) == 5
        assert sorted(handled) == [str(n) for n in range(5)]


async def _never(batch: list[Incoming]) -> list[Incoming]:
    await asyncio.Event().wait()
    return []


async def test_a_dead_links_session_is_drained_by_another() -> None:
    async with running_broker() as broker:
        settings = MqttSettings(
            service_port=broker.config.service_port,
            service_password=SecretStr(broker.service_password),
            reconnect_min=0.5,
            reconnect_max=1.0,
        )
        held: list[str] = []
        handled: list[str] = []
        drained: list[str] = []

        async def never_commits(batch: list[Incoming]) -> list[Incoming]:
            held.extend(m.payload.decode() for m in batch)
            await asyncio.Event().wait()  # dies before committing: nothing acknowledged
            return []

        def recording(into: list[str]):  # type: ignore[no-untyped-def]
            async def handle(batch: list[Incoming]) -> list[Incoming]:
                into.extend(m.payload.decode() for m in batch)
                return []

            return handle

        dying = DeviceLink(settings, FILTERS, never_commits, client_id="fleetgate:t:1")
        alive = DeviceLink(settings, FILTERS, recording(handled), client_id="fleetgate:t")
        dying_task = asyncio.create_task(dying.run())
        alive_task = asyncio.create_task(alive.run())
        try:
            await asyncio.wait_for(dying.ready.wait(), 30)
            await asyncio.wait_for(alive.ready.wait(), 30)
            async with service_client(broker) as publisher:
                await publish(publisher, range(50))

                # The dying link handles one batch and hangs in it: the rest of its share
                # waits in its queue, received and unacknowledged as well.
                def dealt() -> bool:
                    return len(held) + dying._queue.qsize() + len(handled) == 50

                await eventually(dealt, "all 50 dealt")
                assert held, "the broker dealt the dying link its share"
                dying_task.cancel()  # it leaves holding what it never acknowledged
                with contextlib.suppress(asyncio.CancelledError):
                    await dying_task
                await publish(publisher, range(50, 100))  # its share queues in its session
                drainer = DeviceLink(
                    settings, FILTERS, recording(drained), client_id="fleetgate:t:1"
                )
                count = await asyncio.wait_for(drainer.drain(), 60)
                await eventually(
                    lambda: set(handled) | set(drained) == {str(n) for n in range(100)},
                    "every message handled by the survivor or the drain",
                )
                assert count == len(drained)
                assert set(held) <= set(drained)  # what the dead one held came back
                # The drained session is gone: the survivor now gets everything.
                before = len(handled)
                await publish(publisher, range(100, 120))
                await eventually(lambda: len(handled) == before + 20, "the survivor gets all")
        finally:
            for task in (dying_task, alive_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
