"""A device's connection to fleetgate: one MQTT session at a time, for as long as it runs.

After every (re)connect the client subscribes to ``op/cmd`` and ``error`` (QoS 1),
publishes the declared inventory again, then ``op/sync`` — so fleetgate sends every open
operation, and nothing sent in between is missed. The connection itself (reconnects with
jittered back-off, QoS 1 publishes that outlive a lost session) is a
:class:`~fleetgate.device.link.Link`; each operation is handed to the application once
(:class:`~fleetgate.device.operations.Operations`, through the journal).

A gateway is a device client that also speaks for children:
:class:`~fleetgate.device.gateway.GatewayClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from fleetgate.device import files
from fleetgate.device.commands import Command, FileInfo, Status
from fleetgate.device.connection import (
    BrokerAddress,
    CertificateLogin,
    PasswordLogin,
    ReconnectPolicy,
)
from fleetgate.device.errors import BadCommand
from fleetgate.device.journal import OperationJournal
from fleetgate.device.link import Link, Session, Standing
from fleetgate.device.messages import ErrorReport, Inventory, parse_error_report
from fleetgate.device.operations import Operations
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic

__all__ = [
    "BrokerAddress",
    "CertificateLogin",
    "DeviceClient",
    "ErrorHandler",
    "OperationHandler",
    "PasswordLogin",
    "ReconnectPolicy",
]

log = logging.getLogger(__name__)

_SYNC = b"{}"


OperationHandler = Callable[["DeviceClient", Command], Awaitable[None]]
"""Carries out one operation: returning means SUCCESSFUL, raising means FAILED."""
ErrorHandler = Callable[[ErrorReport], None]
"""Told about every error fleetgate reports; called in the reader, so keep it quick."""


class DeviceClient:
    """One device's MQTT connection (see the module docstring).

    Run it with ``await client.run()`` (in a TaskGroup; it returns only by cancellation)
    or ``async with client:``. ``connect_gate`` bounds how many clients sharing it are in
    a TLS handshake at once; ``http`` is used for downloads and uploads (one is made per
    transfer otherwise); ``in_flight`` bounds the publishes waiting for their PUBACK.
    """

    def __init__(
        self,
        device_id: str,
        broker: BrokerAddress,
        login: CertificateLogin | PasswordLogin,
        *,
        on_operation: OperationHandler | None = None,
        on_error: ErrorHandler | None = None,
        journal: OperationJournal | None = None,
        reconnect: ReconnectPolicy | None = None,
        connect_gate: asyncio.Semaphore | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        keepalive: int = 60,
        in_flight: int = 100,
    ) -> None:
        DeviceTopic(device_id, DeviceLeaf.OP_CMD)  # ValueError unless one topic level
        self.device_id = device_id
        self.journal = journal or OperationJournal()
        self._link = Link(
            device_id,
            broker,
            login,
            reconnect=reconnect,
            connect_gate=connect_gate,
            timeout=timeout,
            keepalive=keepalive,
            in_flight=in_flight,
        )
        self._on_error = on_error
        self._http = http
        self._runner: asyncio.Task[None] | None = None
        self._declared = Standing(self._link, self.topic(DeviceLeaf.INVENTORY))
        self._operations: Operations[DeviceClient] = Operations(
            self,
            on_operation,
            journal=self.journal,
            link=self._link,
            status_topic=self.topic(DeviceLeaf.OP_STATUS),
            who=f"device {device_id}",
        )

    def topic(self, leaf: DeviceLeaf) -> str:
        return str(DeviceTopic(self.device_id, leaf))

    @property
    def connections(self) -> int:
        """Sessions established so far (each one subscribed and synced)."""
        return self._link.connections

    @property
    def connected(self) -> bool:
        """True while a session is up, subscribed and synced."""
        return self._link.connected

    async def wait_connected(self) -> None:
        await self._link.ready_session()

    async def declare(self, inventory: Inventory) -> None:
        """Publish ``inventory`` (and again after every reconnect); returns after PUBACK."""
        await self._declared.set(inventory.encode())

    async def report(
        self, op_id: str, status: Status | str, failure_reason: str | None = None
    ) -> None:
        """Publish an operation's status; returns after the broker's PUBACK.

        A final status is remembered in the journal first; a status that would change a
        final one raises :class:`IllegalStatus`; the same final status again is sent again.
        """
        await self._operations.report(op_id, status, failure_reason)

    async def download(self, file: FileInfo, dest: Path) -> Path:
        """:func:`fleetgate.device.files.download` with this client's HTTP client."""
        return await files.download(file, dest, http=self._http)

    async def fetch(self, file: FileInfo) -> bytes:
        """:func:`fleetgate.device.files.fetch` (into memory) with this client's HTTP client."""
        return await files.fetch(file, http=self._http)

    async def upload(
        self,
        command: Command,
        data: bytes | Path,
        *,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Send a snapshot to the command's ``upload`` target (``c8y_UploadConfigFile``)."""
        if command.upload is None:
            raise BadCommand(
                f"Operation {command.id} has no upload target", operation_id=command.id
            )
        await files.upload(command.upload, data, http=self._http, content_type=content_type)

    async def __aenter__(self) -> Self:
        self._runner = asyncio.create_task(self.run(), name=f"device-{self.device_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def run(self) -> None:
        """Connect, serve, reconnect for ever; operations in progress survive reconnects.
        Returns only by cancellation (which also cancels the operations in progress)."""
        await self._link.run(self._begin, self._receive)

    # --- what a gateway extends ------------------------------------------------------------

    def _subscriptions(self) -> list[str]:
        return [self.topic(DeviceLeaf.OP_CMD), self.topic(DeviceLeaf.ERROR)]

    async def _resync(self, session: Session) -> None:
        """What a beginning session publishes before the sync: the declaration."""
        await session.resend([self._declared])

    def _receive_other(self, topic: DeviceTopic, payload: bytes) -> None:
        log.debug("device %s ignores a message on %s", self.device_id, topic)

    # ----------------------------------------------------------------------------------------

    async def _begin(self, session: Session) -> None:
        await session.subscribe(self._subscriptions())
        await self._resync(session)
        await session.publish_all([(self.topic(DeviceLeaf.OP_SYNC), _SYNC)])

    def _receive(self, topic: str, payload: bytes) -> None:
        parsed = DeviceTopic.parse(topic)
        if parsed is None:
            log.debug("device %s ignores a message on %s", self.device_id, topic)
        elif parsed.gateway is not None or parsed.device_id != self.device_id:
            self._receive_other(parsed, payload)
        elif parsed.leaf is DeviceLeaf.OP_CMD:
            self._operations.receive(payload)
        elif parsed.leaf is DeviceLeaf.ERROR:
            self._error(parse_error_report(payload))

    def _error(self, report: ErrorReport) -> None:
        log.warning(
            "fleetgate refused a message of device %s on %s: %s",
            self.device_id,
            report.topic or "?",
            report,
        )
        if self._on_error is None:
            return
        try:
            self._on_error(report)
        except Exception:
            log.exception("device %s: the error handler failed", self.device_id)
