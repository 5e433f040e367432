"""The fleetgate mosquitto plugin, end to end: real mosquitto, real TLS, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import is_device_id
from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.passwords import hash_password
from fleetgate.pki import issue_client_certificate
from fleetgate.pki.capath import fingerprint, sync_capath
from fleetgate.stack.broker import MosquittoProcess, write_service_password_hash

from broker_support import (
    FAST_HASH,
    NOT_A_DEVICE_ID,
    RunningBroker,
    broker,
    can_connect,
    device_client,
    listener_ports,
    next_response,
    refused,
    send_control,
    service,
    service_client,
    tls_session_refused,
    wait_for_log,
)
from conftest import free_ports

__all__ = ["broker", "service"]  # fixtures

pytestmark = pytest.mark.integration

PASSWORD = "bootstrap-secret"


def bootstrap_account(username: str, password: str = PASSWORD) -> str:
    return control.account("bootstrap", username, hash_password(password, **FAST_HASH))


def bootstrap_client(
    broker: RunningBroker, client_id: str, username: str = "t1/bootstrap", password: str = PASSWORD
) -> aiomqtt.Client:
    return device_client(broker, identifier=client_id, username=username, password=password)


async def test_service_account_connects_on_loopback_listener(broker: RunningBroker) -> None:
    assert await can_connect(service_client(broker))


async def test_wrong_service_password_is_refused(broker: RunningBroker) -> None:
    assert not await can_connect(service_client(broker, password="wrong"))


async def test_anonymous_is_refused_on_every_listener(broker: RunningBroker) -> None:
    plain = aiomqtt.Client("127.0.0.1", broker.config.service_port, identifier="anon")
    assert not await can_connect(plain)
    assert not await can_connect(device_client(broker, identifier="anon"))
    # The certificate listener already ends the TLS session without a client certificate.
    assert await tls_session_refused(broker, broker.config.cert_port)


async def test_bootstrap_account_is_refused_before_the_service_pushes_it(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    assert not await can_connect(bootstrap_client(broker, "dev-early"))


async def test_pushed_bootstrap_account_connects_and_works_in_its_namespace(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    token = "t1"
    await service.publish(
        control.CONTROL_TOPIC,
        control.message([control.reset(), bootstrap_account("t1/bootstrap"), control.sync(token)]),
        qos=1,
    )
    response = await next_response(service, token)
    assert response == control.ControlResponse(synced=(token,), errors=())

    async with bootstrap_client(broker, "dev-1") as client:
        granted = await client.subscribe("fg/bootstrap/t1/dev-1/#", qos=1)
        assert not any(refused(code) for code in granted)
        await client.publish("fg/bootstrap/t1/dev-1/hello", b"hi", qos=1)
        message = await anext(client.messages)
        assert (str(message.topic), message.payload) == ("fg/bootstrap/t1/dev-1/hello", b"hi")


async def test_bootstrap_clients_cannot_see_or_reach_each_other(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await send_control(service, [bootstrap_account("t1/bootstrap")])
    async with bootstrap_client(broker, "a") as a, bootstrap_client(broker, "b") as b:
        for topic_filter in (
            "#",
            "fg/bootstrap/t1/b/#",
            "fg/bootstrap/t1/+/x",
            "fg/#",
            "fg/bootstrap/t1/a",
        ):
            granted = await a.subscribe(topic_filter, qos=1)
            assert all(refused(code) for code in granted), topic_filter
        granted = await a.subscribe("fg/bootstrap/t1/a/#", qos=1)
        assert not any(refused(code) for code in granted)

        # b publishes into its own namespace and into a's; both are acknowledged (so routed)
        # before a publishes a marker of its own, so a must see the marker and nothing else.
        await b.publish("fg/bootstrap/t1/b/x", b"b-own", qos=1)
        await b.publish("fg/bootstrap/t1/a/x", b"b-into-a", qos=1)
        await a.publish("fg/bootstrap/t1/a/marker", b"marker", qos=1)
        first = await anext(a.messages)
        assert (str(first.topic), first.payload) == ("fg/bootstrap/t1/a/marker", b"marker")


async def test_a_bootstrap_client_id_must_be_a_device_id(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """The client id becomes the device's id: what the service would refuse to register
    is refused at CONNECT (the same rule as certificate CNs, see test_broker_certificates)."""
    await send_control(service, [bootstrap_account("t1/bootstrap")])
    for client_id in ("dev/1", "dev+", "#", "$SYS", " sp", "a:b", "caf\u00e9", "d" * 129):
        assert not is_device_id(client_id)
        assert not await can_connect(bootstrap_client(broker, client_id)), client_id
    assert await wait_for_log(broker, NOT_A_DEVICE_ID)
    for client_id in ("dev-ok", "d" * 128):
        assert await can_connect(bootstrap_client(broker, client_id)), client_id


async def test_certificate_of_an_unpushed_ca_is_refused_despite_a_password(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    """The certificate is the identity: a bootstrap password does not help a certificate
    whose CA is in capath (OpenSSL lets it through) but was never pushed to the plugin."""
    await send_control(service, [bootstrap_account("t1/bootstrap")])
    ca = broker.ca
    await asyncio.to_thread(
        sync_capath, broker.config.trusted_dir(), {fingerprint(ca.certificate): ca.cert_pem()}
    )
    certificate = issue_client_certificate(ca, "dev-cert")
    client = device_client(
        broker,
        port=broker.config.cert_port,
        identifier="dev-cert",
        username="t1/bootstrap",
        password=PASSWORD,
        certificate=certificate,
    )
    assert not await can_connect(client)
    assert await wait_for_log(
        broker, "fleetgate: refused client 'dev-cert' username 't1/bootstrap': issuer not in the"
    )


async def test_control_messages_from_other_clients_change_nothing(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await send_control(service, [bootstrap_account("t1/bootstrap")])
    forged = control.message(
        [control.reset(), bootstrap_account("t1/intruder"), control.sync("forged")]
    )
    async with bootstrap_client(broker, "dev-forger") as forger:
        await forger.subscribe(control.RESPONSE_TOPIC, qos=1)
        with contextlib.suppress(aiomqtt.MqttError):
            await forger.publish(control.CONTROL_TOPIC, forged, qos=1)
    await send_control(service, [])  # everything before this sync has been processed
    assert await can_connect(bootstrap_client(broker, "dev-after"))
    assert not await can_connect(bootstrap_client(broker, "dev-x", username="t1/intruder"))


async def test_bad_lines_are_reported_and_good_lines_still_apply(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    response = await send_control(
        service,
        [
            bootstrap_account("t1/good-1"),
            "frobnicate",
            control.account("bootstrap", "bad-kind", "x").replace("bootstrap", "robot", 1),
            "account bootstrap t1/bad-hash scrypt:99:8:1:00:00",
            "account bootstrap bad%2",
            "",
            bootstrap_account("t1/good 2"),
        ],
    )
    assert [number for number, _ in response.errors] == [2, 3, 4, 5]
    assert dict(response.errors)[2] == "unknown command"
    assert dict(response.errors)[3] == "unknown account kind"
    assert dict(response.errors)[4] == "invalid password hash"
    assert await can_connect(bootstrap_client(broker, "dev-g1", username="t1/good-1"))
    # A percent-encoded username with a space arrives decoded.
    assert await can_connect(bootstrap_client(broker, "dev-g2", username="t1/good 2"))


async def test_account_remove_makes_the_next_login_fail(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await send_control(service, [bootstrap_account("t1/leaving")])
    assert await can_connect(bootstrap_client(broker, "dev-r", username="t1/leaving"))
    response = await send_control(
        service, [control.account_remove("t1/leaving"), control.account_remove("t1/never-existed")]
    )
    assert response.errors == ()
    assert not await can_connect(bootstrap_client(broker, "dev-r", username="t1/leaving"))


async def test_reset_removes_every_account(broker: RunningBroker, service: aiomqtt.Client) -> None:
    await send_control(service, [bootstrap_account("t1/one"), bootstrap_account("t1/two")])
    assert await can_connect(bootstrap_client(broker, "dev-1", username="t1/one"))
    await send_control(service, [control.reset()])
    for username in ("t1/one", "t1/two"):
        assert not await can_connect(bootstrap_client(broker, "dev-1", username=username))


async def test_replacing_an_account_forgets_the_cached_password(
    broker: RunningBroker, service: aiomqtt.Client
) -> None:
    await send_control(service, [bootstrap_account("t1/rotating", "old-password")])
    for _ in range(2):  # the second login is answered from the verification cache
        assert await can_connect(bootstrap_client(broker, "dev-c", "t1/rotating", "old-password"))
    assert not await can_connect(bootstrap_client(broker, "dev-c", "t1/rotating", "guess"))
    await send_control(service, [bootstrap_account("t1/rotating", "new-password")])
    assert not await can_connect(bootstrap_client(broker, "dev-c", "t1/rotating", "old-password"))
    assert await can_connect(bootstrap_client(broker, "dev-c", "t1/rotating", "new-password"))


async def test_response_reaches_the_sender_without_a_subscription(broker: RunningBroker) -> None:
    """mosquitto 2.0.11 delivers a clientid-targeted plugin publish to an unsubscribed client."""
    async with service_client(broker) as client:
        await client.publish(control.CONTROL_TOPIC, control.message([control.sync("u")]), qos=1)
        response = await next_response(client, "u")
        assert response.synced == ("u",)


async def test_busy_port_is_reported_before_starting(broker: RunningBroker) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        service_port, cert_port = free_ports(2)
        config = dataclasses.replace(
            broker.config, service_port=service_port, cert_port=cert_port, password_port=port
        )
        process = MosquittoProcess(config, broker.workdir / "busy")
        with pytest.raises(ConfigurationError, match=rf"port {port} \(password devices\)"):
            await process.start()
        assert not process.running


async def test_the_longest_service_hash_is_read_whole(broker: RunningBroker) -> None:
    """A hash line of 256-byte salt and key fits the plugin's buffer: read whole, a key
    wrong only in its last bytes fails (cut short, its first bytes alone would match)."""
    salt = bytes(range(256))
    key = hashlib.scrypt(b"long-secret", salt=salt, n=2**10, r=8, p=1, dklen=256)
    workdir = broker.workdir / "long-hash"
    for stored, accepted in ((key, True), (key[:-8] + bytes(8), False)):
        config = dataclasses.replace(
            broker.config, **listener_ports(), service_password_hash_file=workdir / "hash"
        )
        write_service_password_hash(
            config.service_password_hash_file, f"scrypt:10:8:1:{salt.hex()}:{stored.hex()}"
        )
        async with MosquittoProcess(config, workdir) as process:
            client = aiomqtt.Client(
                "127.0.0.1",
                process.config.service_port,
                identifier="fleetgate:long-hash",
                username=broker.config.service_username,
                password="long-secret",
            )
            assert await can_connect(client) is accepted


async def test_plugin_refuses_to_start_without_a_valid_service_hash(
    broker: RunningBroker,
) -> None:
    config = dataclasses.replace(
        broker.config,
        **listener_ports(),
        service_password_hash_file=broker.workdir / "bad-hash" / "service_password.hash",
    )
    write_service_password_hash(config.service_password_hash_file, "scrypt:not-a-hash")
    process = MosquittoProcess(config, broker.workdir / "bad-hash")
    with pytest.raises(ConfigurationError, match="plugin_opt_service_password_hash_file"):
        await process.start()
    assert not process.running
