"""A gateway: a device connection that also speaks for its children
(docs/protocol.md, "Gateways and their children").

A :class:`GatewayClient` is a :class:`~fleetgate.device.client.DeviceClient` — it declares
itself, runs its own operations and reports them — and holds a :class:`ChildDevice` for
each child it speaks for, inside its own namespace ``fg/d/<gateway>/c/<child>/…``. A child
is declared as a device declares itself, its operations are handed to
``on_child_operation(child, command)`` with the same guarantees as a device's own (once
per operation id and child, through the gateway's one journal; the outcome is reported on
the child's ``op/status``), and the gateway says whether it reaches the child
(``connection``: :class:`Connectivity`, with a reason).

After every (re)connect the gateway subscribes to its own ``op/cmd`` and ``error`` and to
``c/+/op/cmd`` and ``c/+/error`` of its children, publishes its own declaration, every
child's declaration (so a ``c8y_SupportedOperations`` is never stale) and every child's last
reported connectivity, then its own ``op/sync`` — to which fleetgate answers with the open
operations of the gateway and of all its children. A command for a child the application
has not named yet (after a restart, before it declared its children) makes that child's
:class:`ChildDevice` and goes to the same handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import httpx

from fleetgate.device import files
from fleetgate.device.client import DeviceClient, ErrorHandler, OperationHandler
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
from fleetgate.device.messages import (
    Connectivity,
    Inventory,
    encode_connectivity,
    parse_error_report,
)
from fleetgate.device.operations import Operations
from fleetgate.domain.devices import is_device_id
from fleetgate.domain.topics import CHILD_LEVEL, DeviceLeaf, DeviceTopic, device_namespace

__all__ = ["ChildDevice", "ChildOperationHandler", "GatewayClient"]

log = logging.getLogger(__name__)

ChildOperationHandler = Callable[["ChildDevice", Command], Awaitable[None]]
"""Carries out one operation of a child: returning means SUCCESSFUL, raising FAILED."""

#: Finished operations a gateway's journal remembers per device (itself, each child).
CHILD_JOURNAL_CAPACITY = 100


class ChildDevice:
    """One child as its gateway speaks for it; made (once) by :meth:`GatewayClient.child`.

    It offers what a :class:`DeviceClient` offers an operation handler — ``device_id``,
    :meth:`declare`, :meth:`report`, :meth:`download`, :meth:`fetch`, :meth:`upload` —
    plus :meth:`report_connectivity`; its transfers wait for one of the gateway's.
    """

    def __init__(
        self,
        gateway: GatewayClient,
        child_id: str,
        *,
        link: Link,
        journal: OperationJournal,
        handler: ChildOperationHandler | None,
        http: httpx.AsyncClient | None,
    ) -> None:
        self.device_id = child_id
        self.gateway = gateway
        self._http = http
        self._declared = Standing(link, self.topic(DeviceLeaf.INVENTORY))
        self._connectivity = Standing(link, self.topic(DeviceLeaf.CONNECTION))
        self._operations: Operations[ChildDevice] = Operations(
            self,
            handler,
            journal=journal,
            link=link,
            status_topic=self.topic(DeviceLeaf.OP_STATUS),
            child=child_id,
            who=f"child {child_id} of gateway {gateway.device_id}",
        )

    def topic(self, leaf: DeviceLeaf) -> str:
        return str(DeviceTopic(self.device_id, leaf, self.gateway.device_id))

    @property
    def declared(self) -> bool:
        """True once :meth:`declare` was called (the declaration is re-sent at reconnects)."""
        return self._declared.payload is not None

    async def declare(self, inventory: Inventory) -> None:
        """Publish the child's ``inventory`` (registering it at fleetgate the first time),
        and again after every reconnect of the gateway; returns after PUBACK."""
        await self._declared.set(inventory.encode())

    async def report(
        self, op_id: str, status: Status | str, failure_reason: str | None = None
    ) -> None:
        """Publish the status of one of the child's operations; as
        :meth:`DeviceClient.report` (journal first, IllegalStatus, PUBACK)."""
        await self._operations.report(op_id, status, failure_reason)

    async def report_connectivity(
        self, status: Connectivity | str, reason: str | None = None
    ) -> None:
        """Say whether the gateway reaches the child (and why not); sent again after
        every reconnect of the gateway until replaced. Returns after PUBACK."""
        await self._connectivity.set(encode_connectivity(Connectivity(status), reason))

    async def download(self, file: FileInfo, dest: Path) -> Path:
        """:func:`fleetgate.device.files.download` with the gateway's HTTP client, when
        the gateway has a transfer free (see ``transfers``)."""
        async with self.gateway.transfers:
            return await files.download(file, dest, http=self._http)

    async def fetch(self, file: FileInfo) -> bytes:
        """:func:`fleetgate.device.files.fetch` (into memory) as :meth:`download` does."""
        async with self.gateway.transfers:
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
        async with self.gateway.transfers:
            await files.upload(command.upload, data, http=self._http, content_type=content_type)

    def _receive(self, payload: bytes) -> None:
        self._operations.receive(payload)


class GatewayClient(DeviceClient):
    """A device client that speaks for children (see the module docstring).

    Options as :class:`DeviceClient`'s, plus ``on_child_operation`` and ``transfers``: how
    many of its children's downloads and uploads run at once (the others wait their turn:
    a gateway's uplink is one, and an HTTP client's queue of waiting requests costs more
    with every request in it). The ``journal`` holds the gateway's own operations and its
    children's (keyed by child); by default it remembers the last 100 finished operations
    of each, in memory — give it a ``path`` so that statuses survive a restart of the
    gateway's process.
    """

    def __init__(
        self,
        gateway_id: str,
        broker: BrokerAddress,
        login: CertificateLogin | PasswordLogin,
        *,
        on_operation: OperationHandler | None = None,
        on_child_operation: ChildOperationHandler | None = None,
        on_error: ErrorHandler | None = None,
        journal: OperationJournal | None = None,
        reconnect: ReconnectPolicy | None = None,
        connect_gate: asyncio.Semaphore | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        keepalive: int = 60,
        in_flight: int = 100,
        transfers: int = 8,
    ) -> None:
        if transfers < 1:
            raise ValueError("a gateway needs at least one transfer at a time")
        super().__init__(
            gateway_id,
            broker,
            login,
            on_operation=on_operation,
            on_error=on_error,
            journal=journal or OperationJournal(capacity=CHILD_JOURNAL_CAPACITY),
            reconnect=reconnect,
            connect_gate=connect_gate,
            http=http,
            timeout=timeout,
            keepalive=keepalive,
            in_flight=in_flight,
        )
        self._on_child_operation = on_child_operation
        self._children: dict[str, ChildDevice] = {}
        #: Bounds the children's downloads and uploads in progress at once.
        self.transfers = asyncio.Semaphore(transfers)

    @property
    def children(self) -> Mapping[str, ChildDevice]:
        """Every child the gateway speaks for, by id (a read-only view)."""
        return MappingProxyType(self._children)

    def child(self, child_id: str) -> ChildDevice:
        """The child ``child_id`` (made at the first call; the same object afterwards).
        ValueError unless ``child_id`` is a device id other than the gateway's."""
        child = self._children.get(child_id)
        if child is not None:
            return child
        if not is_device_id(child_id):
            raise ValueError(f"{child_id!r} is not a device id: it cannot name a child")
        if child_id == self.device_id:
            raise ValueError(f"gateway {child_id} cannot be its own child")
        child = ChildDevice(
            self,
            child_id,
            link=self._link,
            journal=self.journal,
            handler=self._on_child_operation,
            http=self._http,
        )
        self._children[child_id] = child
        return child

    async def declare_children(self, inventories: Mapping[str, Inventory]) -> None:
        """Declare many children at once (``child id → inventory``); returns after every
        PUBACK. The link's window bounds the publishes in flight."""
        async with asyncio.TaskGroup() as declaring:
            for child_id, inventory in inventories.items():
                declaring.create_task(self.child(child_id).declare(inventory))

    def _subscriptions(self) -> list[str]:
        return [*super()._subscriptions(), *children_filters(self.device_id)]

    async def _resync(self, session: Session) -> None:
        await super()._resync(session)
        children = list(self._children.values())
        # Declarations first: a child's connectivity is refused until it is registered.
        await session.resend(child._declared for child in children)
        await session.resend(child._connectivity for child in children)

    def _receive_other(self, topic: DeviceTopic, payload: bytes) -> None:
        if topic.gateway != self.device_id or not is_device_id(topic.device_id):
            super()._receive_other(topic, payload)
        elif topic.leaf is DeviceLeaf.OP_CMD:
            self.child(topic.device_id)._receive(payload)
        elif topic.leaf is DeviceLeaf.ERROR:
            report = parse_error_report(payload)
            self._error(dataclasses.replace(report, child=topic.device_id))


def children_filters(gateway_id: str) -> Iterable[str]:
    """The subscriptions for every child's commands and errors: ``fg/d/<gw>/c/+/op/cmd``,
    ``fg/d/<gw>/c/+/error`` (the topic module builds single topics, not these filters)."""
    for leaf in (DeviceLeaf.OP_CMD, DeviceLeaf.ERROR):
        yield f"{device_namespace(gateway_id)}{CHILD_LEVEL}/+/{leaf.value}"
