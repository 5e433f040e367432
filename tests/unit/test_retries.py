"""Only an absent database is retried, after pauses that grow; the link and the bridge
hand the same batch again, in order, and acknowledge nothing meanwhile."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.domain import broker_control as control
from fleetgate.domain.device_messages import Incoming
from fleetgate.mqtt import bridge as bridge_module
from fleetgate.mqtt import device_link
from fleetgate.mqtt.bridge import BrokerBridge
from fleetgate.mqtt.device_link import DeviceLink

from fakes import unavailable

SETTINGS = MqttSettings(service_password=SecretStr("x"))


class Flaky:
    """Fails ``failures`` times with ``error``, then records what it is handed."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls: list[list[object]] = []

    async def __call__(self, batch: list[object]) -> list[object]:
        self.calls.append(list(batch))
        if len(self.calls) <= self.failures:
            raise self.error
        return []


async def test_the_device_link_retries_the_same_batch_until_it_is_handled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(device_link, "RETRY_MIN", 0.001)
    monkeypatch.setattr(device_link, "RETRY_MAX", 0.004)
    handler = Flaky(5, ConnectionRefusedError())
    link = DeviceLink(SETTINGS, [], handler)  # type: ignore[arg-type]
    batch = [Incoming("fg/d/a/op/sync", b"{}"), Incoming("fg/d/b/op/sync", b"{}")]
    received = [device_link._Received(m, mid, 0) for mid, m in enumerate(batch)]
    assert await link._handle(received) == set()
    assert handler.calls == [batch] * 6


async def test_the_bridge_retries_a_batch_of_events_only_when_the_database_is_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bridge_module, "_EVENT_RETRY_MIN", 0.001)
    monkeypatch.setattr(bridge_module, "_EVENT_RETRY_MAX", 0.004)

    async def no_state() -> list[str]:
        return []

    events = [
        control.Connected("a", "t1", "ab" * 20, True, "e-1"),
        control.Disconnected("a", "t1", "e-1"),
    ]
    for error, handed in ((ConnectionResetError(), 4), (ValueError("a bug"), 1)):
        sink = Flaky(3, error)
        bridge = BrokerBridge(SETTINGS, no_state, on_event=sink, is_transient=unavailable)  # type: ignore[arg-type]
        worker = asyncio.create_task(bridge._handle_events())
        for event in events:
            bridge._events.put_nowait(event)
        for _ in range(1000):
            if len(sink.calls) >= handed:
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)
        worker.cancel()
        assert sink.calls == [events] * handed, error
