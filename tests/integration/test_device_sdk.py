"""The device SDK against a real mosquitto with the fleetgate plugin.

The test plays the service: over its own service connection it reads what devices
publish (``op/sync``, ``inventory``, ``op/status``) and sends them commands and errors.
Files come from a small HTTP server in a thread (stdlib), which honours ``Range`` and can
break a response off half-way to force a resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography.hazmat.primitives import serialization

from fleetgate.device import (
    BrokerAddress,
    CertificateLogin,
    Command,
    DeviceClient,
    ErrorReport,
    Firmware,
    Inventory,
    OperationFailed,
    PasswordLogin,
    ReconnectPolicy,
    Status,
)
from fleetgate.domain import broker_control as control
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.pki import generate_ca, issue_client_certificate
from fleetgate.pki.capath import fingerprint, sync_capath

from broker_support import (
    REPLY_TIMEOUT,
    RunningBroker,
    broker,
    device_account,
    push,
    refused,
    reset_service,
    service_client,
)

__all__ = ["broker"]  # fixtures

pytestmark = pytest.mark.integration

TENANT = "t1"
PASSWORD = "device-secret"
FAST_RECONNECT = ReconnectPolicy(initial=0.05, maximum=0.2)
Message = dict[str, Any]


@pytest.fixture
async def control_client(broker: RunningBroker) -> AsyncIterator[aiomqtt.Client]:
    async with reset_service(broker) as client:
        yield client


class Service:
    """What the devices published, per (device id, leaf), in order of arrival."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self._queues: dict[tuple[str, DeviceLeaf], asyncio.Queue[Message]] = {}

    def _queue(self, device_id: str, leaf: DeviceLeaf) -> asyncio.Queue[Message]:
        return self._queues.setdefault((device_id, leaf), asyncio.Queue())

    async def read(self) -> None:
        async for message in self.client.messages:
            topic = DeviceTopic.parse(message.topic.value)
            assert topic is not None, message.topic.value
            assert isinstance(message.payload, bytes)
            self._queue(topic.device_id, topic.leaf).put_nowait(json.loads(message.payload))

    async def next(self, device_id: str, leaf: DeviceLeaf) -> Message:
        return await asyncio.wait_for(self._queue(device_id, leaf).get(), REPLY_TIMEOUT)

    async def statuses(self, device_id: str, count: int) -> list[Message]:
        return [await self.next(device_id, DeviceLeaf.OP_STATUS) for _ in range(count)]

    def pending(self, device_id: str, leaf: DeviceLeaf) -> int:
        return self._queue(device_id, leaf).qsize()

    async def send(self, device_id: str, leaf: DeviceLeaf, body: Message) -> None:
        topic = str(DeviceTopic(device_id, leaf))
        await self.client.publish(topic, json.dumps(body).encode(), qos=1)


@pytest.fixture
async def service(broker: RunningBroker) -> AsyncIterator[Service]:
    async with service_client(broker) as client:
        for leaf in (DeviceLeaf.OP_SYNC, DeviceLeaf.OP_STATUS, DeviceLeaf.INVENTORY):
            granted = await client.subscribe(DeviceTopic.pattern(leaf), qos=1)
            assert not any(refused(code) for code in granted)
        playing = Service(client)
        reader = asyncio.create_task(playing.read())
        try:
            yield playing
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


@dataclass
class FileServer:
    """Serves ``files`` over HTTP/1.0 with ``Range``; a path in ``break_next`` gets half
    its body and a closed connection, once. PUTs are kept in ``uploads``."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    break_next: set[str] = field(default_factory=set)
    ranges: list[tuple[str, str | None]] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}?signature=test"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                content = server.files.get(path)
                asked = self.headers.get("Range")
                server.ranges.append((path, asked))
                if content is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", asked or "")
                if match:
                    start = int(match.group(1))
                    self.send_response(206)
                    self.send_header(
                        "Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}"
                    )
                else:
                    self.send_response(200)
                body = content[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.break_next:
                    server.break_next.discard(path)
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.uploads[self.path.partition("?")[0]] = self.rfile.read(length)
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def files() -> Iterator[FileServer]:
    server = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.handler())
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Operations:
    """An application's operation handler that counts what it was given."""

    seen: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    workdir: Path | None = None

    async def __call__(self, device: DeviceClient, command: Command) -> None:
        self.seen.append(command.id)
        await device.report(command.id, Status.EXECUTING)
        if command.description == "wait":
            await self.release.wait()
        if command.description == "fail":
            raise OperationFailed("the device says no")
        for number, file in enumerate(command.files):
            assert self.workdir is not None
            await device.download(file, self.workdir / f"{command.id}-{number}")
        if command.config_upload is not None:
            await device.upload(command, b"ssh.enabled = true\n", content_type="text/plain")


def password_device(broker: RunningBroker, device_id: str, **options: Any) -> DeviceClient:
    return DeviceClient(
        device_id,
        BrokerAddress("localhost", broker.config.password_port, broker.pki.ca_file),
        PasswordLogin(TENANT, PASSWORD),
        reconnect=FAST_RECONNECT,
        timeout=REPLY_TIMEOUT,
        **options,
    )


def command(op_id: str, kind: str = "c8y_Restart", **fields: Any) -> Message:
    return {"id": op_id, "type": kind, **fields}


# ---------------------------------------------------------------------------------------


async def test_an_operation_is_executed_once_and_its_end_reported_again(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    await push(control_client, device_account(TENANT, "sdk-once", PASSWORD))
    operations = Operations()
    async with password_device(broker, "sdk-once", on_operation=operations) as device:
        assert await service.next("sdk-once", DeviceLeaf.OP_SYNC) == {}
        await service.send("sdk-once", DeviceLeaf.OP_CMD, command("7", description="wait"))
        assert await service.statuses("sdk-once", 1) == [{"id": "7", "status": "EXECUTING"}]
        # Delivered again while it runs (a sync, a service restart): not run twice.
        await service.send("sdk-once", DeviceLeaf.OP_CMD, command("7", description="wait"))
        operations.release.set()
        assert await service.statuses("sdk-once", 1) == [{"id": "7", "status": "SUCCESSFUL"}]
        # Delivered once more after the end: the device answers with the final status.
        await service.send("sdk-once", DeviceLeaf.OP_CMD, command("7", description="wait"))
        assert await service.statuses("sdk-once", 1) == [{"id": "7", "status": "SUCCESSFUL"}]
        assert operations.seen == ["7"]
        assert device.connections == 1


async def test_failures_and_bad_commands_are_reported_failed_with_the_reason(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    await push(control_client, device_account(TENANT, "sdk-fail", PASSWORD))
    operations = Operations()
    async with password_device(broker, "sdk-fail", on_operation=operations):
        await service.next("sdk-fail", DeviceLeaf.OP_SYNC)
        await service.send("sdk-fail", DeviceLeaf.OP_CMD, command("8", description="fail"))
        assert await service.statuses("sdk-fail", 2) == [
            {"id": "8", "status": "EXECUTING"},
            {"id": "8", "status": "FAILED", "failureReason": "the device says no"},
        ]
        await service.send("sdk-fail", DeviceLeaf.OP_CMD, command("9", "c8y_Firmware", payload={}))
        [status] = await service.statuses("sdk-fail", 1)
        assert status["status"] == "FAILED"
        assert status["failureReason"].startswith("Bad command (c8y_Firmware): payload.name")
        assert operations.seen == ["8"]


async def test_after_a_reconnect_the_device_declares_itself_and_syncs_again(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    account = device_account(TENANT, "sdk-back", PASSWORD)
    await push(control_client, account)
    inventory = Inventory(type="sdk-test", firmware=Firmware("fw", "1.0"))
    operations = Operations()
    async with password_device(broker, "sdk-back", on_operation=operations) as device:
        await device.declare(inventory)
        first = [
            await service.next("sdk-back", leaf)
            for leaf in (DeviceLeaf.OP_SYNC, DeviceLeaf.INVENTORY)
        ]
        assert first == [{}, inventory.payload()]
        assert service.pending("sdk-back", DeviceLeaf.INVENTORY) == 0  # declared once

        # Removing the account kicks the session; the device retries until it is back.
        await push(control_client, control.account_remove(f"{TENANT}/device_sdk-back"))
        await push(control_client, account)
        assert await service.next("sdk-back", DeviceLeaf.INVENTORY) == inventory.payload()
        assert await service.next("sdk-back", DeviceLeaf.OP_SYNC) == {}
        await device.wait_connected()
        assert device.connections == 2
        # Subscribed before the sync: a command answering it arrives.
        await service.send("sdk-back", DeviceLeaf.OP_CMD, command("10"))
        assert await service.statuses("sdk-back", 2) == [
            {"id": "10", "status": "EXECUTING"},
            {"id": "10", "status": "SUCCESSFUL"},
        ]


async def test_errors_from_fleetgate_reach_the_application(
    broker: RunningBroker, control_client: aiomqtt.Client, service: Service
) -> None:
    await push(control_client, device_account(TENANT, "sdk-err", PASSWORD))
    errors: asyncio.Queue[ErrorReport] = asyncio.Queue()
    async with password_device(broker, "sdk-err", on_error=errors.put_nowait):
        await service.next("sdk-err", DeviceLeaf.OP_SYNC)
        body = {"error": "operations/notFound", "message": "no operation 99", "id": "99"}
        await service.send("sdk-err", DeviceLeaf.ERROR, body)
        report = await asyncio.wait_for(errors.get(), REPLY_TIMEOUT)
    assert report == ErrorReport("operations/notFound", "no operation 99", None, "99")


async def test_a_certificate_device_downloads_resuming_and_verifies(
    broker: RunningBroker,
    control_client: aiomqtt.Client,
    service: Service,
    files: FileServer,
    tmp_path: Path,
) -> None:
    ca = generate_ca("SDK test CA")
    fp = fingerprint(ca.certificate)
    await asyncio.to_thread(sync_capath, broker.config.trusted_dir(), {fp: ca.cert_pem()})
    der = ca.certificate.public_bytes(serialization.Encoding.DER)
    await push(control_client, control.ca(fp, TENANT, True, False, der))
    await push(control_client, control.device("sdk-cert", TENANT, True))
    login = CertificateLogin(tmp_path / "sdk-cert.crt", tmp_path / "sdk-cert.key")
    issue_client_certificate(ca, "sdk-cert").write(login.cert_file, login.key_file)

    content = bytes(range(256)) * 1024
    files.files["/files/fw"] = content
    files.break_next.add("/files/fw")
    file = {"url": files.url("/files/fw"), "size": len(content)}
    sha = hashlib.sha256(content).hexdigest()
    operations = Operations(workdir=tmp_path / "downloads")
    device = DeviceClient(
        "sdk-cert",
        BrokerAddress("localhost", broker.config.cert_port, broker.pki.ca_file),
        login,
        on_operation=operations,
        reconnect=FAST_RECONNECT,
        timeout=REPLY_TIMEOUT,
    )
    async with device:
        await service.next("sdk-cert", DeviceLeaf.OP_SYNC)
        payload = {"name": "fw", "version": "2", "file": {**file, "sha256": sha}}
        await service.send(
            "sdk-cert", DeviceLeaf.OP_CMD, command("20", "c8y_Firmware", payload=payload)
        )
        assert [s["status"] for s in await service.statuses("sdk-cert", 2)] == [
            "EXECUTING",
            "SUCCESSFUL",
        ]
        assert (tmp_path / "downloads" / "20-0").read_bytes() == content
        half = len(content) // 2
        assert files.ranges == [("/files/fw", None), ("/files/fw", f"bytes={half}-")]

        wrong = "0" * 64
        payload = {"name": "fw", "version": "3", "file": {**file, "sha256": wrong}}
        await service.send(
            "sdk-cert", DeviceLeaf.OP_CMD, command("21", "c8y_Firmware", payload=payload)
        )
        assert await service.statuses("sdk-cert", 2) == [
            {"id": "21", "status": "EXECUTING"},
            {
                "id": "21",
                "status": "FAILED",
                "failureReason": f"SHA-256 mismatch: expected {wrong}, got {sha}",
            },
        ]

        upload = {"url": files.url("/upload/22"), "method": "PUT"}
        body = command("22", "c8y_UploadConfigFile", payload={"type": "ssh"}, upload=upload)
        await service.send("sdk-cert", DeviceLeaf.OP_CMD, body)
        assert [s["status"] for s in await service.statuses("sdk-cert", 2)] == [
            "EXECUTING",
            "SUCCESSFUL",
        ]
        assert files.uploads["/upload/22"] == b"ssh.enabled = true\n"
