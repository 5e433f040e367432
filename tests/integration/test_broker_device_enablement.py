"""Disabling a device, as the service pushes it, against the real mosquitto with our plugin
(decision 0012): the lines :func:`fleetgate.services.broker.device_lines` computes for a
disabled device kick its live session — certificate or password — as soon as the push is
applied, its next CONNECT is refused with "device is disabled" in the broker's log, and
the lines of the device enabled again let it back in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import NO_PASSWORD
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role, User
from fleetgate.pki import generate_ca, issue_client_certificate
from fleetgate.pki.capath import fingerprint, sync_capath
from fleetgate.services.broker import device_lines

from broker_support import (
    FAST_HASH,
    REPLY_TIMEOUT,
    Events,
    RunningBroker,
    can_connect,
    connected,
    device_client,
    events,
    password_device_client,
    push,
    running_broker,
    service,
    wait_for_log,
)

__all__ = ["events", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "device-secret"
#: The issue's bound on the kick, from the moment the plugin has applied the push.
KICK_BOUND = 1.0


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[RunningBroker]:
    async with running_broker() as running:
        yield running


def device_user(device_id: str, password_hash: str = NO_PASSWORD) -> User:
    return User(
        tenant_id=TENANT,
        username=f"device_{device_id}",
        password_hash=password_hash,
        enabled=True,
        roles=frozenset({Role.DEVICE}),
        last_password_change=datetime.now(UTC),
    )


async def kicked_within(client: aiomqtt.Client, bound: float) -> bool:
    """True when the broker ends ``client``'s connection within ``bound`` seconds (polled
    by reading until the connection ends, or the deadline passes)."""

    async def drain() -> None:
        try:
            async for _ in client.messages:
                pass
        except aiomqtt.MqttError:
            pass

    try:
        await asyncio.wait_for(drain(), bound)
    except TimeoutError:
        return False
    return True


async def test_a_disabled_certificate_device_is_kicked_refused_and_let_back_in(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    ca = generate_ca("enablement CA")
    fp = fingerprint(ca.certificate)
    trusted: dict[str, bytes] = {fp: ca.cert_pem()}
    await asyncio.to_thread(sync_capath, Path(broker.config.trusted_dir()), trusted)
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    await push(service, control.ca(fp, TENANT, True, False, der))
    user = device_user("cert-off")
    await push(service, *device_lines(user))
    certificate = issue_client_certificate(ca, "cert-off")

    def client() -> aiomqtt.Client:
        return device_client(
            broker,
            port=broker.config.cert_port,
            identifier="cert-off",
            certificate=certificate,
            timeout=REPLY_TIMEOUT,
        )

    async with connected(client()) as live:
        opened = await events.connected("cert-off")
        await push(service, *device_lines(user, device_disabled=True))
        assert await kicked_within(live, KICK_BOUND)
    assert (await events.disconnected("cert-off")).connection_id == opened.connection_id
    assert await wait_for_log(broker, "kicking client 'cert-off': device is disabled")
    assert not await can_connect(client())
    assert await wait_for_log(broker, "refused client 'cert-off'")
    assert any(
        "refused client 'cert-off'" in line and line.endswith("device is disabled")
        for line in broker.process.log_tail()
    )
    await push(service, *device_lines(user, device_disabled=False))
    assert await can_connect(client())


async def test_a_disabled_password_device_is_kicked_and_refused_with_the_reason(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    user = device_user("pw-off", hash_password(PASSWORD, **FAST_HASH))
    await push(service, *device_lines(user))

    def client() -> aiomqtt.Client:
        return password_device_client(broker, TENANT, "pw-off", PASSWORD)

    async with connected(client()) as live:
        await events.connected("pw-off")
        lines = device_lines(user, device_disabled=True)
        # The account goes too: no password hash is spent on a disabled device.
        assert control.account_remove(f"{TENANT}/device_pw-off") in lines
        await push(service, *lines)
        assert await kicked_within(live, KICK_BOUND)
    await events.disconnected("pw-off")
    assert await wait_for_log(broker, "kicking client 'pw-off': device is disabled")
    assert not await can_connect(client())
    assert await wait_for_log(
        broker, "refused client 'pw-off' username 't1/device_pw-off': device is disabled"
    )
    await push(service, *device_lines(user, device_disabled=False))
    assert await can_connect(client())
