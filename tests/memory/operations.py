"""Operations (``db/operations.py``): reports decided by the domain, under the bound
rule, with what success changes in the device record."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from fleetgate.domain import commands
from fleetgate.domain import operations as ops
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import Conflict
from fleetgate.domain.operations import (
    Decision,
    DeviceTarget,
    Move,
    Operation,
    OperationFilter,
    OperationState,
    Outcome,
    Report,
    Status,
)
from fleetgate.domain.profiles import PROFILE_TYPE

from memory.database import (
    ForeignKeyViolation,
    MemoryDatabase,
    OperationRow,
    jsonb,
    merged,
    page,
    queries,
)


def _seconds(value: float) -> str:
    """A number of seconds as PostgreSQL's ``format('%s', float8)`` writes it."""
    text = repr(float(value))
    return text.removesuffix(".0")


def _outcome(decision: Decision, saved: dict[int, Operation]) -> Outcome:
    """One decision's outcome, with the operation as this report left it."""
    found = saved.get(decision.report.operation_id)
    if decision.move is not Move.APPLY or found is None or decision.status is None:
        return Outcome(decision)
    return Outcome(
        decision, replace(found, status=decision.status, failure_reason=decision.failure_reason)
    )


def _listed(op: Operation, flt: OperationFilter) -> bool:
    return (
        (flt.device_id is None or op.device_id == flt.device_id)
        and (not flt.statuses or op.status in flt.statuses)
        and (flt.fragment_type is None or flt.fragment_type in op.fragments)
        and (flt.bulk_operation_id is None or op.bulk_operation_id == flt.bulk_operation_id)
        and (flt.date_from is None or op.creation_time >= flt.date_from)
        and (flt.date_to is None or op.creation_time <= flt.date_to)
    )


def _snapshot_type(op: Operation) -> str | None:
    """What the one-open-snapshot-per-type index keys an operation by (None: not indexed)."""
    if op.fragment_type != commands.UPLOAD_CONFIG or op.status not in ops.OPEN:
        return None
    command = op.fragments.get(commands.UPLOAD_CONFIG)
    value = command.get("type") if isinstance(command, dict) else None
    return str(value) if value is not None else None


@queries
class MemoryOperations:
    """An :class:`~fleetgate.services.ports.OperationStore` (``PgOperations``).

    Reports are decided by :func:`fleetgate.domain.operations.decide` against the
    operations as stored — ``bound`` when their device still holds the id they were made
    for — and success changes the device record by
    :func:`fleetgate.domain.commands.success_effects`, in one transaction.
    """

    def __init__(self, db: MemoryDatabase, base_url: str) -> None:
        self._db = db
        self._base_url = base_url

    async def device(self, tenant_id: str, device_id: int) -> DeviceTarget | None:
        row = self._db.object_in(tenant_id, device_id)
        if row is None:
            return None
        return DeviceTarget(row.id, self._db.serial_of(row.id), row.type, jsonb(row.fragments))

    async def configuration_dumps(self, tenant_id: str, url: str) -> list[dict[str, Any]]:
        return [
            jsonb(o.fragments)
            for _, o in sorted(self._db.objects.items())
            if o.tenant_id == tenant_id
            and o.type == commands.CONFIGURATION_ENTRY_TYPE
            and o.fragments.get("url") == url
        ]

    async def profile(self, tenant_id: str, profile_id: int) -> ManagedObject | None:
        found = self._db.object_in(tenant_id, profile_id)
        return found.shown() if found is not None and found.type == PROFILE_TYPE else None

    async def create(
        self,
        tenant_id: str,
        device: DeviceTarget,
        *,
        fragment_type: str,
        description: str | None,
        fragments: dict[str, Any],
        bulk_operation_id: int | None = None,
    ) -> Operation:
        assert device.serial is not None
        if device.id not in self._db.objects:
            raise Conflict(f"Device {device.id} was deleted", code="devicecontrol/Conflict")
        now = self._db.clock()
        op = Operation(
            self._db.new_operation_id(),
            tenant_id,
            device.id,
            device.serial,
            None,
            fragment_type,
            Status.PENDING,
            None,
            description,
            jsonb(fragments),
            bulk_operation_id,
            now,
            now,
        )
        config_type = _snapshot_type(op)
        if config_type is not None and any(
            r.op.device_id == device.id and _snapshot_type(r.op) == config_type
            for r in self._db.operations.values()
        ):
            raise Conflict(
                f"A configuration snapshot of type {config_type!r} is already PENDING or"
                f" EXECUTING on device {device.id}; wait for it or cancel it first",
                code="devicecontrol/Conflict",
            )
        row = OperationRow(op)
        self._db.operations[op.id] = row
        return self._db.shown(row)

    async def get(self, tenant_id: str, operation_id: int) -> Operation | None:
        row = self._db.operations.get(operation_id)
        return self._db.shown(row) if row is not None and row.op.tenant_id == tenant_id else None

    async def get_by_id(self, operation_id: int) -> Operation | None:
        row = self._db.operations.get(operation_id)
        return self._db.shown(row) if row is not None else None

    async def find(
        self, tenant_id: str, flt: OperationFilter, offset: int, limit: int, *, revert: bool
    ) -> list[Operation]:
        found = self._found(tenant_id, flt)
        return page(found[::-1] if revert else found, offset, limit)

    async def count(self, tenant_id: str, flt: OperationFilter) -> int:
        return len(self._found(tenant_id, flt))

    def _found(self, tenant_id: str, flt: OperationFilter) -> list[Operation]:
        return [
            self._db.shown(r)
            for _, r in sorted(self._db.operations.items())
            if r.op.tenant_id == tenant_id and _listed(r.op, flt)
        ]

    async def update_fields(
        self, tenant_id: str, operation_id: int, description: str | None, fragments: dict[str, Any]
    ) -> Operation | None:
        """Merge extra fragments (not the command) and the description; a null removes."""
        row = self._db.operations.get(operation_id)
        if row is None or row.op.tenant_id != tenant_id:
            return None
        row.op = replace(
            row.op,
            fragments=merged(row.op.fragments, fragments),
            description=row.op.description if description is None else description,
        )
        return self._db.shown(row)

    async def apply(self, reports: Sequence[Report]) -> list[Outcome]:
        """Apply status reports in order, in one transaction; one outcome each."""
        if not reports:
            return []
        rows = {
            r.operation_id: self._db.operations[r.operation_id]
            for r in reports
            if r.operation_id in self._db.operations
        }
        states = {op_id: self._state(row) for op_id, row in rows.items()}
        decisions = ops.decide(states, reports)
        final = ops.final_moves(decisions)
        if not final:
            return [Outcome(d) for d in decisions]
        now = self._db.clock()
        saved: dict[int, Operation] = {}
        with self._db.transaction():
            for op_id, (status, reason) in final.items():
                row = self._db.operations[op_id]
                row.op = replace(row.op, status=status, failure_reason=reason, status_time=now)
                saved[op_id] = self._db.shown(row)
            for op in sorted(saved.values(), key=lambda o: o.device_id):
                if op.status is Status.SUCCESSFUL:
                    self._save_success(op, self._db.operations[op.id].snapshot_id, now)
        return [_outcome(d, saved) for d in decisions]

    def _state(self, row: OperationRow) -> OperationState:
        op = row.op
        return OperationState(
            op.id,
            op.tenant_id,
            op.serial,
            op.status,
            op.fragment_type,
            row.snapshot_id is not None,
            self._db.bound(op),
            self._db.gateway_of(op.device_id),
        )

    def _save_success(self, op: Operation, snapshot_id: int | None, now: datetime) -> None:
        """What a successful operation changes in its device's record."""
        device = self._db.objects[op.device_id]
        record = commands.DeviceRecord(device.name, device.type, jsonb(device.fragments))
        url = f"{self._base_url}/inventory/binaries/{snapshot_id}" if snapshot_id else None
        effects = commands.success_effects(op, record, url, now)
        changes = effects.fragments
        if effects.entry is not None:
            entry = self._db.insert_object(
                op.tenant_id,
                name=effects.entry.name,
                type=commands.CONFIGURATION_ENTRY_TYPE,
                owner=None,
                fragments=effects.entry.fragments,
            )
            changes = effects.with_entry_id(entry.id)
        if changes:
            device.fragments = {**device.fragments, **jsonb(changes)}
            device.last_updated = now

    async def attach_snapshot(self, operation_id: int, serial: str, binary_id: int) -> int | None:
        """Record the snapshot a device uploaded; the binary it replaces (or None).
        ``Conflict`` unless the operation is the device's open c8y_UploadConfigFile."""
        row = self._db.operations.get(operation_id)
        if (
            row is None
            or row.op.serial != serial
            or row.op.fragment_type != commands.UPLOAD_CONFIG
            or row.op.status not in ops.OPEN
        ):
            raise Conflict(
                f"Operation {operation_id} is not an open configuration snapshot request"
                f" of device {serial}",
                code="devicecontrol/Conflict",
            )
        if binary_id not in self._db.objects:
            raise ForeignKeyViolation(f"managed object {binary_id} does not exist")
        previous, row.snapshot_id = row.snapshot_id, binary_id
        return previous

    async def open_for(
        self, devices: Sequence[str], children: Sequence[tuple[str, str]] = ()
    ) -> list[Operation]:
        """PENDING and EXECUTING operations (whose device still holds its id), oldest
        first: a device's own unless it is a child, its children's, and each asked
        child's while it is that gateway's."""
        asked_devices, asked_children = set(devices), set(children)

        def asked(op: Operation) -> bool:
            gateway = self._db.gateway_of(op.device_id)
            if gateway is None:
                return op.serial in asked_devices
            return gateway in asked_devices or (op.serial, gateway) in asked_children

        return [
            self._db.shown(r)
            for _, r in sorted(self._db.operations.items())
            if r.op.status in ops.OPEN and self._db.bound(r.op) and asked(r.op)
        ]

    async def undispatched(self, limit: int) -> list[Operation]:
        waiting = [
            r
            for _, r in sorted(self._db.operations.items())
            if r.op.status is Status.PENDING
            and r.dispatched_at is None
            and self._db.bound(r.op)
            and not self._db.held(r.op.device_id)
        ]
        return [self._db.shown(r) for r in waiting[:limit]]

    @contextlib.asynccontextmanager
    async def claim_undispatched(
        self, limit: int, older_than: float
    ) -> AsyncIterator[list[Operation]]:
        """One process here: nobody to skip; the age is measured on the fake clock."""
        now = self._db.clock()
        waiting = [
            r
            for _, r in sorted(self._db.operations.items())
            if r.op.status is Status.PENDING
            and r.dispatched_at is None
            and self._db.bound(r.op)
            and not self._db.held(r.op.device_id)
            and (now - r.op.creation_time).total_seconds() >= older_than
        ]
        claimed = [self._db.shown(r) for r in waiting[:limit]]
        yield claimed
        await self.mark_dispatched([op.id for op in claimed])

    async def mark_dispatched(self, ids: Sequence[int]) -> None:
        now = self._db.clock()
        for op_id in ids:
            if op_id in self._db.operations:
                self._db.operations[op_id].dispatched_at = now

    async def time_out(self, pending_after: float, executing_after: float) -> list[Operation]:
        """FAIL every operation open past its limit; returns them."""
        now = self._db.clock()
        limits = {Status.PENDING: pending_after, Status.EXECUTING: executing_after}
        timed_out: list[Operation] = []
        for _, row in sorted(self._db.operations.items()):
            limit = limits.get(row.op.status)
            if limit is None or (now - row.op.status_time).total_seconds() <= limit:
                continue
            reason = f"Timed out: {row.op.status} for more than {_seconds(limit)} s"
            row.op = replace(row.op, status=Status.FAILED, failure_reason=reason, status_time=now)
            timed_out.append(self._db.shown(row))
        return timed_out
