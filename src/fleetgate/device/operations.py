"""The operations of one device — or of one of a gateway's children — as their commands
arrive on its ``op/cmd`` topic.

Commands go through the :class:`~fleetgate.device.journal.OperationJournal`: the handler
sees each operation id once; a repeated command of a finished operation is answered with
its final status without it. The handler's outcome is the operation's outcome: returning
reports SUCCESSFUL, raising reports FAILED with the exception's message (unless the
handler reported a final status itself). A handler gets the :class:`Device` the operation
is for — a :class:`~fleetgate.device.client.DeviceClient`, or a gateway's
:class:`~fleetgate.device.gateway.ChildDevice` — and reports, downloads and uploads
through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from fleetgate.device.commands import Command, FileInfo, Status, parse_command
from fleetgate.device.errors import BadCommand, DeviceError
from fleetgate.device.journal import Action, OperationJournal
from fleetgate.device.link import Link
from fleetgate.device.messages import Inventory, encode_status
from fleetgate.domain.errors import FleetgateError

__all__ = ["Device", "Operations"]

log = logging.getLogger(__name__)


class Device(Protocol):
    """What an operation handler may do with the device its operation is for."""

    @property
    def device_id(self) -> str: ...

    async def declare(self, inventory: Inventory) -> None: ...

    async def report(
        self, op_id: str, status: Status | str, failure_reason: str | None = None
    ) -> None: ...

    async def download(self, file: FileInfo, dest: Path) -> Path: ...

    async def fetch(self, file: FileInfo) -> bytes: ...

    async def upload(
        self, command: Command, data: bytes | Path, *, content_type: str = ...
    ) -> None: ...


D = TypeVar("D", bound=Device)


class Operations(Generic[D]):
    """The operations of ``device``: ``child`` is its key in the journal (None for the
    journal's own device), ``status_topic`` where its statuses go."""

    def __init__(
        self,
        device: D,
        handler: Callable[[D, Command], Awaitable[None]] | None,
        *,
        journal: OperationJournal,
        link: Link,
        status_topic: str,
        child: str | None = None,
        who: str,
    ) -> None:
        self.device = device
        self.handler = handler
        self._journal = journal
        self._link = link
        self._topic = status_topic
        self._child = child
        self._who = who

    async def report(
        self, op_id: str, status: Status | str, failure_reason: str | None = None
    ) -> None:
        """Publish an operation's status; returns after the broker's PUBACK.

        A final status is remembered in the journal first; a status that would change a
        final one raises :class:`IllegalStatus`; the same final status again is sent again.
        """
        status = Status(status)
        self._journal.check(op_id, status, device=self._child)
        if status.final:
            self._journal.finish(op_id, status, failure_reason, device=self._child)
        await self._link.publish(self._topic, encode_status(op_id, status, failure_reason))

    def receive(self, payload: bytes) -> None:
        """A command arrived: run it, ignore it (running), or answer it from the journal."""
        command: Command | None = None
        try:
            command = parse_command(payload)
            op_id = command.id
        except BadCommand as exc:
            # A command fleetgate should not have sent; failing it beats leaving it open.
            log.error("%s received a bad command: %s", self._who, exc)
            if exc.operation_id is None:
                return
            op_id, problem = exc.operation_id, str(exc)
        admission = self._journal.admit(op_id, device=self._child)
        if admission.action is Action.IGNORE:
            log.debug("%s: operation %s is in progress already", self._who, op_id)
        elif admission.action is Action.REPORT_AGAIN:
            assert admission.final is not None
            final = admission.final
            self._link.spawn(self._report_again(op_id, final.status, final.failure_reason))
        elif command is None:
            self._link.spawn(self._settle(op_id, Status.FAILED, problem))
        else:
            self._link.spawn(self._execute(command))

    async def _execute(self, command: Command) -> None:
        handler = self.handler
        if handler is None:
            await self._settle(command.id, Status.FAILED, "The device does not run operations")
            return
        try:
            await handler(self.device, command)
        except asyncio.CancelledError:
            self._journal.release(command.id, device=self._child)
            raise
        except Exception as exc:
            if not isinstance(exc, FleetgateError):
                log.exception("%s: operation %s failed", self._who, command.id)
            reason = str(exc) if isinstance(exc, FleetgateError) else f"{type(exc).__name__}: {exc}"
            await self._settle(command.id, Status.FAILED, reason or type(exc).__name__)
        else:
            await self._settle(command.id, Status.SUCCESSFUL)

    async def _settle(self, op_id: str, status: Status, reason: str | None = None) -> None:
        """Report a final status unless the handler reported one already."""
        if self._journal.final(op_id, device=self._child) is None:
            await self._report_again(op_id, status, reason)

    async def _report_again(self, op_id: str, status: Status, reason: str | None) -> None:
        try:
            await self.report(op_id, status, reason)
        except DeviceError as exc:
            log.warning("%s could not report operation %s: %s", self._who, op_id, exc)
