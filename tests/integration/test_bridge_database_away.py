"""The broker bridge while the database is away (a real mosquitto with the plugin; the
bridge's ports are small fakes that report the database away, as the service pool does,
when told): the bridge never dies of it, and once the database answers it syncs,
reconciles and records what it could not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.db.transient import is_transient
from fleetgate.domain import broker_control as control
from fleetgate.domain.errors import ServiceUnavailable
from fleetgate.mqtt.bridge import BrokerBridge, Event

from broker_support import RunningBroker, broker, service_client

__all__ = ["broker"]  # fixtures

pytestmark = pytest.mark.integration

WAIT = 30.0  # a generous bound for waiting, never an assertion about time


class Database:
    """What the bridge reads and records through, with a switch: away or not."""

    def __init__(self, *, away: bool) -> None:
        self.away = away
        self.reads = 0
        self.reconciled = 0
        self.attempts = 0
        self.recorded: list[Event] = []
        self.changed = asyncio.Event()

    def _check(self) -> None:
        self.changed.set()
        if self.away:
            raise ServiceUnavailable("The database cannot be reached", retry_after=5)

    async def state(self) -> list[str]:
        self.reads += 1
        self._check()
        return []

    async def reconcile(self, live: tuple[control.LiveClient, ...]) -> None:
        self.reconciled += 1
        self._check()

    async def record(self, events: list[Event]) -> None:
        self.attempts += 1
        self._check()
        self.recorded.extend(events)

    async def until(self, condition: object) -> None:
        assert callable(condition)
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running_bridge(broker: RunningBroker, database: Database) -> AsyncIterator[BrokerBridge]:
    settings = MqttSettings(
        service_port=broker.config.service_port,
        service_password=SecretStr(broker.service_password),
        reconnect_min=0.01,
        reconnect_max=0.05,
    )
    bridge = BrokerBridge(
        settings,
        database.state,
        on_event=database.record,
        on_live=database.reconcile,
        is_transient=is_transient,
    )
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
        assert not task.done(), task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_bridge_waits_out_a_database_that_is_away(broker: RunningBroker) -> None:
    database = Database(away=True)
    async with running_bridge(broker, database) as bridge:
        await database.until(lambda: database.reads >= 3)  # it keeps trying
        assert not bridge.synced.is_set()
        database.away = False
        await asyncio.wait_for(bridge.synced.wait(), WAIT)
        await database.until(lambda: database.reconciled == 1)


async def test_events_it_cannot_record_are_recorded_in_order_once_it_answers(
    broker: RunningBroker,
) -> None:
    database = Database(away=False)
    left = control.Disconnected("dev-1", "t1", "c-1")
    back = control.Connected("dev-1", "t1", "ab" * 20, False, "c-2")
    async with running_bridge(broker, database) as bridge, service_client(broker) as plugin:
        await asyncio.wait_for(bridge.synced.wait(), WAIT)
        database.away = True
        # As the plugin reports a device that left and came back, while it is away.
        for event in (left, back):
            await plugin.publish(control.EVENTS_TOPIC, control.encode_event(event), qos=1)
        await database.until(lambda: database.attempts >= 2)  # refused, and tried again
        database.away = False
        await database.until(lambda: len(database.recorded) == 2)
        assert database.recorded == [left, back]
        assert bridge.synced.is_set()
