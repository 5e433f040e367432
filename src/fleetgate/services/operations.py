"""Operations: created by operators, dispatched to devices over MQTT, moved by reports.

Commands are delivered at least once: published when the operation is created, again for
every open operation when the device asks (``op/sync``, after each of its connects), and
at start-up for whatever was committed but never published. Status reports arrive in
batches on the device link and are committed before the broker gets its PUBACK
(``fleetgate.mqtt.device_link``); the transition table makes a redelivered or late report
harmless. Every committed change reaches the :class:`OperationFeed` the live views read
through the database's change log (``operation_feed.follow``), whichever instance made it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetgate.domain import commands
from fleetgate.domain import operations as ops
from fleetgate.domain.binaries import BinaryFile
from fleetgate.domain.device_messages import DeviceError, StatusReport, SyncRequest
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, ServiceUnavailable, ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.operations import (
    Move,
    Operation,
    OperationFilter,
    Report,
    Status,
)
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.domain.traces import service_entry
from fleetgate.services.coalescing import GroupedWrites
from fleetgate.services.operation_checks import Lookups, OperationChecks
from fleetgate.services.operation_feed import FeedFilter, FeedOverflow, OperationFeed
from fleetgate.services.ports import FileResolver, OperationStore, Publisher, TraceNotes

log = logging.getLogger(__name__)

#: Seconds after which a command committed and not yet sent is another instance's to
#: send: its creator died between (it publishes within milliseconds when alive).
UNDISPATCHED_AFTER = 30.0


@dataclass(frozen=True, slots=True)
class FileSigning:
    secret: bytes
    base_url: str
    ttl: float


class Operations:
    def __init__(
        self,
        store: OperationStore,
        files: FileResolver,
        link: Publisher,
        signing_: FileSigning,
        feed: OperationFeed,
        *,
        clock: Callable[[], float] = time.time,
        tracer: TraceNotes | None = None,
    ) -> None:
        self._tracer = tracer
        self._store = store
        self._files = files
        self._link = link
        self._signing = signing_
        self.feed = feed
        self._clock = clock
        self.checks = OperationChecks(store, files)
        #: Concurrent POSTs mark their commands published in one statement.
        self._dispatched = GroupedWrites(store.mark_dispatched)

    # --- operators ---------------------------------------------------------------------

    async def create(self, tenant_id: str, body: dict[str, Any]) -> Operation:
        device_id = _object_id(body.get("deviceId"), "deviceId")
        device = await self._store.device(tenant_id, device_id)
        if device is None:
            raise NotFound(f"Device {device_id} not found", code="devicecontrol/Not Found")
        checked = await self.checks.check(tenant_id, device, body)
        op = await self._store.create(
            tenant_id,
            device,
            fragment_type=checked.fragment_type,
            description=checked.description,
            fragments=checked.fragments,
        )
        if not op.held:  # a disabled device's stays PENDING, for when it is enabled
            await self._publish(op, checked.files)
            await self._dispatched.add(op.id)
        return op

    async def get(self, tenant_id: str, operation_id: int) -> Operation:
        op = await self._store.get(tenant_id, operation_id)
        if op is None:
            raise NotFound(f"Operation {operation_id} not found", code="devicecontrol/Not Found")
        return op

    async def find(
        self,
        tenant_id: str,
        flt: OperationFilter,
        offset: int,
        limit: int,
        *,
        revert: bool,
        count: bool,
    ) -> tuple[list[Operation], int | None]:
        found = await self._store.find(tenant_id, flt, offset, limit, revert=revert)
        total = await self._store.count(tenant_id, flt) if count else None
        return found, total

    async def update(self, tenant_id: str, operation_id: int, body: dict[str, Any]) -> Operation:
        """An operator's PUT: a status move (same table as devices) and extra fragments.

        Everything is checked before anything is written, and the status moves first: a
        PUT refused for its status (422) has changed nothing. Should the database go away
        between the move and the fragments, the PUT answers 503 and can simply be sent
        again (the move is then a duplicate, which changes nothing).
        """
        op = await self.get(tenant_id, operation_id)
        if "deviceId" in body and str(body["deviceId"]) != str(op.device_id):
            raise _unchangeable("deviceId")
        if op.fragment_type in body and body[op.fragment_type] != op.command:
            raise _unchangeable(op.fragment_type)
        own = commands.OWN_KEYS | {op.fragment_type}
        extra = {k: v for k, v in body.items() if k not in own}
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise ValidationFailed(
                "description must be a string", code="devicecontrol/Invalid Data"
            )
        report = _operator_report(tenant_id, operation_id, body) if "status" in body else None
        changed: Operation | None = None
        if report is not None:
            [outcome] = await self._store.apply([report])
            if outcome.move is Move.ILLEGAL:
                assert outcome.current is not None
                raise ValidationFailed(
                    ops.illegal_message(operation_id, outcome.current, report.status),
                    code="devicecontrol/Invalid Data",
                )
            changed = outcome.operation
        if extra or description is not None:
            changed = await self._store.update_fields(tenant_id, operation_id, description, extra)
            if changed is None:
                raise NotFound(
                    f"Operation {operation_id} not found", code="devicecontrol/Not Found"
                )
        return changed or op

    # --- devices ----------------------------------------------------------------------

    async def dispatch(self, operations: Iterable[Operation]) -> None:
        """Publish the commands of ``operations`` (open ones) to their devices — except
        those held back because their device (or its gateway) is disabled: they stay
        PENDING and undispatched until it is enabled (:meth:`dispatch_open`)."""
        sent: list[int] = []
        lookups: dict[str, Lookups] = {}  # by tenant: a URL means a tenant's binary
        for op in operations:
            if op.status in ops.OPEN and not op.held:
                known = lookups.setdefault(op.tenant_id, Lookups())
                await self._publish(op, await self.checks.files_of(op.tenant_id, op.command, known))
                sent.append(op.id)
        if sent:
            await self._store.mark_dispatched(sent)

    async def dispatch_open(
        self, devices: Sequence[str], children: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Publish every open operation of these devices (a gateway's: its children's
        too) and of these (child, gateway) pairs: a device was enabled."""
        await self.dispatch(await self._store.open_for(devices, children))

    async def dispatch_undispatched(self, older_than: float = 0.0) -> int:
        """Commands committed but never published (an instance died between), created
        more than ``older_than`` seconds ago: at start-up, and on every sweep (with an
        age that leaves the creating instance time to publish its own). Each is claimed
        by one instance (the others skip it) and marked dispatched once published. How
        many it sent."""
        sent = 0
        while True:
            async with self._store.claim_undispatched(1000, older_than) as batch:
                lookups: dict[str, Lookups] = {}
                for op in batch:
                    known = lookups.setdefault(op.tenant_id, Lookups())
                    await self._publish(
                        op, await self.checks.files_of(op.tenant_id, op.command, known)
                    )
            sent += len(batch)
            if len(batch) < 1000:
                return sent

    async def _publish(self, op: Operation, files: dict[str, BinaryFile]) -> None:
        command = self.command(op, files)
        topic = str(DeviceTopic(op.serial, DeviceLeaf.OP_CMD, op.gateway))
        await self._link.publish(topic, json.dumps(command).encode())
        if self._tracer is not None and self._tracer.is_traced(op.serial):
            await self._tracer.note(
                [
                    service_entry(
                        op.serial,
                        "operationDispatched",
                        topic,
                        operationId=str(op.id),
                        status=op.status.value,
                    )
                ]
            )

    def command(self, op: Operation, files: dict[str, BinaryFile]) -> dict[str, Any]:
        """What the device receives for ``op`` (docs/protocol.md, "Commands"); ``files``:
        the binaries its urls name. Signed URLs last ``ttl`` seconds from now."""
        key = self._signing
        expires = int(self._clock() + key.ttl)
        return commands.device_command(op, files, key.secret, key.base_url, expires)

    async def on_reports(self, reports: Sequence[StatusReport]) -> list[DeviceError]:
        """Apply devices' status reports in order, in one transaction (a report names an
        operation of the reporting device, or finds nothing); announce the moves; return
        what to answer the devices: an unknown operation, an illegal move."""
        outcomes = await self._store.apply(
            [
                Report(
                    r.operation_id,
                    r.status,
                    r.failure_reason,
                    serial=r.device_id,
                    gateway=r.gateway,
                )
                for r in reports
            ]
        )
        errors: list[DeviceError] = []
        for report, outcome in zip(reports, outcomes, strict=True):
            topic = str(DeviceTopic(report.device_id, DeviceLeaf.OP_STATUS, report.gateway))
            if outcome.move is None:
                by = f" that gateway {report.gateway} reaches" if report.gateway else ""
                errors.append(
                    DeviceError(
                        report.device_id,
                        "operations/notFound",
                        f"Operation {report.operation_id} is not an operation of device"
                        f" {report.device_id}{by}",
                        topic,
                        report.operation_id,
                        report.gateway,
                    )
                )
            elif outcome.move is Move.ILLEGAL:
                assert outcome.current is not None
                message = ops.illegal_message(report.operation_id, outcome.current, report.status)
                log.info("device %s: %s", report.device_id, message)
                errors.append(
                    DeviceError(
                        report.device_id,
                        "operations/illegalTransition",
                        message,
                        topic,
                        report.operation_id,
                        report.gateway,
                    )
                )
        return errors

    async def on_sync(self, requests: Sequence[SyncRequest]) -> None:
        """Devices asked for their open operations (after a connect): publish them again —
        a gateway's own request brings its children's too; a gateway's request for one
        child (that is its child: checked before) brings the child's."""
        devices = sorted({r.device_id for r in requests if r.gateway is None})
        children = sorted({(r.device_id, r.gateway) for r in requests if r.gateway is not None})
        await self.dispatch(await self._store.open_for(devices, children))

    async def upload_snapshot(
        self, operation_id: int, serial: str, content_type: str, chunks: AsyncIterable[bytes]
    ) -> ManagedObject:
        """Store the snapshot a device PUTs for its c8y_UploadConfigFile operation."""
        op = await self._store.get_by_id(operation_id)
        if op is None:
            raise NotFound(f"Operation {operation_id} not found", code="devicecontrol/Not Found")
        tenant_id = op.tenant_id
        config_type = (op.command or {}).get("type")
        binary = await self._files.store(
            tenant_id,
            name=f"{serial}-{config_type}-snapshot",
            content_type=content_type,
            chunks=chunks,
            owner=None,
        )
        try:
            replaced = await self._store.attach_snapshot(operation_id, serial, binary.id)
        except Exception:
            await self._files.delete(tenant_id, binary.id)
            raise
        if replaced is not None:
            await self._files.delete(tenant_id, replaced)
        return binary

    async def sweep(self, pending_after: float, executing_after: float) -> list[Operation]:
        """FAIL what stayed open too long (server-side timeouts)."""
        timed_out = await self._store.time_out(pending_after, executing_after)
        if timed_out:
            log.info("%d operations timed out", len(timed_out))
        return timed_out

    async def sweep_forever(
        self, pending_after: float, executing_after: float, every: float
    ) -> None:
        """Time out what stayed open too long, and send what an instance that died
        committed and never published, every ``every`` seconds; any number of service
        instances may run it at once (each row is claimed by one)."""
        while True:
            try:
                await self.sweep(pending_after, executing_after)
                if sent := await self.dispatch_undispatched(UNDISPATCHED_AFTER):
                    log.warning("sent %d commands an instance committed and never sent", sent)
            except ServiceUnavailable as exc:
                log.warning("the operation timeout sweep waits for the database: %s", exc)
            except Exception:
                log.exception("the operation timeout sweep failed")
            await asyncio.sleep(every)


def _unchangeable(key: str) -> ValidationFailed:
    return ValidationFailed(
        f"{key} of an existing operation cannot be changed", code="devicecontrol/Invalid Data"
    )


def _operator_report(tenant_id: str, operation_id: int, body: dict[str, Any]) -> Report:
    """The status move an operator's PUT asks for (FAILED gets a reason if it has none)."""
    status = ops.parse_status(body["status"])
    reason = body.get("failureReason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed("failureReason must be a string", code="devicecontrol/Invalid Data")
    if status is Status.FAILED and not reason:
        reason = "Failed by an operator"
    return Report(operation_id, status, reason, tenant_id=tenant_id)


def _object_id(value: Any, name: str) -> int:
    """A managed object id in a body: ids' one rule (ASCII digits, 1 to 2^63-1)."""
    try:
        return parse_id(value)
    except ValidationFailed:
        raise ValidationFailed(
            f"{name} must be the id of a managed object", code="devicecontrol/Invalid Data"
        ) from None


__all__ = [
    "FeedFilter",
    "FeedOverflow",
    "FileSigning",
    "OperationFeed",
    "Operations",
]
