"""The hostile pass, end to end (issue 9): through a real mosquitto with the plugin and
`fleetgate serve` on a real PostgreSQL, with real certificates.

- one device publishing every bad payload holds back no other device, is answered on its
  `error` topic, and its messages are dead letters operators can read; a restart finds
  nothing to stall on;
- no tenant takes another tenant's device, over REST or with a certificate of its own;
- a CN that is no device id is refused at CONNECT, not left connected and unknown.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from fleetgate.device.enrolment import CertificateLogin, ensure_device_certificates, ensure_fleet_ca
from fleetgate.domain.topics import DeviceTopic
from fleetgate.pki import generate_ca, issue_client_certificate
from integration.broker_support import NOT_A_DEVICE_ID, wait_for_log

from corpora.device_payloads import BY_LEAF
from serve_support import ADMIN, MANAGEMENT, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

FIRMWARE = {"c8y_Firmware": {"name": "fw", "version": "2", "url": "http://fw.example/2.bin"}}


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


def _tls(stack: Stack, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack.info.ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def raw_device(stack: Stack, device_id: str, login: CertificateLogin) -> aiomqtt.Client:
    """A device that publishes whatever it is told to, on the certificate listener."""
    return aiomqtt.Client(
        "localhost",
        stack.broker.config.cert_port,
        identifier=device_id,
        tls_context=_tls(stack, login.cert_file, login.key_file),
        timeout=30,
    )


async def _succeeds(stack: Stack, device_id: str) -> None:
    op = await stack.create(device_id, FIRMWARE)
    await eventually(lambda: _status_is(stack, op["id"], "SUCCESSFUL"), f"{device_id}'s operation")


async def _status_is(stack: Stack, op_id: str, status: str) -> bool:
    return bool((await stack.operation(op_id))["status"] == status)


async def _dead_letters(stack: Stack, device_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(
        "/devicecontrol/deadLetters",
        params={"externalId": device_id, "pageSize": 2000},
        auth=ADMIN,
    )
    assert response.status_code == 200, response.text
    letters: list[dict[str, Any]] = response.json()["deadLetters"]
    return letters


async def test_bad_messages_of_one_device_hold_back_no_one(stack: Stack) -> None:
    state = stack.workdir / "simulator"
    async with running(stack.simulation("ok", 1, delay=0)):
        await eventually(lambda: stack.declared(["ok-0001"]), "the good device")
        ca = await asyncio.to_thread(ensure_fleet_ca, state)
        logins = await asyncio.to_thread(ensure_device_certificates, state, ca, ["hd1"])
        bad = [
            (str(DeviceTopic("hd1", leaf)), payload)
            for leaf, corpus in BY_LEAF.items()
            for _, payload in corpus
        ]
        errors: list[bytes] = []
        async with raw_device(stack, "hd1", logins["hd1"]) as hd1:
            await hd1.subscribe("fg/d/hd1/error", qos=1)
            for topic, payload in bad:
                await hd1.publish(topic, payload, qos=1)
            await _succeeds(stack, "ok-0001")

            async def answered() -> None:
                async for message in hd1.messages:
                    assert isinstance(message.payload, bytes)
                    errors.append(message.payload)
                    if len(errors) == len(bad):
                        return

            await asyncio.wait_for(answered(), timeout=120)
        letters = await _dead_letters(stack, "hd1")
        assert len(letters) == min(len(bad), 100)
        binaries = (await stack.api.get("/inventory/binaries", auth=ADMIN)).json()
        assert binaries["managedObjects"] == []  # hd1 did not make itself a binary

        # What the broker held when the service died is not a stall after its restart.
        async with raw_device(stack, "hd1", logins["hd1"]) as hd1:
            for topic, payload in bad[:5]:
                await hd1.publish(topic, payload, qos=1)
        await stack.serve.kill()
        await stack.serve.start()
        await _succeeds(stack, "ok-0001")
    assert "retrying" not in stack.serve.output


async def test_no_tenant_takes_another_tenants_device(stack: Stack) -> None:
    async with running(stack.simulation("owned", 1, delay=0)):
        await eventually(lambda: stack.declared(["owned-0001"]), "the device")
        created = await stack.api.post(
            "/inventory/managedObjects", json={"name": "x", "c8y_IsDevice": {}}, auth=MANAGEMENT
        )
        assert created.status_code == 201
        taken = await stack.api.post(
            f"/identity/globalIds/{created.json()['id']}/externalIds",
            json={"type": "c8y_Serial", "externalId": "owned-0001"},
            auth=MANAGEMENT,
        )
        assert taken.status_code == 409, taken.text
        assert taken.json()["error"] == "identity/Duplicate"

        # A CA of the management tenant, auto-registering, and a certificate with the CN.
        ca = generate_ca("management devices")
        uploaded = await stack.api.post(
            "/tenant/tenants/management/trusted-certificates",
            json={
                "name": "management devices",
                "certInPemFormat": ca.cert_pem().decode(),
                "status": "ENABLED",
                "autoRegistrationEnabled": True,
            },
            auth=MANAGEMENT,
        )
        assert uploaded.status_code == 201, uploaded.text
        thief = issue_client_certificate(ca, "owned-0001")
        files = stack.workdir / "thief"
        files.mkdir(exist_ok=True)
        thief.write(files / "c.crt", files / "c.key")
        client = raw_device(stack, "owned-0001", CertificateLogin(files / "c.crt", files / "c.key"))
        with pytest.raises(aiomqtt.MqttError):
            async with client:
                pass
        await _succeeds(stack, "owned-0001")  # the real one still gets its commands
    owner = await stack.api.get("/identity/externalIds/c8y_Serial/owned-0001", auth=MANAGEMENT)
    assert owner.status_code == 404


async def test_a_cn_that_is_no_device_id_is_refused_at_connect(stack: Stack) -> None:
    state = stack.workdir / "simulator"
    async with running(stack.simulation("cn", 1, delay=0)):  # trusts its CA, auto-registering
        ca = await asyncio.to_thread(ensure_fleet_ca, state)
        logins = await asyncio.to_thread(ensure_device_certificates, state, ca, ["$SYS", " sp"])
        for cn, login in logins.items():
            with pytest.raises(aiomqtt.MqttError):
                async with raw_device(stack, cn, login):
                    pass
    async with httpx.AsyncClient(base_url=stack.serve.api_url) as api:
        found = await api.get("/inventory/managedObjects", params={"pageSize": 2000}, auth=ADMIN)
    names = {mo.get("name") for mo in found.json()["managedObjects"]}
    assert not names & {"$SYS", " sp"}
    assert "CheckViolation" not in stack.serve.output
    assert await wait_for_log(stack.broker, NOT_A_DEVICE_ID)
