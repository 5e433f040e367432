"""A real mosquitto with the fleetgate plugin, and MQTT clients to talk to it.

Imported by the broker integration tests (not a conftest: the fixtures that use it live
in the test modules). Everything runs for real: the plugin is built with make, the PKI
is generated with fleetgate.pki, mosquitto listens on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password
from fleetgate.pki import (
    DevPki,
    Issued,
    ensure_dev_pki,
    generate_ca,
    issue_client_certificate,
    load_issued,
)
from fleetgate.pki.capath import fingerprint, sync_capath
from fleetgate.stack.broker import (
    BrokerConfig,
    MosquittoProcess,
    write_service_password_hash,
)
from fleetgate.stack.plugin import build_plugin

from conftest import free_ports

SERVICE_USERNAME = "fleetgate-service"
# Cheap scrypt parameters keep the tests quick; the format and code path are the same.
FAST_HASH = {"log2_n": 10, "r": 8, "p": 1}
_tokens = itertools.count(1)
REPLY_TIMEOUT = 10.0  # a generous upper bound for waiting, never an assertion
#: What the plugin says of a client id, CN or user name that is not a device id.
NOT_A_DEVICE_ID = "not a device id (1-128 printable ASCII characters, no space, none of / + # $ :)"


def listener_ports() -> dict[str, int]:
    """Distinct free ports for the broker's three listeners."""
    service, cert, password = free_ports(3)
    return {"service_port": service, "cert_port": cert, "password_port": password}


@dataclass(frozen=True)
class RunningBroker:
    process: MosquittoProcess
    config: BrokerConfig
    pki: DevPki
    service_password: str
    workdir: Path

    @property
    def ca(self) -> Issued:
        return load_issued(self.pki.ca_file, self.pki.ca_key)

    def tls_context(
        self, client: Issued | None = None, chain: Sequence[Issued] = ()
    ) -> ssl.SSLContext:
        """Verifies the broker; presents ``client`` (followed by ``chain``, e.g. an
        intermediate CA) when given."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_file))
        if client is not None:
            cert, key = self.workdir / "client.crt", self.workdir / "client.key"
            client.write(cert, key)
            with cert.open("ab") as handle:
                for issuer in chain:
                    handle.write(issuer.cert_pem())
            context.load_cert_chain(str(cert), str(key))
        return context


@contextlib.asynccontextmanager
async def running_broker() -> AsyncIterator[RunningBroker]:
    """Build the plugin, make a dev PKI and run mosquitto on free ports."""
    plugin = build_plugin()
    # pytest's tmp_path lives under a 0700 directory the mosquitto user cannot enter.
    workdir = Path(tempfile.mkdtemp(prefix="fleetgate-broker-"))
    workdir.chmod(0o755)
    try:
        pki = ensure_dev_pki(workdir / "pki")
        service_password = "service-secret"
        config = BrokerConfig(
            **listener_ports(),
            bind_address="127.0.0.1",
            ca_file=pki.ca_file,
            server_cert=pki.server_cert,
            server_key=pki.server_key,
            persistence_dir=workdir / "data",
            capath=workdir / "trusted",
            service_username=SERVICE_USERNAME,
            service_password_hash_file=workdir / "run" / "service_password.hash",
            plugin_path=plugin,
        )
        write_service_password_hash(
            config.service_password_hash_file, hash_password(service_password, **FAST_HASH)
        )
        async with MosquittoProcess(config, workdir / "run") as process:
            yield RunningBroker(process, config, pki, service_password, workdir)
    finally:
        if not os.environ.get("FLEETGATE_KEEP_BROKER_DIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def service_client(broker: RunningBroker, *, password: str | None = None) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.config.service_port,
        identifier=f"fleetgate:service-{next(_tokens)}",
        username=SERVICE_USERNAME,
        password=broker.service_password if password is None else password,
        protocol=aiomqtt.ProtocolVersion.V5,
    )


def device_client(
    broker: RunningBroker,
    *,
    port: int | None = None,
    identifier: str,
    username: str | None = None,
    password: str | None = None,
    certificate: Issued | None = None,
    chain: Sequence[Issued] = (),
    timeout: float | None = None,
) -> aiomqtt.Client:
    """A TLS client (password listener unless ``port`` says otherwise)."""
    return aiomqtt.Client(
        "localhost",
        port or broker.config.password_port,
        identifier=identifier,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=broker.tls_context(certificate, chain),
        timeout=timeout,
    )


async def send_control(client: aiomqtt.Client, lines: Sequence[str]) -> control.ControlResponse:
    """Publish ``lines`` plus a sync line and wait for the plugin's answer.

    ``client`` must be a connected service client subscribed to the response topic.
    """
    token = f"t{next(_tokens)}"
    await client.publish(control.CONTROL_TOPIC, control.message([*lines, control.sync(token)]), 1)
    return await next_response(client, token)


async def next_response(client: aiomqtt.Client, token: str) -> control.ControlResponse:
    async def wait() -> control.ControlResponse:
        async for msg in client.messages:
            if str(msg.topic) != control.RESPONSE_TOPIC:
                continue
            assert isinstance(msg.payload, bytes)
            response = control.parse_response(msg.payload)
            if token in response.synced:
                return response
        raise AssertionError("message stream ended")

    return await asyncio.wait_for(wait(), REPLY_TIMEOUT)


async def can_connect(client: aiomqtt.Client) -> bool:
    """True when the broker accepts the CONNECT, False when it refuses it."""
    try:
        async with client:
            return True
    except aiomqtt.MqttError:
        return False


async def tls_session_refused(broker: RunningBroker, port: int) -> bool:
    """True when the server ends a TLS session (opened without a client certificate)
    before sending a single byte. aiomqtt would only notice this by timing out."""
    reader, writer = await asyncio.open_connection(
        "localhost", port, ssl=broker.tls_context(), server_hostname="localhost"
    )
    try:
        data = await asyncio.wait_for(reader.read(1), REPLY_TIMEOUT)
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()
    return data == b""


async def wait_for_log(broker: RunningBroker, text: str) -> bool:
    """Wait (bounded) until ``text`` appears in mosquitto's recent output."""

    async def poll() -> None:
        # Polling a deque the log pump fills; an Event per search string is not worth it.
        while not any(text in line for line in broker.process.log_tail()):  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), REPLY_TIMEOUT)
    except TimeoutError:
        return False
    return True


@dataclass(frozen=True)
class TrustedBroker:
    """A running broker with one CA of ``tenant`` in its capath (the plugin learns it from
    :meth:`ca_line`, pushed by the test or part of a service's state)."""

    broker: RunningBroker
    ca: Issued
    fingerprint: str
    tenant: str = "t1"

    def ca_line(self, *, autoreg: bool = True) -> str:
        der = self.ca.certificate.public_bytes(serialization.Encoding.DER)
        return control.ca(self.fingerprint, self.tenant, True, autoreg, der)

    def client(self, device_id: str) -> aiomqtt.Client:
        """A device with a certificate of the CA (CN = ``device_id``)."""
        return device_client(
            self.broker,
            port=self.broker.config.cert_port,
            identifier=device_id,
            certificate=issue_client_certificate(self.ca, device_id),
            timeout=REPLY_TIMEOUT,
        )


@contextlib.asynccontextmanager
async def trusted_broker(ca_name: str, tenant: str = "t1") -> AsyncIterator[TrustedBroker]:
    """A broker of its own whose capath holds a new CA named ``ca_name``."""
    async with running_broker() as running:
        ca = generate_ca(ca_name)
        fp = fingerprint(ca.certificate)
        await asyncio.to_thread(sync_capath, running.config.trusted_dir(), {fp: ca.cert_pem()})
        yield TrustedBroker(running, ca, fp, tenant)


@contextlib.asynccontextmanager
async def reset_service(broker: RunningBroker) -> AsyncIterator[aiomqtt.Client]:
    """A service connection reading control responses, after a ``reset`` (which also
    kicks the device sessions an earlier test left behind)."""
    async with service_client(broker) as client:
        granted = await client.subscribe(control.RESPONSE_TOPIC, qos=1)
        assert not any(refused(code) for code in granted)
        response = await send_control(client, [control.reset()])
        assert response.errors == ()
        yield client


async def push(service: aiomqtt.Client, *lines: str) -> control.ControlResponse:
    """Send control lines that must all be accepted."""
    response = await send_control(service, lines)
    assert response.errors == ()
    return response


def refused(reason_code: int | aiomqtt.client.ReasonCode) -> bool:
    """True for an MQTT 5 failure reason code (e.g. SUBACK 0x87 not authorized)."""
    value = reason_code if isinstance(reason_code, int) else reason_code.value
    return value >= 0x80


def device_account(
    tenant: str, device_id: str, password: str, *, cost: dict[str, int] = FAST_HASH
) -> str:
    """The ``account device`` line for a password device with ``password``."""
    return control.device_account(tenant, device_id, hash_password(password, **cost))


def password_device_client(
    broker: RunningBroker,
    tenant: str,
    device_id: str,
    password: str,
    *,
    client_id: str | None = None,
) -> aiomqtt.Client:
    """A password device on the password listener: username ``<tenant>/device_<id>`` and,
    unless ``client_id`` says otherwise, the device id as client id."""
    return device_client(
        broker,
        identifier=device_id if client_id is None else client_id,
        username=control.device_username(tenant, device_id),
        password=password,
        timeout=REPLY_TIMEOUT,
    )


Event = control.Connected | control.Disconnected


class Events:
    """A service connection reading fleetgate/v1/events. A plain subscription:
    mosquitto 2.0.11 never delivers a ``$``-topic to a ``$share/<group>/$...``
    subscription (measured; docs/decisions/0002)."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.seen: list[Event] = []

    async def next(self, match: Callable[[Event], bool]) -> Event:
        async def wait() -> Event:
            async for msg in self.client.messages:
                assert isinstance(msg.payload, bytes)
                event = control.parse_event(msg.payload)
                self.seen.append(event)
                if match(event):
                    return event
            raise AssertionError("event stream ended")

        return await asyncio.wait_for(wait(), REPLY_TIMEOUT)

    async def connected(self, client_id: str) -> control.Connected:
        event = await self.next(
            lambda e: isinstance(e, control.Connected) and e.client_id == client_id
        )
        assert isinstance(event, control.Connected)
        return event

    async def disconnected(self, client_id: str) -> control.Disconnected:
        event = await self.next(
            lambda e: isinstance(e, control.Disconnected) and e.client_id == client_id
        )
        assert isinstance(event, control.Disconnected)
        return event


@contextlib.asynccontextmanager
async def events_reader(broker: RunningBroker) -> AsyncIterator[Events]:
    """A service connection subscribed to the events topic."""
    async with service_client(broker) as client:
        granted = await client.subscribe(control.EVENTS_TOPIC, qos=1)
        assert not any(refused(code) for code in granted)
        yield Events(client)


async def dropped(client: aiomqtt.Client) -> bool:
    """True when the broker ends ``client``'s connection within the reply timeout."""

    async def drain() -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for _ in client.messages:
                pass

    try:
        await asyncio.wait_for(drain(), REPLY_TIMEOUT)
    except TimeoutError:
        return False
    return True


@contextlib.asynccontextmanager
async def connected(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """``async with client`` that tolerates the broker having dropped it."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with client:
            yield client


async def round_trip(client: aiomqtt.Client, topic: str) -> bool:
    """True when ``client`` (still connected) receives what it publishes to ``topic``,
    which it may subscribe to."""
    payload = f"ping-{next(_tokens)}".encode()
    granted = await client.subscribe(topic, qos=1)
    if any(refused(code) for code in granted):
        return False
    await client.publish(topic, payload, qos=1)

    async def wait() -> None:
        async for msg in client.messages:
            if msg.payload == payload:
                return

    await asyncio.wait_for(wait(), REPLY_TIMEOUT)
    await client.unsubscribe(topic)
    return True


# --- fixtures shared by the broker test modules (import them by name) -----------------------


@pytest.fixture(scope="module")
async def broker() -> AsyncIterator[RunningBroker]:
    """One broker with the plugin for the whole module (tests reset its state)."""
    async with running_broker() as running:
        yield running


@pytest.fixture
async def service(broker: RunningBroker) -> AsyncIterator[aiomqtt.Client]:
    """A service connection, after a ``reset`` of the plugin's state."""
    async with reset_service(broker) as client:
        yield client


@pytest.fixture
async def events(broker: RunningBroker) -> AsyncIterator[Events]:
    """The plugin's connect/disconnect events, as they come."""
    async with events_reader(broker) as reader:
        yield reader
