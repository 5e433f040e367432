"""A gateway's child has no login of its own while it is attached (docs/decisions/0008):
real mosquitto with the plugin, real TLS, certificates made at test time.

The service tells the plugin which device ids are attached children with
``child <client id> <gateway id>`` and ``child-remove <client id>``; every kind of login of
an attached child is refused with the reason in the broker's log, a live session of it
is closed the moment it is attached, and a detached child may log in again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password

from broker_support import (
    FAST_HASH,
    NOT_A_DEVICE_ID,
    Events,
    RunningBroker,
    TrustedBroker,
    can_connect,
    connected,
    device_account,
    device_client,
    dropped,
    events,
    password_device_client,
    push,
    round_trip,
    send_control,
    service,
    trusted_broker,
    wait_for_log,
)

__all__ = ["events", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "device-secret"
GATEWAY = "gw-1"


def refusal(child: str, gateway: str = GATEWAY) -> str:
    """What the broker logs when it refuses (or closes) a child's own login."""
    return f"device {child} is a child of gateway {gateway}: it connects through its gateway"


#: The broker, and one CA of tenant t1 in its capath (pushed by each test).
Pki = TrustedBroker


@pytest.fixture(scope="module")
async def pki() -> AsyncIterator[Pki]:
    async with trusted_broker("gateway children CA", TENANT) as running:
        yield running


@pytest.fixture
def broker(pki: Pki) -> RunningBroker:
    return pki.broker


def password_client(broker: RunningBroker, device_id: str) -> aiomqtt.Client:
    return password_device_client(broker, TENANT, device_id, PASSWORD)


# ---------------------------------------------------------------------------------------


async def test_an_attached_child_cannot_log_in_with_its_certificate(
    pki: Pki, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(service, pki.ca_line(), control.child("cert-child", GATEWAY))
    assert not await can_connect(pki.client("cert-child"))
    assert await wait_for_log(
        broker, f"fleetgate: refused client 'cert-child' username '': {refusal('cert-child')}"
    )
    # Also when it is a registered, enabled device of its own (it was one before it was
    # attached): the attachment wins.
    await push(service, control.device("cert-child", TENANT, True))
    assert not await can_connect(pki.client("cert-child"))
    # Its gateway is not concerned.
    assert await can_connect(pki.client(GATEWAY))


async def test_an_attached_child_cannot_log_in_with_its_password(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(
        service,
        device_account(TENANT, "pw-child", PASSWORD),
        control.child("pw-child", GATEWAY),
    )
    assert not await can_connect(password_client(broker, "pw-child"))
    assert await wait_for_log(
        broker,
        f"fleetgate: refused client 'pw-child' username '{TENANT}/device_pw-child':"
        f" {refusal('pw-child')}",
    )


async def test_an_attached_childs_id_cannot_bootstrap(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(
        service,
        control.account("bootstrap", f"{TENANT}/devicebootstrap", hash_password("b", **FAST_HASH)),
        control.child("boot-child", GATEWAY),
    )
    bootstrap = device_client(
        broker, identifier="boot-child", username=f"{TENANT}/devicebootstrap", password="b"
    )
    assert not await can_connect(bootstrap)
    assert await wait_for_log(broker, refusal("boot-child"))


async def test_attaching_closes_a_live_certificate_session_at_once(
    pki: Pki, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, pki.ca_line(), control.device("live-cert", TENANT, True))
    async with connected(pki.client("live-cert")) as client:
        opened = await events.connected("live-cert")
        assert await round_trip(client, "fg/d/live-cert/x")
        await push(service, control.child("live-cert", GATEWAY))
        assert await dropped(client)
    closed = await events.disconnected("live-cert")
    assert closed.connection_id == opened.connection_id
    assert await wait_for_log(
        broker, f"fleetgate: kicking client 'live-cert': {refusal('live-cert')}"
    )
    response = await push(service, control.clients("after-kick"))
    assert "live-cert" not in {c.client_id for c in response.clients}


async def test_attaching_closes_a_live_password_session_at_once(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "live-pw", PASSWORD))
    async with connected(password_client(broker, "live-pw")) as client:
        await events.connected("live-pw")
        await push(service, control.child("live-pw", GATEWAY))
        assert await dropped(client)
    await events.disconnected("live-pw")
    assert not await can_connect(password_client(broker, "live-pw"))


async def test_a_detached_child_may_log_in_again(
    pki: Pki, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(
        service,
        pki.ca_line(),
        control.device("was-child", TENANT, True),
        device_account(TENANT, "was-pw-child", PASSWORD),
        control.child("was-child", GATEWAY),
        control.child("was-pw-child", GATEWAY),
    )
    assert not await can_connect(pki.client("was-child"))
    assert not await can_connect(password_client(broker, "was-pw-child"))
    await push(service, control.child_remove("was-child"), control.child_remove("was-pw-child"))
    async with pki.client("was-child") as client:
        await events.connected("was-child")
        assert await round_trip(client, "fg/d/was-child/x")
    assert await can_connect(password_client(broker, "was-pw-child"))
    # Removing what is not there is fine (idempotent).
    await push(service, control.child_remove("was-child"), control.child_remove("nobody"))


async def test_a_child_moved_to_another_gateway_stays_refused(
    pki: Pki, broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(service, pki.ca_line(), control.child("moved", GATEWAY))
    await push(service, control.child("moved", "gw-2"))
    assert not await can_connect(pki.client("moved"))
    assert await wait_for_log(broker, refusal("moved", "gw-2"))


async def test_a_full_sync_keeps_children_out_and_reset_forgets_them(
    pki: Pki, broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, pki.ca_line(), control.device("synced", TENANT, True))
    async with connected(pki.client("synced")) as client:
        await events.connected("synced")
        # What the bridge sends at each connect: reset, the whole state (with the child),
        # in one message. The live session of the child does not survive it.
        await push(
            service,
            control.reset(),
            pki.ca_line(),
            control.device("synced", TENANT, True),
            control.child("synced", GATEWAY),
        )
        assert await dropped(client)
    await events.disconnected("synced")
    assert not await can_connect(pki.client("synced"))
    # A state without the child (it was detached while the broker was away) lets it in.
    await push(service, control.reset(), pki.ca_line(), control.device("synced", TENANT, True))
    assert await can_connect(pki.client("synced"))


async def test_the_gateway_still_speaks_for_its_child(pki: Pki, service: aiomqtt.Client) -> None:
    await push(service, pki.ca_line(), control.child("spoken-for", GATEWAY))
    async with pki.client(GATEWAY) as gateway:
        assert await round_trip(gateway, f"fg/d/{GATEWAY}/c/spoken-for/connection")


async def test_bad_child_lines_are_reported(service: aiomqtt.Client) -> None:
    response = await send_control(
        service,
        [
            "child a%2Fb gw",
            "child c gw%20x",
            "child same same",
            "child only-one",
            "child-remove",
            control.child("fine", GATEWAY),
        ],
    )
    assert dict(response.errors) == {
        1: NOT_A_DEVICE_ID,
        2: NOT_A_DEVICE_ID,
        3: "a device cannot be its own gateway",
        4: "usage: child <client id> <gateway id>",
        5: "usage: child-remove <client id>",
    }
