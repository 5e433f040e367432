"""Password devices end to end: real mosquitto with the plugin, aiomqtt over TLS on the
password listener, ``account device <tenant>/device_<id> <hash>`` pushed by a service
client (docs/decisions/0003-password-devices.md)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from fleetgate.config import MqttSettings
from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password
from fleetgate.mqtt.bridge import BrokerBridge
from fleetgate.pki import generate_ca, issue_client_certificate
from fleetgate.pki.capath import fingerprint, sync_capath

from broker_support import (
    FAST_HASH,
    NOT_A_DEVICE_ID,
    REPLY_TIMEOUT,
    Events,
    RunningBroker,
    broker,
    can_connect,
    connected,
    device_account,
    device_client,
    dropped,
    events,
    password_device_client,
    push,
    refused,
    round_trip,
    send_control,
    service,
    wait_for_log,
)
from conftest import free_ports

__all__ = ["broker", "events", "service"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "device-secret"


def client_of(
    broker: RunningBroker,
    device_id: str,
    password: str = PASSWORD,
    *,
    tenant: str = TENANT,
    client_id: str | None = None,
) -> aiomqtt.Client:
    return password_device_client(broker, tenant, device_id, password, client_id=client_id)


# ---------------------------------------------------------------------------------------


async def test_device_account_logs_in_with_its_device_id_as_client_id(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "pw-1", PASSWORD))
    async with client_of(broker, "pw-1") as client:
        opened = await events.connected("pw-1")
        assert opened.ca_fingerprint == control.NO_CA
        assert (opened.tenant, opened.new) == (TENANT, False)
        assert await round_trip(client, "fg/d/pw-1/hello")
    closed = await events.disconnected("pw-1")
    assert closed == control.Disconnected("pw-1", TENANT, opened.connection_id)
    # The second login is answered from the verification cache; it works all the same.
    assert await can_connect(client_of(broker, "pw-1"))
    assert (await events.connected("pw-1")).connection_id != opened.connection_id


async def test_client_id_other_than_the_device_id_is_refused(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(service, device_account(TENANT, "pw-2", PASSWORD))
    for client_id in ("pw-22", "pw-", "other", "PW-2"):
        assert not await can_connect(client_of(broker, "pw-2", client_id=client_id)), client_id
    assert await wait_for_log(
        broker,
        f"refused client 'other' username '{TENANT}/device_pw-2': client id must be the device id",
    )
    assert await can_connect(client_of(broker, "pw-2"))


async def test_wrong_password_is_refused(broker: RunningBroker, service: aiomqtt.Client) -> None:
    await push(service, device_account(TENANT, "pw-3", PASSWORD))
    assert not await can_connect(client_of(broker, "pw-3", "guess"))
    assert await wait_for_log(
        broker, "refused client 'pw-3' username 't1/device_pw-3': wrong password"
    )
    assert await can_connect(client_of(broker, "pw-3"))
    # Refused from the cache as well (no scrypt after the first success).
    assert not await can_connect(client_of(broker, "pw-3", "guess"))
    # The account of another tenant with the same device id is another account.
    assert not await can_connect(client_of(broker, "pw-3", tenant="t2"))


async def test_unknown_device_account_is_refused(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    assert not await can_connect(client_of(broker, "never-pushed"))
    assert await wait_for_log(
        broker, "refused client 'never-pushed' username 't1/device_never-pushed': unknown username"
    )


async def test_password_devices_cannot_see_or_reach_each_other(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await push(
        service,
        device_account(TENANT, "pw-a", PASSWORD),
        device_account(TENANT, "pw-b", PASSWORD),
    )
    async with client_of(broker, "pw-a") as a, client_of(broker, "pw-b") as b:
        for topic_filter in (
            "#",
            "fg/#",
            "fg/d/+/x",
            "fg/d/pw-b/#",
            "fg/d/pw-a",
            "fg/bootstrap/t1/pw-a/#",
            control.EVENTS_TOPIC,
            control.RESPONSE_TOPIC,
        ):
            granted = await a.subscribe(topic_filter, qos=1)
            assert all(refused(code) for code in granted), topic_filter
        granted = await a.subscribe("fg/d/pw-a/#", qos=1)
        assert not any(refused(code) for code in granted)

        # b publishes into its own namespace, into a's and at the control topic; all are
        # acknowledged (so handled) before a publishes a marker of its own, so a must see
        # the marker and nothing else.
        await b.publish("fg/d/pw-b/x", b"b-own", qos=1)
        await b.publish("fg/d/pw-a/x", b"b-into-a", qos=1)
        await b.publish("fg/bootstrap/t1/pw-a/x", b"b-into-bootstrap", qos=1)
        await a.publish("fg/d/pw-b/y", b"a-into-b", qos=1)
        await a.publish("fg/d/pw-a/marker", b"marker", qos=1)
        first = await asyncio.wait_for(anext(a.messages), REPLY_TIMEOUT)
        assert (str(first.topic), first.payload) == ("fg/d/pw-a/marker", b"marker")


async def test_clients_lists_password_sessions_without_a_ca(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "pw-live", PASSWORD))
    async with client_of(broker, "pw-live"):
        opened = await events.connected("pw-live")
        response = await push(service, control.clients("c1"))
        assert control.LiveClient("pw-live", TENANT, control.NO_CA, opened.connection_id) in (
            response.clients
        )
    await events.disconnected("pw-live")
    response = await push(service, control.clients("c2"))
    assert "pw-live" not in {c.client_id for c in response.clients}


async def test_account_remove_kicks_the_session_and_refuses_the_next_login(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "pw-gone", PASSWORD))
    async with connected(client_of(broker, "pw-gone")) as client:
        opened = await events.connected("pw-gone")
        await push(service, control.account_remove(control.device_username(TENANT, "pw-gone")))
        assert await dropped(client)
    assert await events.disconnected("pw-gone") == control.Disconnected(
        "pw-gone", TENANT, opened.connection_id
    )
    assert await wait_for_log(broker, "kicking client 'pw-gone': device account removed")
    assert not await can_connect(client_of(broker, "pw-gone"))


async def test_a_new_password_kicks_the_session_and_only_the_new_one_works(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "pw-rot", "old-password"))
    async with connected(client_of(broker, "pw-rot", "old-password")) as client:
        await events.connected("pw-rot")
        await push(service, device_account(TENANT, "pw-rot", "new-password"))
        assert await dropped(client)
    await events.disconnected("pw-rot")
    assert not await can_connect(client_of(broker, "pw-rot", "old-password"))
    assert await can_connect(client_of(broker, "pw-rot", "new-password"))


async def test_the_same_account_pushed_again_keeps_the_session(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    line = device_account(TENANT, "pw-same", PASSWORD)
    await push(service, line)
    async with client_of(broker, "pw-same") as client:
        await push(service, line)
        assert await round_trip(client, "fg/d/pw-same/x")


async def test_full_resync_keeps_valid_password_sessions_and_kicks_the_rest(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    kept_line = device_account(TENANT, "pw-kept", PASSWORD)
    await push(
        service,
        kept_line,
        device_account(TENANT, "pw-dropped", PASSWORD),
        device_account(TENANT, "pw-changed", PASSWORD),
    )
    async with (
        client_of(broker, "pw-kept") as kept,
        connected(client_of(broker, "pw-dropped")) as gone,
        connected(client_of(broker, "pw-changed")) as changed,
    ):
        # reset clears the accounts but not the sessions; the sync at the end re-validates:
        # pw-kept's account is back with the same hash, pw-dropped's is missing, and
        # pw-changed's has a new password (changed while the service was away).
        await push(
            service,
            control.reset(),
            kept_line,
            device_account(TENANT, "pw-changed", "changed-password"),
        )
        assert await dropped(gone)
        assert await dropped(changed)
        assert await round_trip(kept, "fg/d/pw-kept/x")
        response = await push(service, control.clients("after"))
        live = {c.client_id for c in response.clients}
        assert "pw-kept" in live
        assert not live & {"pw-dropped", "pw-changed"}


async def test_disabled_device_kicks_the_session_and_refuses_the_login(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """The service pushes a ``device`` line for password devices too; when it has, the
    device must be enabled and of the account's tenant."""
    await push(
        service, device_account(TENANT, "pw-off", PASSWORD), control.device("pw-off", TENANT, True)
    )
    async with connected(client_of(broker, "pw-off")) as client:
        await push(service, control.device("pw-off", TENANT, False))
        assert await dropped(client)
    assert not await can_connect(client_of(broker, "pw-off"))
    assert await wait_for_log(
        broker, "refused client 'pw-off' username 't1/device_pw-off': device is disabled"
    )
    await push(service, control.device("pw-off", "t2", True))
    assert not await can_connect(client_of(broker, "pw-off"))
    await push(service, control.device("pw-off", TENANT, True))
    assert await can_connect(client_of(broker, "pw-off"))


async def test_reconnect_of_the_same_device_replaces_its_session(
    broker: RunningBroker, service: aiomqtt.Client, events: Events
) -> None:
    await push(service, device_account(TENANT, "pw-twice", PASSWORD))
    async with connected(client_of(broker, "pw-twice")) as old:
        first = await events.connected("pw-twice")
        async with client_of(broker, "pw-twice"):
            second = await events.connected("pw-twice")
            assert second.connection_id != first.connection_id
            assert await dropped(old)  # mosquitto's session takeover
    closed = await events.disconnected("pw-twice")
    assert closed == control.Disconnected("pw-twice", TENANT, second.connection_id)


async def test_another_identity_cannot_take_over_a_password_session(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """A device id is one identity: another tenant's account with the same device id, or a
    bootstrap client using it as client id, is refused while the session lives."""
    await push(
        service,
        device_account(TENANT, "pw-own", PASSWORD),
        device_account("t2", "pw-own", PASSWORD),
        control.account("bootstrap", "t1/bootstrap", hash_password("b", **FAST_HASH)),
    )
    async with client_of(broker, "pw-own") as owner:
        assert not await can_connect(client_of(broker, "pw-own", tenant="t2"))
        assert await wait_for_log(
            broker,
            "refused client 'pw-own' username 't2/device_pw-own': "
            "client id in use by another identity",
        )
        bootstrap = device_client(
            broker, identifier="pw-own", username="t1/bootstrap", password="b"
        )
        assert not await can_connect(bootstrap)
        assert await round_trip(owner, "fg/d/pw-own/still-here")
    # Once the session is gone, the other identities get in.
    assert await can_connect(client_of(broker, "pw-own", tenant="t2"))
    assert await can_connect(
        device_client(broker, identifier="pw-own", username="t1/bootstrap", password="b")
    )


async def test_certificate_and_password_sessions_cannot_share_a_device_id(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    ca = generate_ca("password-devices CA")
    fp = fingerprint(ca.certificate)
    await asyncio.to_thread(sync_capath, broker.config.trusted_dir(), {fp: ca.cert_pem()})
    await push(
        service,
        control.ca(fp, TENANT, True, True, ca.certificate.public_bytes(serialization.Encoding.DER)),
        device_account(TENANT, "both", PASSWORD),
    )
    certificate = issue_client_certificate(ca, "both")

    def cert_client() -> aiomqtt.Client:
        return device_client(
            broker,
            port=broker.config.cert_port,
            identifier="both",
            certificate=certificate,
            timeout=REPLY_TIMEOUT,
        )

    async with cert_client() as by_certificate:
        assert not await can_connect(client_of(broker, "both"))
        assert await round_trip(by_certificate, "fg/d/both/x")
    async with client_of(broker, "both") as by_password:
        assert not await can_connect(cert_client())
        assert await round_trip(by_password, "fg/d/both/x")
    assert await wait_for_log(
        broker, "refused client 'both' username '': client id in use by another identity"
    )


async def test_device_account_cannot_log_in_with_a_certificate(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """On the certificate listener the certificate is the identity: the device account's
    username and password do not let an unpushed CA's certificate in."""
    await push(service, device_account(TENANT, "pw-cert", PASSWORD))
    ca = broker.ca  # in capath (so TLS passes), never pushed to the plugin
    await asyncio.to_thread(
        sync_capath, broker.config.trusted_dir(), {fingerprint(ca.certificate): ca.cert_pem()}
    )
    client = device_client(
        broker,
        port=broker.config.cert_port,
        identifier="pw-cert",
        username=control.device_username(TENANT, "pw-cert"),
        password=PASSWORD,
        certificate=issue_client_certificate(ca, "pw-cert"),
        timeout=REPLY_TIMEOUT,
    )
    assert not await can_connect(client)
    assert await wait_for_log(
        broker, "refused client 'pw-cert' username 't1/device_pw-cert': issuer not in the trust"
    )


async def test_bad_device_account_lines_are_reported(service: aiomqtt.Client) -> None:
    hash_ = hash_password(PASSWORD, **FAST_HASH)
    response = await send_control(
        service,
        [
            control.account("device", "t1/dev-1", hash_),
            control.account("device", "t1-device_dev-1", hash_),
            control.account("device", "/device_dev-1", hash_),
            control.account("device", "t1/device_", hash_),
            control.account("device", "t1/device_a/b", hash_),
            control.account("device", "t+/device_a", hash_),
            control.account("device", "t1/device_#", hash_),
            control.account("device", "t1/device_ok", "scrypt:bad"),
            control.account("device", "fleetgate-service", hash_),
            control.account("device", "t1/device_ok", hash_),
        ],
    )
    assert dict(response.errors) == {
        1: "username must be <tenant>/device_<device id>",
        2: "username must be <tenant>/device_<device id>",
        3: "tenant is not a single topic level",
        4: NOT_A_DEVICE_ID,
        5: NOT_A_DEVICE_ID,
        6: "tenant is not a single topic level",
        7: NOT_A_DEVICE_ID,
        8: "invalid password hash",
        9: "username is reserved for the service",
    }


def persistent_client(broker: RunningBroker, device_id: str) -> aiomqtt.Client:
    """A password device that keeps its broker session between connections."""
    return aiomqtt.Client(
        "localhost",
        broker.config.password_port,
        identifier=device_id,
        username=control.device_username(TENANT, device_id),
        password=PASSWORD,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=False,
        tls_context=broker.tls_context(),
        timeout=REPLY_TIMEOUT,
    )


async def first_payload(client: aiomqtt.Client) -> bytes:
    async def first() -> bytes:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return message.payload
        raise AssertionError("no message")

    return await asyncio.wait_for(first(), REPLY_TIMEOUT)


async def test_discarding_a_session_drops_what_the_broker_kept_for_that_id(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """What a released device id's session holds (its subscriptions, messages in flight)
    must not reach the id's next holder: the service discards it (decision 0006)."""
    topic = "fg/d/kept/op/cmd"
    await push(service, device_account(TENANT, "kept", PASSWORD))
    async with persistent_client(broker, "kept") as device:
        await device.subscribe(topic, qos=1)
    async with persistent_client(broker, "kept") as device:
        await service.publish(topic, b"kept-1", qos=1)
        assert await first_payload(device) == b"kept-1"  # the broker kept the subscription

    settings = MqttSettings(
        service_port=broker.config.service_port,
        service_password=SecretStr(broker.service_password),
    )

    async def no_state() -> list[str]:
        return []

    assert await BrokerBridge(settings, no_state).discard_sessions(["kept"]) == ["kept"]

    async with persistent_client(broker, "kept") as device:
        await service.publish(topic, b"not-subscribed", qos=1)
        await device.subscribe(topic, qos=1)
        await service.publish(topic, b"marker", qos=1)
        assert await first_payload(device) == b"marker"


async def test_discarding_needs_the_broker(broker: RunningBroker) -> None:
    settings = MqttSettings(service_port=free_ports(1)[0], service_password=SecretStr("x"))

    async def no_state() -> list[str]:
        return []

    assert await BrokerBridge(settings, no_state).discard_sessions(["a", "b"]) == []


async def test_another_tenants_bootstrap_client_cannot_use_a_devices_id(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """Device ids are global: a bootstrap account of t2 never gets t1's device id (nor its
    stored session); t1's own bootstrap account may (credentials renewal)."""
    await push(
        service,
        control.device("owned", TENANT, True),
        control.account("bootstrap", "t1/bootstrap", hash_password("b", **FAST_HASH)),
        control.account("bootstrap", "t2/bootstrap", hash_password("b", **FAST_HASH)),
    )

    def bootstrap_client(username: str) -> aiomqtt.Client:
        return device_client(broker, identifier="owned", username=username, password="b")

    assert not await can_connect(bootstrap_client("t2/bootstrap"))
    assert await wait_for_log(broker, "client id is a device of another tenant")
    assert await can_connect(bootstrap_client("t1/bootstrap"))
