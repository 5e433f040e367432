"""Message tracing in the plugin (docs/decisions/0016), against the real broker: for a
traced client id only, each CONNECT (with the decision and reason), publish in and out,
subscription, kick and disconnect is published on fleetgate/v1/trace; an untraced client
adds no trace event at all (counted by the plugin, read with ``trace-stats``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain import broker_trace as bt

from broker_support import (
    REPLY_TIMEOUT,
    RunningBroker,
    broker,
    can_connect,
    device_account,
    dropped,
    next_response,
    password_device_client,
    push,
    refused,
    reset_service,
    service,
    service_client,
    trusted_broker,
)

__all__ = ["broker", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "device-secret"


class Traces:
    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[bt.BrokerTraceEvent] = []

    async def next(self, match: Callable[[bt.BrokerTraceEvent], bool]) -> bt.BrokerTraceEvent:
        async def wait() -> bt.BrokerTraceEvent:
            async for msg in self.client.messages:
                assert isinstance(msg.payload, bytes)
                event = bt.parse_trace_event(msg.payload)
                self.seen.append(event)
                if match(event):
                    return event
            raise AssertionError("trace stream ended")

        return await asyncio.wait_for(wait(), REPLY_TIMEOUT)


@contextlib.asynccontextmanager
async def trace_reader(broker: RunningBroker) -> AsyncIterator[Traces]:
    async with service_client(broker) as client:
        granted = await client.subscribe(bt.TRACE_TOPIC, qos=1)
        assert not any(refused(code) for code in granted)
        yield Traces(client)


async def stats(service: aiomqtt.Client) -> tuple[int, int]:
    await service.publish(
        control.CONTROL_TOPIC, control.message([control.trace_stats("stats")]), qos=1
    )
    response = await next_response(service, "stats")
    assert response.tracing is not None
    return response.tracing


def client_of(broker: RunningBroker, device_id: str, password: str = PASSWORD) -> aiomqtt.Client:
    return password_device_client(broker, TENANT, device_id, password)


async def test_a_traced_client_is_reported_with_decisions_and_reasons(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(service, device_account(TENANT, "tr-1", PASSWORD), control.trace("tr-1", True))
    assert (await stats(service))[0] == 1
    async with trace_reader(broker) as traces:
        # A refused CONNECT, with the broker's reason.
        assert not await can_connect(client_of(broker, "tr-1", "guess"))
        refusal = await traces.next(lambda e: isinstance(e, bt.ConnectAttempt))
        assert refusal == bt.ConnectAttempt("tr-1", f"{TENANT}/device_tr-1", "wrong password")
        async with client_of(broker, "tr-1") as device:
            accepted = await traces.next(lambda e: isinstance(e, bt.ConnectAttempt))
            assert isinstance(accepted, bt.ConnectAttempt)
            assert accepted.accepted
            await device.subscribe("fg/d/tr-1/op/cmd", qos=1)
            await device.subscribe("fg/d/other/op/cmd", qos=1)
            await device.publish("fg/d/tr-1/inventory", b'{"name": "x"}' * 10, qos=1)
            await service.publish("fg/d/tr-1/op/cmd", b"\x00command", qos=1)
            sub = await traces.next(lambda e: isinstance(e, bt.Subscribe) and e.allowed)
            assert sub == bt.Subscribe("tr-1", True, "fg/d/tr-1/op/cmd")
            denied = await traces.next(lambda e: isinstance(e, bt.Subscribe) and not e.allowed)
            assert denied == bt.Subscribe("tr-1", False, "fg/d/other/op/cmd")
            sent = await traces.next(lambda e: isinstance(e, bt.Publish) and e.direction == "in")
            assert isinstance(sent, bt.Publish)
            assert (sent.topic, sent.size, sent.allowed) == ("fg/d/tr-1/inventory", 130, True)
            assert sent.preview == (b'{"name": "x"}' * 10)[: bt.PREVIEW_BYTES]
            out = await traces.next(lambda e: isinstance(e, bt.Publish) and e.direction == "out")
            assert isinstance(out, bt.Publish)
            assert (out.topic, out.preview, out.size) == ("fg/d/tr-1/op/cmd", b"\x00command", 8)
            # A new password kicks the live session: the kick says why.
            await push(service, device_account(TENANT, "tr-1", "new-secret"))
            kick = await traces.next(lambda e: isinstance(e, bt.Kick))
            assert kick == bt.Kick("tr-1", "device account has a new password")
            assert await dropped(device)
        gone = await traces.next(lambda e: isinstance(e, bt.Disconnect))
        assert gone == bt.Disconnect("tr-1", "kicked: device account has a new password")


async def test_an_untraced_client_adds_no_trace_traffic(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(
        service,
        device_account(TENANT, "quiet-1", PASSWORD),
        device_account(TENANT, "loud-1", PASSWORD),
        control.trace("loud-1", True),
    )
    _, before = await stats(service)
    assert not await can_connect(client_of(broker, "quiet-1", "guess"))
    async with client_of(broker, "quiet-1") as quiet:
        await quiet.subscribe("fg/d/quiet-1/op/cmd", qos=1)
        for n in range(20):
            await quiet.publish("fg/d/quiet-1/inventory", f"{n}".encode(), qos=1)
        await service.publish("fg/d/quiet-1/op/cmd", b"cmd", qos=1)
    assert await stats(service) == (1, before)
    # The same traffic of a traced client is counted: the counter is no constant.
    async with client_of(broker, "loud-1") as loud:
        await loud.publish("fg/d/loud-1/inventory", b"1", qos=1)
    traced, after = await stats(service)
    assert traced == 1
    assert after >= before + 3
    # Stopping the trace stops the reports; a reset forgets the traced set.
    await push(service, control.trace("loud-1", False))
    async with client_of(broker, "loud-1") as loud:
        await loud.publish("fg/d/loud-1/inventory", b"2", qos=1)
    assert (await stats(service))[1] == after
    await push(service, control.trace("loud-1", True), control.reset())
    assert (await stats(service))[0] == 0


async def test_bad_trace_lines_are_refused(service: aiomqtt.Client) -> None:
    for line, error in (
        ("trace a/b 1", "client id is not a single topic level"),
        ("trace x 2", "traced must be 0 or 1"),
        ("trace x", "usage: trace <client id> <0|1>"),
        ("trace-stats", "usage: trace-stats <token>"),
    ):
        token = f"bad-{len(line)}"
        await service.publish(
            control.CONTROL_TOPIC, control.message([line, control.sync(token)]), qos=1
        )
        response = await next_response(service, token)
        assert response.errors == ((1, error),)


async def test_an_accepted_certificate_device_is_reported_under_its_device_username() -> None:
    # The plugin names a certificate device "<tenant>/device_<id>" while deciding its
    # CONNECT; the trace reads the name from the client afterwards, never the old one.
    async with trusted_broker("trace CA") as trusted, reset_service(trusted.broker) as svc:
        await push(svc, trusted.ca_line(), control.trace("cert-tr-1", True))
        async with trace_reader(trusted.broker) as traces:
            async with trusted.client("cert-tr-1"):
                accepted = await traces.next(lambda e: isinstance(e, bt.ConnectAttempt))
            assert accepted == bt.ConnectAttempt("cert-tr-1", "t1/device_cert-tr-1", None)
            gone = await traces.next(lambda e: isinstance(e, bt.Disconnect))
            # mosquitto 2.0.11 gives a plugin no reason for a disconnect (always -1).
            assert gone == bt.Disconnect("cert-tr-1", "connection closed")
