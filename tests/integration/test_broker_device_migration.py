"""What a committed migration tells the broker (services/device_migrations.moved_lines),
against the real mosquitto with the plugin (decision 0014): the device's live session in
the source is closed and its next login lands in the target — a certificate device once
its CA is the target's, a password device under its new user name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.device_migrations import Migration, MigrationStatus, Moved
from fleetgate.domain.devices import NO_PASSWORD
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role, User
from fleetgate.services.device_migrations import moved_lines

from broker_support import (
    FAST_HASH,
    Events,
    RunningBroker,
    TrustedBroker,
    can_connect,
    connected,
    dropped,
    events,
    password_device_client,
    push,
    round_trip,
    service,
    trusted_broker,
)

__all__ = ["events", "service"]  # fixtures

pytestmark = pytest.mark.integration

PASSWORD = "device-secret"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
async def pki() -> AsyncIterator[TrustedBroker]:
    async with trusted_broker("migration CA", "t1") as running:
        yield running


@pytest.fixture
def broker(pki: TrustedBroker) -> RunningBroker:
    return pki.broker


def moved(device_id: str, password_hash: str, children: tuple[str, ...] = ()) -> Moved:
    """A committed move of ``device_id`` from t1 to t2, as the store reports it."""
    migration = Migration(
        1, "t1", "t2", 10, device_id, True, MigrationStatus.CONFIRMED, "admin", NOW, NOW, 5,
        finished_at=NOW, moved=(device_id, *children),
    )  # fmt: skip
    user = User("t2", f"device_{device_id}", password_hash, True, frozenset({Role.DEVICE}), NOW)
    return Moved(migration, device_id, (user,), children, ())


async def test_a_password_devices_session_is_closed_and_it_logs_in_to_the_target(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    hashed = hash_password(PASSWORD, **FAST_HASH)
    await push(
        service,
        control.device("pw-mover", "t1", True),
        control.device_account("t1", "pw-mover", hashed),
    )
    async with connected(password_device_client(broker, "t1", "pw-mover", PASSWORD)) as client:
        assert (await events.connected("pw-mover")).tenant == "t1"
        assert await round_trip(client, "fg/d/pw-mover/x")
        await push(service, *moved_lines("t1", moved("pw-mover", hashed)))
        assert await dropped(client)
    await events.disconnected("pw-mover")
    assert not await can_connect(password_device_client(broker, "t1", "pw-mover", PASSWORD))
    async with connected(password_device_client(broker, "t2", "pw-mover", PASSWORD)) as client:
        assert (await events.connected("pw-mover")).tenant == "t2"
        assert await round_trip(client, "fg/d/pw-mover/x")


async def test_a_certificate_device_lands_in_the_target_once_its_ca_is_the_targets(
    pki: TrustedBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, pki.ca_line(), control.device("cert-mover", "t1", True))
    async with connected(pki.client("cert-mover")) as client:
        assert (await events.connected("cert-mover")).tenant == "t1"
        assert await round_trip(client, "fg/d/cert-mover/x")
        # The service hands the CA over before a move is confirmed, which ends such a
        # session already; should the broker learn the move first (lines pushed out of
        # order, a resync in between), the session is closed all the same.
        await push(service, *moved_lines("t1", moved("cert-mover", NO_PASSWORD)))
        assert await dropped(client)
    await events.disconnected("cert-mover")
    assert not await can_connect(pki.client("cert-mover"))
    # t2 trusts the CA now (t1 gave it up): the device's next login is t2's.
    t2_ca = TrustedBroker(pki.broker, pki.ca, pki.fingerprint, "t2").ca_line()
    await push(service, t2_ca)
    async with connected(pki.client("cert-mover")) as client:
        assert (await events.connected("cert-mover")).tenant == "t2"
        assert await round_trip(client, "fg/d/cert-mover/x")
