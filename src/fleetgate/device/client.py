"""A device's connection to fleetgate: one MQTT session at a time, for as long as it runs.

After every (re)connect the client subscribes to ``op/cmd`` and ``error`` (QoS 1),
publishes the declared inventory again, then ``op/sync`` — so fleetgate sends every open
operation, and nothing sent in between is missed. Between attempts it waits a random time
under an exponentially growing cap (:class:`ReconnectPolicy`): a fleet that lost its
broker at once does not come back at once.

Commands go through an :class:`OperationJournal`: the handler sees each operation id
once; a repeated command of a finished operation is answered with its final status by
the client itself. The handler's outcome is the operation's outcome: returning reports
SUCCESSFUL, raising reports FAILED with the exception's message (unless the handler
reported a final status itself).

Every publish is QoS 1 and returns after the broker's PUBACK; when the connection is lost
first, it is published again on the next session (fleetgate treats repeats as no-ops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiomqtt
import httpx

from fleetgate.cancellation import raise_if_cancelling
from fleetgate.device import files
from fleetgate.device.commands import Command, FileInfo, Status, parse_command
from fleetgate.device.connection import (
    BrokerAddress,
    CertificateLogin,
    PasswordLogin,
    ReconnectPolicy,
    refused,
    tls_context,
)
from fleetgate.device.errors import BadCommand, DeviceError
from fleetgate.device.journal import Action, OperationJournal
from fleetgate.device.messages import ErrorReport, Inventory, encode_status, parse_error_report
from fleetgate.domain.devices import device_username
from fleetgate.domain.errors import FleetgateError
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.domain.users import mqtt_username

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
    transfer otherwise).
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
    ) -> None:
        DeviceTopic(device_id, DeviceLeaf.OP_CMD)  # ValueError unless one topic level
        self.device_id = device_id
        self.journal = journal or OperationJournal()
        #: Sessions established so far (each one subscribed and synced).
        self.connections = 0
        self._broker = broker
        self._login = login
        self._tls = tls_context(device_id, broker, login)
        self._on_operation = on_operation
        self._on_error = on_error
        self._reconnect = reconnect or ReconnectPolicy()
        self._gate = connect_gate
        self._http = http
        self._timeout = timeout
        self._keepalive = keepalive
        self._rng = random.Random()  # noqa: S311 — jitter only
        self._session: _Session | None = None
        self._ready = asyncio.Event()  # set while a session is ready, or once stopped
        self._stopped = False
        self._tasks: asyncio.TaskGroup | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inventory: bytes | None = None
        self._inventory_sent: bytes | None = None

    def topic(self, leaf: DeviceLeaf) -> str:
        return str(DeviceTopic(self.device_id, leaf))

    @property
    def connected(self) -> bool:
        """True while a session is up, subscribed and synced."""
        return self._session is not None

    async def wait_connected(self) -> None:
        await self._ready_session()

    async def declare(self, inventory: Inventory) -> None:
        """Publish ``inventory`` (and again after every reconnect); returns after PUBACK."""
        payload = inventory.encode()
        self._inventory = payload
        await self._ready_session()
        if self._inventory_sent is payload:
            return  # the session's start sent it already
        await self._publish(self.topic(DeviceLeaf.INVENTORY), payload)
        if self._inventory is payload:
            self._inventory_sent = payload

    async def report(
        self, op_id: str, status: Status | str, failure_reason: str | None = None
    ) -> None:
        """Publish an operation's status; returns after the broker's PUBACK.

        A final status is remembered in the journal first; a status that would change a
        final one raises :class:`IllegalStatus`; the same final status again is sent again.
        """
        status = Status(status)
        self.journal.check(op_id, status)
        if status.final:
            self.journal.finish(op_id, status, failure_reason)
        await self._publish(
            self.topic(DeviceLeaf.OP_STATUS), encode_status(op_id, status, failure_reason)
        )

    async def download(self, file: FileInfo, dest: Path) -> Path:
        """:func:`fleetgate.device.files.download` with this client's HTTP client."""
        return await files.download(file, dest, http=self._http)

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
        if self._tasks is not None:
            raise DeviceError(f"device {self.device_id} is running already")
        self._stopped = False
        self._ready.clear()
        attempt = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                while True:
                    before = self.connections
                    try:
                        await self._serve()
                    except (aiomqtt.MqttError, DeviceError) as exc:
                        raise_if_cancelling(exc)
                        self._log_loss(exc, lost=self.connections > before, attempt=attempt)
                    attempt = 0 if self.connections > before else attempt + 1
                    await asyncio.sleep(self._reconnect.delay(attempt, self._rng))
        finally:
            self._tasks = None
            self._stopped = True
            self._ready.set()  # wakes the waiting publishers: they raise now

    def _log_loss(self, exc: Exception, *, lost: bool, attempt: int) -> None:
        if lost:
            log.warning("device %s lost its connection: %s", self.device_id, exc)
        else:
            log.log(
                logging.INFO if attempt == 0 else logging.DEBUG,
                "device %s could not connect (attempt %d): %s",
                self.device_id,
                attempt + 1,
                exc,
            )

    async def _serve(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with self._gate or contextlib.nullcontext():
                client = await stack.enter_async_context(self._mqtt_client())
            granted = await client.subscribe(
                [(self.topic(DeviceLeaf.OP_CMD), 1), (self.topic(DeviceLeaf.ERROR), 1)]
            )
            if any(refused(code) for code in granted):
                raise DeviceError(f"the broker refused device {self.device_id}'s subscriptions")
            inventory = self._inventory
            if inventory is not None:
                await client.publish(self.topic(DeviceLeaf.INVENTORY), inventory, qos=1)
                self._inventory_sent = inventory
            await client.publish(self.topic(DeviceLeaf.OP_SYNC), _SYNC, qos=1)
            session = _Session(client)
            self._session = session
            self.connections += 1
            self._ready.set()
            log.debug("device %s connected (session %d)", self.device_id, self.connections)
            try:
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    self._receive(message.topic.value, payload)
            finally:
                session.closed.set()
                self._session = None
                self._ready.clear()

    def _mqtt_client(self) -> aiomqtt.Client:
        username = password = None
        if isinstance(self._login, PasswordLogin):
            username = mqtt_username(self._login.tenant, device_username(self.device_id))
            password = self._login.password
        return aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            identifier=self.device_id,
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=self._tls,
            keepalive=self._keepalive,
            timeout=self._timeout,
        )

    def _receive(self, topic: str, payload: bytes) -> None:
        parsed = DeviceTopic.parse(topic)
        if parsed is None or parsed.device_id != self.device_id:
            log.debug("device %s ignores a message on %s", self.device_id, topic)
        elif parsed.leaf is DeviceLeaf.OP_CMD:
            self._command(payload)
        elif parsed.leaf is DeviceLeaf.ERROR:
            self._error(payload)

    def _command(self, payload: bytes) -> None:
        command: Command | None = None
        try:
            command = parse_command(payload)
            op_id = command.id
        except BadCommand as exc:
            # A command fleetgate should not have sent; failing it beats leaving it open.
            log.error("device %s received a bad command: %s", self.device_id, exc)
            if exc.operation_id is None:
                return
            op_id, problem = exc.operation_id, str(exc)
        admission = self.journal.admit(op_id)
        if admission.action is Action.IGNORE:
            log.debug("device %s: operation %s is in progress already", self.device_id, op_id)
        elif admission.action is Action.REPORT_AGAIN:
            assert admission.final is not None
            final = admission.final
            self._spawn(self._report_again(op_id, final.status, final.failure_reason))
        elif command is None:
            self._spawn(self._settle(op_id, Status.FAILED, problem))
        else:
            self._spawn(self._execute(command))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._tasks is not None  # messages are only read while running
        self._tasks.create_task(_guarded(self.device_id, work))

    async def _execute(self, command: Command) -> None:
        handler = self._on_operation
        if handler is None:
            await self._settle(command.id, Status.FAILED, "The device does not run operations")
            return
        try:
            await handler(self, command)
        except asyncio.CancelledError:
            self.journal.release(command.id)
            raise
        except Exception as exc:
            if not isinstance(exc, FleetgateError):
                log.exception("device %s: operation %s failed", self.device_id, command.id)
            reason = str(exc) if isinstance(exc, FleetgateError) else f"{type(exc).__name__}: {exc}"
            await self._settle(command.id, Status.FAILED, reason or type(exc).__name__)
        else:
            await self._settle(command.id, Status.SUCCESSFUL)

    async def _settle(self, op_id: str, status: Status, reason: str | None = None) -> None:
        """Report a final status unless the handler reported one already."""
        if self.journal.final(op_id) is None:
            await self._report_again(op_id, status, reason)

    async def _report_again(self, op_id: str, status: Status, reason: str | None) -> None:
        try:
            await self.report(op_id, status, reason)
        except DeviceError as exc:
            log.warning("device %s could not report operation %s: %s", self.device_id, op_id, exc)

    def _error(self, payload: bytes) -> None:
        report = parse_error_report(payload)
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

    async def _ready_session(self) -> _Session:
        while True:
            session = self._session
            if session is not None and not session.closed.is_set():
                return session
            if self._stopped:
                raise DeviceError(f"device {self.device_id} is not running")
            self._ready.clear()
            await self._ready.wait()

    async def _publish(self, topic: str, payload: bytes) -> None:
        """QoS 1 until the broker acknowledges it, over as many sessions as it takes."""
        while True:
            session = await self._ready_session()
            try:
                await session.publish(topic, payload)
                return
            except aiomqtt.MqttError as exc:
                raise_if_cancelling(exc)
                log.debug("device %s: publish to %s again (%s)", self.device_id, topic, exc)
                # Not asyncio.wait_for: in 3.11 it swallows a cancellation that arrives as
                # the awaited event fires, and this loop would then outlive the client.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await session.closed.wait()


class _Session:
    """A connected, subscribed and synced MQTT client, until ``closed``."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.closed = asyncio.Event()

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK — or for the session to end, which
        raises MqttError (aiomqtt would otherwise wait for its whole timeout)."""
        sent = asyncio.ensure_future(self.client.publish(topic, payload, qos=1))
        lost = asyncio.ensure_future(self.closed.wait())
        try:
            done, _ = await asyncio.wait((sent, lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not sent.done():
                sent.cancel()
        if sent not in done:
            raise aiomqtt.MqttError("the connection was lost before the PUBACK")
        sent.result()


async def _guarded(device_id: str, work: Coroutine[Any, Any, None]) -> None:
    """A failure of one operation's task is logged; it never stops the device."""
    try:
        await work
    except Exception:
        log.exception("device %s: an operation task failed", device_id)
