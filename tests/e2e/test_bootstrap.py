"""Bootstrap end to end through `fleetgate up`: HTTP (with Cumulocity's own Python client,
c8y-api) and MQTT, then a login with the issued credentials."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from c8y_api import CumulocityDeviceRegistry

from stack_support import Up, ports, processes_under

pytestmark = pytest.mark.e2e

DEADLINE = 20.0  # an upper bound for waiting, never an assertion of speed


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def stack(home: Path) -> AsyncIterator[dict[str, Any]]:
    up = Up(home, home.parent / "certs", ports())
    try:
        yield await asyncio.to_thread(up.wait_ready)
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


def operator(stack: dict[str, Any]) -> httpx.AsyncClient:
    admin = stack["admin"]
    return httpx.AsyncClient(
        base_url=stack["api_url"],
        auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
        timeout=30,
    )


def password_client(
    stack: dict[str, Any], client_id: str, username: str, password: str
) -> aiomqtt.Client:
    return aiomqtt.Client(
        stack["mqtt_host"],
        int(stack["mqtt_password_port"]),
        identifier=client_id,
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=ssl.create_default_context(cafile=stack["ca_file"]),
        timeout=10,
    )


async def wait_for_status(api: httpx.AsyncClient, device_id: str, status: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        got = await api.get(f"/devicecontrol/newDeviceRequests/{device_id}")
        if got.status_code == 200 and got.json()["status"] == status:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"request {device_id} never reached {status}")


async def test_cumulocitys_python_client_awaits_credentials_from_fleetgate(
    stack: dict[str, Any],
) -> None:
    boot = stack["bootstrap"]
    registry = CumulocityDeviceRegistry(
        stack["api_url"], boot["tenant"], boot["username"], boot["password"]
    )
    async with operator(stack) as api:
        created = await api.post("/devicecontrol/newDeviceRequests", json={"id": "c8y-dev-1"})
        assert created.status_code == 201
        waiting = asyncio.create_task(
            asyncio.to_thread(registry.await_credentials, "c8y-dev-1", "60s", "1s")
        )
        await wait_for_status(api, "c8y-dev-1", "PENDING_ACCEPTANCE")
        accepted = await api.put(
            "/devicecontrol/newDeviceRequests/c8y-dev-1", json={"status": "ACCEPTED"}
        )
        assert accepted.status_code == 200
        credentials = await asyncio.wait_for(waiting, 60)
        assert credentials.tenant_id == boot["tenant"]
        assert credentials.username == "device_c8y-dev-1"

        # The issued credentials log in on the password listener, with the device id as
        # client id, and reach only the device's own topics.
        device = password_client(
            stack,
            "c8y-dev-1",
            f"{credentials.tenant_id}/{credentials.username}",
            credentials.password,
        )
        async with device:
            await device.subscribe("fg/d/c8y-dev-1/#", qos=1)
            await device.publish("fg/d/c8y-dev-1/hello", b"hi", qos=1)
            message = await asyncio.wait_for(anext(aiter(device.messages)), DEADLINE)
            assert message.payload == b"hi"
        impostor = password_client(
            stack,
            "someone-else",
            f"{credentials.tenant_id}/{credentials.username}",
            credentials.password,
        )
        with pytest.raises(aiomqtt.MqttError):
            async with impostor:
                pass


async def test_devices_without_http_bootstrap_over_mqtt(stack: dict[str, Any]) -> None:
    boot = stack["bootstrap"]
    tenant = boot["tenant"]
    user = f"{tenant}/{boot['username']}"
    base = f"fg/bootstrap/{tenant}/mqtt-dev-1"
    async with (
        operator(stack) as api,
        password_client(stack, "mqtt-dev-1", user, boot["password"]) as device,
        password_client(stack, "spy", user, boot["password"]) as spy,
    ):
        await device.subscribe(f"{base}/credentials", qos=1)
        await device.subscribe(f"{base}/error", qos=1)
        await spy.subscribe(f"{base}/#", qos=1)
        await spy.subscribe("#", qos=1)
        replies = aiter(device.messages)

        async def ask(payload: bytes = b"{}") -> tuple[str, dict[str, Any]]:
            await device.publish(f"{base}/request", payload, qos=1)
            message = await asyncio.wait_for(anext(replies), DEADLINE)
            return str(message.topic), json.loads(message.payload)

        assert await ask() == (f"{base}/credentials", {"status": "NOT_FOUND"})
        await api.post("/devicecontrol/newDeviceRequests", json={"id": "mqtt-dev-1"})
        assert (await ask())[1] == {"status": "PENDING_ACCEPTANCE"}
        await wait_for_status(api, "mqtt-dev-1", "PENDING_ACCEPTANCE")
        await api.put("/devicecontrol/newDeviceRequests/mqtt-dev-1", json={"status": "ACCEPTED"})
        topic, issued = await ask()
        assert topic == f"{base}/credentials"
        assert issued["status"] == "ACCEPTED"
        assert issued["username"] == "device_mqtt-dev-1"
        assert issued["mqttUsername"] == f"{tenant}/device_mqtt-dev-1"
        # Repeated asking is rate-limited; a bad payload is answered on the error topic.
        limited = await ask()
        assert limited[1]["status"] == "RATE_LIMITED"
        assert limited[1]["retryAfter"] > 0
        topic, error = await ask(b"not json")
        assert topic == f"{base}/error"
        assert "JSON object" in error["message"]
        # Another bootstrap client saw none of it.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(spy.messages)), 1.0)

    async with password_client(
        stack, "mqtt-dev-1", issued["mqttUsername"], issued["password"]
    ) as logged_in:
        await logged_in.publish("fg/d/mqtt-dev-1/status", b"up", qos=1)
    async with operator(stack) as api:
        ext = await api.get("/identity/externalIds/c8y_Serial/mqtt-dev-1")
        assert ext.status_code == 200


async def test_bulk_credentials_from_csv_log_in_at_once(stack: dict[str, Any]) -> None:
    tenant = stack["admin"]["tenant"]
    csv = (
        "ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL\n"
        "csv-101;abcd1234;type_of_device;Device 101;111111111;;csv device/subgroup0;1\n"
        "csv-102;abcd1234;type_of_device;Device 102;;;csv device/subgroup0;0\n"
        "bad/id;abcd1234;type_of_device;Bad;;;;\n"
    )
    async with operator(stack) as api:
        response = await api.post(
            "/devicecontrol/bulkNewDeviceRequests",
            files={"file": ("devices.csv", csv.encode(), "text/plain")},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["numberOfAll"], body["numberOfCreated"], body["numberOfFailed"]) == (3, 2, 1)
    async with password_client(stack, "csv-101", f"{tenant}/device_csv-101", "abcd1234") as device:
        await device.publish("fg/d/csv-101/status", b"up", qos=1)
    with pytest.raises(aiomqtt.MqttError):
        async with password_client(stack, "csv-102", f"{tenant}/device_csv-102", "wrong-pw"):
            pass
    # Disabling the device user cuts the live session and refuses the next login.
    async with (
        operator(stack) as api,
        password_client(stack, "csv-102", f"{tenant}/device_csv-102", "abcd1234") as live,
    ):
        off = await api.put(f"/user/{tenant}/users/device_csv-102", json={"enabled": False})
        assert off.status_code == 200
        with pytest.raises(aiomqtt.MqttError):
            await asyncio.wait_for(anext(aiter(live.messages)), DEADLINE)
    with pytest.raises(aiomqtt.MqttError):
        async with password_client(stack, "csv-102", f"{tenant}/device_csv-102", "abcd1234"):
            pass
