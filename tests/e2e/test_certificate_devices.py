"""X.509 devices end to end: the REST trust store, mosquitto with the plugin, the service,
PostgreSQL — all started by `fleetgate up`, certificates made at test time."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from fleetgate.pki import Issued, generate_ca, issue_client_certificate

from stack_support import Up, ports, processes_under
from waiting import eventually

pytestmark = pytest.mark.e2e

DEADLINE = 20.0  # generous upper bound for "it happens"; never an assertion of speed


class Stack:
    def __init__(self, up: Up, description: dict[str, Any], keys: Path) -> None:
        self.up = up
        self.info = description
        admin = description["admin"]
        self.tenant = admin["tenant"]
        self.api = httpx.AsyncClient(
            base_url=description["api_url"],
            auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
            timeout=30,
        )
        self.keys = keys

    def tls(self, device: Issued, name: str) -> ssl.SSLContext:
        cert, key = self.keys / f"{name}.crt", self.keys / f"{name}.key"
        device.write(cert, key)
        context = ssl.create_default_context(cafile=self.info["ca_file"])
        context.load_cert_chain(cert, key)
        return context

    def client(self, device: Issued, client_id: str, *, name: str | None = None) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.info["mqtt_host"],
            int(self.info["mqtt_cert_port"]),
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self.tls(device, name or client_id),
            timeout=10,
        )

    async def trust(self, ca: Issued, *, auto_registration: bool = True) -> str:
        response = await self.api.post(
            f"/tenant/tenants/{self.tenant}/trusted-certificates",
            json={
                "name": "devices CA",
                "certInPemFormat": ca.cert_pem().decode(),
                "status": "ENABLED",
                "autoRegistrationEnabled": auto_registration,
            },
        )
        assert response.status_code == 201, response.text
        return str(response.json()["fingerprint"])

    async def set_ca(self, fingerprint: str, **changes: Any) -> None:
        response = await self.api.put(
            f"/tenant/tenants/{self.tenant}/trusted-certificates/{fingerprint}", json=changes
        )
        assert response.status_code == 200, response.text

    async def device(self, device_id: str) -> dict[str, Any] | None:
        ext = await self.api.get(f"/identity/externalIds/c8y_Serial/{device_id}")
        if ext.status_code == 404:
            return None
        object_id = ext.json()["managedObject"]["id"]
        body: dict[str, Any] = (await self.api.get(f"/inventory/managedObjects/{object_id}")).json()
        return body


async def accepted(client: aiomqtt.Client) -> bool:
    try:
        async with client:
            return True
    except aiomqtt.MqttError:
        return False


async def dropped(client: aiomqtt.Client) -> bool:
    """True once the broker closes this connected client's session."""
    try:
        async for _ in client.messages:
            pass
    except aiomqtt.MqttError:
        return True
    return True


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def stack(home: Path) -> AsyncIterator[Stack]:
    up = Up(home, home.parent / "certs", ports())
    try:
        description = await asyncio.to_thread(up.wait_ready)
        keys = home.parent / "keys"
        keys.mkdir()
        running = Stack(up, description, keys)
        try:
            yield running
        finally:
            await running.api.aclose()
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


async def test_trusted_ca_auto_registers_and_disabling_cuts_the_session(stack: Stack) -> None:
    ca = generate_ca("factory CA")
    device = issue_client_certificate(ca, "sensor-1")
    assert not await accepted(stack.client(device, "sensor-1")), "untrusted CA let in"
    fingerprint = await stack.trust(ca)
    await eventually(lambda: accepted(stack.client(device, "sensor-1")), "the CA is trusted")

    registered = await stack.device("sensor-1")
    assert registered is not None
    assert registered["c8y_IsDevice"] == {}
    assert registered["owner"] == "device_sensor-1"
    assert registered["fleetgate_CertificateAuthority"] == {"fingerprint": fingerprint}

    async with stack.client(device, "sensor-1") as live:

        async def online() -> bool:
            mo = await stack.device("sensor-1")
            return mo is not None and mo["c8y_Connection"]["status"] == "CONNECTED"

        await eventually(online, "the device is CONNECTED")
        await live.subscribe("fg/d/sensor-1/echo", qos=1)
        await live.publish("fg/d/sensor-1/echo", b"hello", qos=1)
        message = await asyncio.wait_for(anext(aiter(live.messages)), DEADLINE)
        assert message.payload == b"hello"

        await stack.set_ca(fingerprint, status="DISABLED")
        assert await asyncio.wait_for(dropped(live), DEADLINE)
    assert not await accepted(stack.client(device, "sensor-1"))

    async def offline() -> bool:
        mo = await stack.device("sensor-1")
        return mo is not None and mo["c8y_Connection"]["status"] == "DISCONNECTED"

    await eventually(offline, "the device is DISCONNECTED")
    await stack.set_ca(fingerprint, status="ENABLED")
    await eventually(lambda: accepted(stack.client(device, "sensor-1")), "the CA is enabled again")


async def test_device_credentials_disable_and_delete_are_live(stack: Stack) -> None:
    ca = generate_ca("line CA")
    device = issue_client_certificate(ca, "press-1")
    await stack.trust(ca)
    await eventually(lambda: accepted(stack.client(device, "press-1")), "the device registers")
    user_url = f"/user/{stack.tenant}/users/device_press-1"
    async with stack.client(device, "press-1") as live:
        off = await stack.api.put(user_url, json={"enabled": False})
        assert off.status_code == 200
        assert await asyncio.wait_for(dropped(live), DEADLINE)
    assert not await accepted(stack.client(device, "press-1"))
    assert (await stack.api.put(user_url, json={"enabled": True})).status_code == 200
    await eventually(lambda: accepted(stack.client(device, "press-1")), "enabled again")
    # Delete (a factory reset, say): the device comes back as a new registration.
    async with stack.client(device, "press-1") as live:
        assert (await stack.api.delete(user_url)).status_code == 204
        assert await asyncio.wait_for(dropped(live), DEADLINE)

    async def user_back() -> bool:
        await accepted(stack.client(device, "press-1"))
        return (await stack.api.get(user_url)).status_code == 200

    await eventually(user_back, "the device user is made again")


async def test_without_auto_registration_only_pre_registered_devices_get_in(
    stack: Stack,
) -> None:
    ca = generate_ca("strict CA")
    await stack.trust(ca, auto_registration=False)
    stranger = issue_client_certificate(ca, "stranger")
    known = issue_client_certificate(ca, "known-1")
    created = await stack.api.post(
        "/inventory/managedObjects", json={"name": "Known 1", "c8y_IsDevice": {}}
    )
    added = await stack.api.post(
        f"/identity/globalIds/{created.json()['id']}/externalIds",
        json={"type": "c8y_Serial", "externalId": "known-1"},
    )
    assert added.status_code == 201
    await eventually(lambda: accepted(stack.client(known, "known-1")), "the known device gets in")
    assert not await accepted(stack.client(stranger, "stranger"))
    assert await stack.device("stranger") is None
    assert "does not auto-register" in stack.up.output


async def test_identity_rules_hold_against_a_real_broker(stack: Stack) -> None:
    ca = generate_ca("rules CA")
    await stack.trust(ca)
    first = issue_client_certificate(ca, "dev-a")
    second = issue_client_certificate(ca, "dev-b")
    await eventually(lambda: accepted(stack.client(first, "dev-a")), "dev-a gets in")
    # CN must equal the client id: no taking over another device's session.
    assert not await accepted(stack.client(second, "dev-a", name="dev-b-as-a"))
    async with stack.client(first, "dev-a") as a, stack.client(second, "dev-b") as b:
        await b.subscribe("#", qos=1)
        await b.subscribe("fg/d/dev-a/#", qos=1)
        await b.publish("fg/d/dev-a/cmd", b"not yours", qos=1)
        await a.subscribe("fg/d/dev-a/#", qos=1)
        await a.publish("fg/d/dev-a/own", b"mine", qos=1)
        got_a = await asyncio.wait_for(anext(aiter(a.messages)), DEADLINE)
        assert (str(got_a.topic), got_a.payload) == ("fg/d/dev-a/own", b"mine")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(b.messages)), 1.0)


async def test_two_hundred_devices_connecting_at_once_register_once_each(stack: Stack) -> None:
    ca = generate_ca("fleet CA")
    await stack.trust(ca)
    probe = issue_client_certificate(ca, "probe")
    await eventually(lambda: accepted(stack.client(probe, "probe")), "the CA is trusted")
    devices = [
        (f"fleet-{i:03d}", issue_client_certificate(ca, f"fleet-{i:03d}")) for i in range(200)
    ]
    results = await asyncio.gather(*(accepted(stack.client(d, cid)) for cid, d in devices))
    assert all(results)

    async def all_registered() -> bool:
        body = (
            await stack.api.get(
                "/inventory/managedObjects",
                params={"fragmentType": "c8y_IsDevice", "withTotalPages": "true", "pageSize": 1},
            )
        ).json()
        return int(body["statistics"]["totalElements"]) >= 201

    await eventually(all_registered, "every device is registered")
    users = (
        await stack.api.get(
            f"/user/{stack.tenant}/users",
            params={"onlyDevices": "true", "withTotalPages": "true", "pageSize": 1},
        )
    ).json()
    assert users["statistics"]["totalElements"] == 201
    body = (
        await stack.api.get(
            "/inventory/managedObjects",
            params={"fragmentType": "c8y_IsDevice", "pageSize": 2000},
        )
    ).json()
    names = [m["name"] for m in body["managedObjects"]]
    assert len(names) == len(set(names)) == 201
