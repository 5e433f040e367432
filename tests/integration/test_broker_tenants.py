"""A suspended tenant in the broker plugin (``tenant <t> <active 0|1>``, decision 0013),
end to end against the real mosquitto: its live sessions — certificate devices, password
devices, bootstrap clients — are kicked at once with the reason in the log, every login
of the tenant is refused (auto-registration under its CAs too) until it is reactivated,
and other tenants are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password

from broker_support import (
    FAST_HASH,
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
OTHER = "t2"
PASSWORD = "device-secret"
BOOTSTRAP_PASSWORD = "bootstrap-secret"


@pytest.fixture(scope="module")
async def pki() -> AsyncIterator[TrustedBroker]:
    async with trusted_broker("suspended tenants CA", TENANT) as running:
        yield running


@pytest.fixture
def broker(pki: TrustedBroker) -> RunningBroker:
    return pki.broker


def bootstrap_line(tenant: str) -> str:
    hashed = hash_password(BOOTSTRAP_PASSWORD, **FAST_HASH)
    return control.account("bootstrap", f"{tenant}/devicebootstrap", hashed)


def bootstrap_client(broker: RunningBroker, tenant: str, client_id: str) -> aiomqtt.Client:
    return device_client(
        broker,
        identifier=client_id,
        username=f"{tenant}/devicebootstrap",
        password=BOOTSTRAP_PASSWORD,
    )


async def tenant_state(pki: TrustedBroker, service: aiomqtt.Client) -> None:
    """t1: a CA with auto-registration, a known certificate device, a password device and
    a bootstrap account; t2: a password device and a bootstrap account."""
    await push(
        service,
        pki.ca_line(autoreg=True),
        control.device("cert-1", TENANT, True),
        device_account(TENANT, "pw-1", PASSWORD),
        bootstrap_line(TENANT),
        device_account(OTHER, "pw-2", PASSWORD),
        bootstrap_line(OTHER),
    )


async def test_suspending_kicks_every_live_session_of_the_tenant_and_no_other(
    pki: TrustedBroker, service: aiomqtt.Client, events: Events
) -> None:
    broker = pki.broker
    await tenant_state(pki, service)
    async with (
        connected(pki.client("cert-1")) as cert,
        connected(password_device_client(broker, TENANT, "pw-1", PASSWORD)) as pw,
        connected(bootstrap_client(broker, TENANT, "new-dev-1")) as boot,
        connected(password_device_client(broker, OTHER, "pw-2", PASSWORD)) as other,
        connected(bootstrap_client(broker, OTHER, "new-dev-2")) as other_boot,
    ):
        await events.connected("cert-1")
        await events.connected("pw-1")
        await push(service, control.tenant(TENANT, False))
        assert await dropped(cert)
        assert await dropped(pw)
        assert await dropped(boot)
        assert await wait_for_log(broker, "kicking client 'cert-1': tenant t1 is suspended")
        assert await wait_for_log(broker, "kicking client 'pw-1': tenant t1 is suspended")
        assert await wait_for_log(
            broker, "kicking clients of username 't1/devicebootstrap': tenant t1 is suspended"
        )
        # the other tenant's clients are still there and work
        assert await round_trip(other, "fg/d/pw-2/still-here")
        assert await round_trip(other_boot, f"fg/bootstrap/{OTHER}/new-dev-2/x")
    await push(service, control.tenant(TENANT, True))


async def test_a_suspended_tenant_logs_in_nowhere_until_it_is_reactivated(
    pki: TrustedBroker, service: aiomqtt.Client, events: Events
) -> None:
    broker = pki.broker
    await tenant_state(pki, service)
    await push(service, control.tenant(TENANT, False))
    logins = {
        "certificate device": lambda: pki.client("cert-1"),
        "auto-registration": lambda: pki.client("brand-new-1"),
        "password device": lambda: password_device_client(broker, TENANT, "pw-1", PASSWORD),
        "bootstrap": lambda: bootstrap_client(broker, TENANT, "new-dev-3"),
    }
    for what, client in logins.items():
        assert not await can_connect(client()), what
    for who in ("cert-1", "brand-new-1", "pw-1", "new-dev-3"):
        assert await wait_for_log(broker, f"refused client '{who}'"), who
    assert await wait_for_log(broker, "tenant t1 is suspended")
    # another tenant's devices log in all along
    assert await can_connect(password_device_client(broker, OTHER, "pw-2", PASSWORD))
    await push(service, control.tenant(TENANT, True))
    for what, client in logins.items():
        assert await can_connect(client()), what
    new = await events.connected("brand-new-1")
    assert new.new  # auto-registration works again


async def test_a_full_state_keeps_the_suspension_and_reset_lifts_it(
    pki: TrustedBroker, service: aiomqtt.Client
) -> None:
    broker = pki.broker
    # as the bridge pushes a full state: reset, the suspended tenants first, the rest
    # (send_control ends it with its sync)
    response = await send_control(
        service,
        [
            control.reset(),
            control.tenant(TENANT, False),
            pki.ca_line(),
            device_account(TENANT, "pw-1", PASSWORD),
        ],
    )
    assert response.errors == ()
    assert not await can_connect(password_device_client(broker, TENANT, "pw-1", PASSWORD))
    await push(service, control.reset(), pki.ca_line(), device_account(TENANT, "pw-1", PASSWORD))
    assert await can_connect(password_device_client(broker, TENANT, "pw-1", PASSWORD))


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("tenant a/b 0", "tenant is not a single topic level"),
        ("tenant t1 2", "active must be 0 or 1"),
        ("tenant t1", "usage: tenant <tenant> <active 0|1>"),
        ("tenant t1 0 extra", "usage: tenant <tenant> <active 0|1>"),
    ],
)
async def test_bad_tenant_lines_are_errors(service: aiomqtt.Client, line: str, error: str) -> None:
    response = await send_control(service, [line])
    assert response.errors == ((1, error),)
