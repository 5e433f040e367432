"""A session's publishes: each waits for its PUBACK, a lost connection ends every wait at
once as MqttError, a cancelled publisher stays cancelled (no broker: a stub client)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiomqtt
import pytest

from fleetgate.device.link import Session


class _Client:
    """A client whose PUBACKs come only when ``acknowledge`` is set."""

    def __init__(self) -> None:
        self.acknowledge = asyncio.Event()
        self.sent: list[str] = []

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append(topic)
        await self.acknowledge.wait()


def session_of(client: _Client) -> Session:
    return Session(cast(Any, client), "dev-1", in_flight=10)


async def test_a_publish_returns_after_its_puback() -> None:
    client = _Client()
    session = session_of(client)
    waiting = asyncio.create_task(session.publish("t/1", b"x"))
    await asyncio.sleep(0)
    assert not waiting.done()
    client.acknowledge.set()
    await waiting
    assert client.sent == ["t/1"]


async def test_a_lost_session_ends_every_wait_for_a_puback() -> None:
    session = session_of(_Client())
    waiting = [asyncio.create_task(session.publish(f"t/{n}", b"x")) for n in range(50)]
    await asyncio.sleep(0)
    session.close()
    for publish in waiting:
        with pytest.raises(aiomqtt.MqttError, match="lost before the PUBACK"):
            await publish
    with pytest.raises(aiomqtt.MqttError, match="connection was lost"):
        await session.publish("t/late", b"x")


async def test_a_cancelled_publisher_is_cancelled_even_as_the_session_closes() -> None:
    session = session_of(_Client())
    alone = asyncio.create_task(session.publish("t/1", b"x"))
    both = asyncio.create_task(session.publish("t/2", b"x"))
    await asyncio.sleep(0)
    alone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await alone
    both.cancel()
    session.close()
    with pytest.raises(asyncio.CancelledError):
        await both
