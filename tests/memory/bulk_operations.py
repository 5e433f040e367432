"""Bulk operations (``db/bulk_operations.py``) and the scheduler's steps
(``db/rollout_steps.py``).

The rows are :class:`BulkRow` and :class:`TargetRow` in :class:`MemoryDatabase`; the
operations a step makes are the operation store's rows, with their bulk attempt. Where
PostgreSQL folds the status changes a trigger appended, a step here counts the targets'
latest operations — the same numbers, once every change is folded. A bulk operation's
row lock is an :class:`asyncio.Lock`: a step skips a locked one (``SKIP LOCKED``), an
operator's change waits for it (``FOR UPDATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from fleetgate.domain import rollouts
from fleetgate.domain.bulk import GROUP_FRAGMENT, SUBGROUP_FRAGMENT
from fleetgate.domain.bulk_operations import (
    RETRY_FRAGMENT,
    BulkFilter,
    BulkOperation,
    BulkStatus,
    NewBulkOperation,
    Prepared,
    Refusal,
    StepReport,
    Target,
    TargetState,
)
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.operations import DeviceTarget, Operation, Status
from fleetgate.domain.rollouts import Create, FailureType, Snapshot, Tally
from fleetgate.services.ports import BulkCheck

from memory.database import MemoryDatabase, OperationRow, jsonb, page, queries
from memory.operations import _snapshot_type

TIMED_OUT_PREFIX = "Timed out: "


@dataclass
class BulkRow:
    """``bulk_operation``: the bulk operation as shown, and what drives it."""

    bulk: BulkOperation
    next_creation_at: datetime
    next_step_at: datetime
    settled: bool = False
    baseline: Tally = field(default_factory=Tally)


@dataclass
class TargetRow:
    """``bulk_operation_target``."""

    device_id: int
    position: int
    canary: bool
    state: TargetState = TargetState.WAITING
    attempts: int = 0
    operation_id: int | None = None
    reason: str | None = None


def _not_found(bulk_id: int) -> NotFound:
    return NotFound(f"Bulk operation {bulk_id} not found", code="devicecontrol/Not Found")


class _Locks:
    """The bulk operations' row locks (not a table: never copied or rolled back)."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}

    def of(self, bulk_id: int) -> asyncio.Lock:
        return self._locks.setdefault(bulk_id, asyncio.Lock())


def _locks(db: MemoryDatabase) -> _Locks:
    found = getattr(db, "bulk_locks", None)
    if found is None:
        found = _Locks()
        db.bulk_locks = found  # type: ignore[attr-defined]
    return found


class _Rows:
    """What both adapters do on the rows."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._locks = _locks(db)

    def row(self, tenant_id: str, bulk_id: int) -> BulkRow | None:
        found = self._db.bulk_operations.get(bulk_id)
        return found if found is not None and found.bulk.tenant_id == tenant_id else None

    @contextlib.asynccontextmanager
    async def locked(self, tenant_id: str, bulk_id: int) -> AsyncIterator[BulkRow | None]:
        """``SELECT … FOR UPDATE``: waits for a step that holds it."""
        if self.row(tenant_id, bulk_id) is None:
            yield None
            return
        async with self._locks.of(bulk_id):
            yield self.row(tenant_id, bulk_id)

    def status_of(self, target: TargetRow) -> tuple[Status, str | None] | None:
        if target.operation_id is None:
            return None
        found = self._db.operations.get(target.operation_id)
        return (found.op.status, found.op.failure_reason) if found is not None else None

    def kind(self, target: TargetRow) -> str | None:
        """``bulk_operation_status``: the status, TIMED_OUT for the sweep's FAILED."""
        found = self.status_of(target)
        if found is None:
            return None
        status, reason = found
        if status is Status.FAILED and (reason or "").startswith(TIMED_OUT_PREFIX):
            return "TIMED_OUT"
        return str(status)

    def tally(self, bulk_id: int) -> Tally:
        deltas: dict[str, int] = {}
        for target in self._db.bulk_targets.get(bulk_id, {}).values():
            kind = self.kind(target)
            if kind is not None:
                deltas[kind] = deltas.get(kind, 0) + 1
        return rollouts.fold(Tally(), deltas)

    def cancel(self, row: BulkRow, reason: str) -> None:
        for target in self._db.bulk_targets.get(row.bulk.id, {}).values():
            if target.state is TargetState.WAITING:
                target.state = TargetState.CANCELED
        now = self._db.clock()
        row.bulk = replace(
            row.bulk,
            status=BulkStatus.DELETED,
            paused_reason=None,
            cancel_reason=reason,
            last_updated=now,
        )
        row.next_step_at = now

    def insert(self, tenant_id: str, new: NewBulkOperation) -> BulkRow:
        now = self._db.clock()
        bulk = BulkOperation(
            id=next(self._db.bulk_ids),
            tenant_id=tenant_id,
            group_id=new.group_id,
            failed_parent_id=new.failed_parent_id,
            start_date=new.start_date,
            creation_ramp=new.creation_ramp,
            prototype=jsonb(new.prototype),
            note=new.note,
            rollout=new.rollout,
            status=BulkStatus.ACTIVE,
            paused_reason=None,
            cancel_reason=None,
            targets=0,
            created=0,
            skipped=0,
            retried=0,
            tally=Tally(),
            creation_time=now,
            last_updated=now,
            target_query=new.target_query,
        )
        row = BulkRow(bulk, next_creation_at=new.start_date, next_step_at=now)
        self._db.bulk_operations[bulk.id] = row
        self._db.bulk_targets[bulk.id] = {}
        return row

    def count_targets(self, row: BulkRow) -> None:
        row.bulk = replace(row.bulk, targets=len(self._db.bulk_targets[row.bulk.id]))

    def check_group(self, tenant_id: str, group_id: int, what: str) -> None:
        found = self._db.object_in(tenant_id, group_id)
        if found is None:
            raise NotFound(f"Group {group_id} not found", code="devicecontrol/Not Found")
        if GROUP_FRAGMENT not in found.fragments and SUBGROUP_FRAGMENT not in found.fragments:
            raise ValidationFailed(
                f"{what} {group_id} is not a device group ({GROUP_FRAGMENT} or"
                f" {SUBGROUP_FRAGMENT})",
                code="devicecontrol/Invalid Data",
            )


@queries
class MemoryBulkOperations:
    """A :class:`~fleetgate.services.ports.BulkOperationStore` (``PgBulkOperations``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._rows = _Rows(db)

    async def create(
        self,
        tenant_id: str,
        new: NewBulkOperation,
        devices: Sequence[int],
        canary: Collection[int] = (),
    ) -> BulkOperation:
        with self._db.transaction():
            if new.group_id is not None:
                self._rows.check_group(tenant_id, new.group_id, "groupId")
            else:
                assert new.failed_parent_id is not None
                if self._rows.row(tenant_id, new.failed_parent_id) is None:
                    raise _not_found(new.failed_parent_id)
            rollout_canary = new.rollout.canary if new.rollout is not None else None
            if rollout_canary is not None and rollout_canary.group_id is not None:
                self._rows.check_group(tenant_id, rollout_canary.group_id, "canary group")
            row = self._rows.insert(tenant_id, new)
            size = rollout_canary.size if rollout_canary is not None else None
            present = sorted(d for d in set(devices) if self._db.object_in(tenant_id, d))
            targets = self._db.bulk_targets[row.bulk.id]
            for n, device in enumerate(present, start=1):
                in_canary = n <= (size or 0) or device in canary
                targets[device] = TargetRow(device, n, in_canary)
            self._rows.count_targets(row)
            return row.bulk

    async def failed_devices(self, tenant_id: str, bulk_id: int) -> list[int] | None:
        if self._rows.row(tenant_id, bulk_id) is None:
            return None
        return sorted(
            t.device_id
            for t in self._db.bulk_targets[bulk_id].values()
            if (self._rows.status_of(t) or (None, None))[0] is Status.FAILED
        )

    async def get(self, tenant_id: str, bulk_id: int) -> BulkOperation | None:
        row = self._rows.row(tenant_id, bulk_id)
        return row.bulk if row is not None else None

    def _found(self, tenant_id: str, flt: BulkFilter) -> list[BulkOperation]:
        return [
            r.bulk
            for _, r in sorted(self._db.bulk_operations.items())
            if r.bulk.tenant_id == tenant_id and (not flt.statuses or r.bulk.status in flt.statuses)
        ]

    async def find(
        self, tenant_id: str, flt: BulkFilter, offset: int, limit: int
    ) -> list[BulkOperation]:
        return page(self._found(tenant_id, flt), offset, limit)

    async def count(self, tenant_id: str, flt: BulkFilter) -> int:
        return len(self._found(tenant_id, flt))

    async def reschedule(
        self, tenant_id: str, bulk_id: int, merged: NewBulkOperation
    ) -> tuple[BulkOperation, BulkOperation | None] | None:
        async with self._rows.locked(tenant_id, bulk_id) as row:
            if row is None:
                return None
            current = row.bulk
            if current.status in (BulkStatus.DELETED, BulkStatus.COMPLETED):
                raise ValidationFailed(
                    f"Bulk operation {bulk_id} is {current.status}: there is nothing left to"
                    " reschedule (create a new one, or one with failedParentId)",
                    code="devicecontrol/Invalid Data",
                )
            now = self._db.clock()
            if current.created == 0 and current.skipped == 0:
                row.bulk = replace(
                    current,
                    start_date=merged.start_date,
                    creation_ramp=merged.creation_ramp,
                    prototype=jsonb(merged.prototype),
                    note=merged.note,
                    rollout=merged.rollout,
                    last_updated=now,
                )
                row.next_step_at, row.next_creation_at = now, merged.start_date
                return row.bulk, None
            with self._db.transaction():
                replacement = self._rows.insert(tenant_id, merged)
                moved = self._db.bulk_targets[replacement.bulk.id]
                for target in self._db.bulk_targets[bulk_id].values():
                    if target.state is TargetState.WAITING:
                        target.state = TargetState.CANCELED
                        moved[target.device_id] = TargetRow(
                            target.device_id, target.position, target.canary
                        )
                self._rows.count_targets(replacement)
                row.bulk = replace(
                    row.bulk,
                    status=BulkStatus.DELETED,
                    paused_reason=None,
                    cancel_reason=f"Rescheduled as bulk operation {replacement.bulk.id}",
                    last_updated=now,
                )
                row.next_step_at = now
            return replacement.bulk, row.bulk

    async def cancel(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None:
        async with self._rows.locked(tenant_id, bulk_id) as row:
            if row is None:
                return None
            if row.bulk.status not in (BulkStatus.DELETED, BulkStatus.COMPLETED):
                self._rows.cancel(row, reason)
            return row.bulk

    async def pause(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None:
        return await self._set_paused(tenant_id, bulk_id, reason)

    async def resume(self, tenant_id: str, bulk_id: int) -> BulkOperation | None:
        return await self._set_paused(tenant_id, bulk_id, None)

    async def _set_paused(
        self, tenant_id: str, bulk_id: int, reason: str | None
    ) -> BulkOperation | None:
        async with self._rows.locked(tenant_id, bulk_id) as row:
            if row is None:
                return None
            bulk = row.bulk
            if bulk.status in (BulkStatus.DELETED, BulkStatus.COMPLETED):
                raise ValidationFailed(
                    f"Bulk operation {bulk_id} is {bulk.status}: it cannot be paused or resumed",
                    code="devicecontrol/Invalid Data",
                )
            now = self._db.clock()
            if reason is not None:
                row.bulk = replace(bulk, paused_reason=reason, last_updated=now)
            else:
                canary = bulk.canary_passed or (bulk.paused_reason or "").startswith("Canary")
                row.bulk = replace(bulk, paused_reason=None, last_updated=now, canary_passed=canary)
                row.next_step_at, row.baseline = now, bulk.tally
            return row.bulk

    async def targets(
        self, tenant_id: str, bulk_id: int, state: TargetState | None, offset: int, limit: int
    ) -> list[Target]:
        if self._rows.row(tenant_id, bulk_id) is None:
            return []
        rows = sorted(
            (t for t in self._db.bulk_targets[bulk_id].values() if state in (None, t.state)),
            key=lambda t: (not t.canary, t.position),
        )
        return [
            Target(
                t.device_id, t.position, t.canary, t.state, t.attempts, t.operation_id, t.reason,
                str(s[0]) if (s := self._rows.status_of(t)) is not None else None,
            )
            for t in page(rows, offset, limit)
        ]  # fmt: skip

    async def count_targets(self, tenant_id: str, bulk_id: int, state: TargetState | None) -> int:
        if self._rows.row(tenant_id, bulk_id) is None:
            return 0
        return sum(state in (None, t.state) for t in self._db.bulk_targets[bulk_id].values())


def _visible(bulk: BulkOperation) -> tuple[object, ...]:
    return (bulk.status, bulk.paused_reason, bulk.tally, bulk.created, bulk.skipped, bulk.retried)


@queries
class MemoryRolloutSteps:
    """A :class:`~fleetgate.services.ports.RolloutSteps` (``PgRolloutSteps``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._rows = _Rows(db)
        self._locks = _locks(db)

    async def step(self, check: BulkCheck) -> StepReport | None:
        now = self._db.clock()
        due = sorted(
            (r.next_step_at, i)
            for i, r in self._db.bulk_operations.items()
            if not r.settled and r.next_step_at <= now and not self._locks.of(i).locked()
        )
        if not due:
            return None
        bulk_id = due[0][1]
        async with self._locks.of(bulk_id):
            return await self._step(self._db.bulk_operations[bulk_id], check, now)

    async def _step(self, row: BulkRow, check: BulkCheck, now: datetime) -> StepReport:
        before = row.bulk
        tally = self._rows.tally(before.id)
        bulk = replace(before, tally=tally)
        snapshot = self._snapshot(row, bulk, now)
        decision = rollouts.next_step(snapshot)
        created: list[Operation] = []
        refused: list[Refusal] = []
        status, paused = bulk.status, bulk.paused_reason
        next_step_at = now + rollouts.IDLE
        next_creation_at = row.next_creation_at
        counts = {"created": 0, "skipped": 0, "retried": 0, "timed_out": 0}
        if isinstance(decision, rollouts.Wait):
            next_step_at = min(max(decision.until, now), now + rollouts.IDLE)
            if now < bulk.start_date:
                next_step_at = min(bulk.start_date, now + rollouts.IDLE * 20)
        elif isinstance(decision, rollouts.Pause):
            paused = decision.reason
        elif isinstance(decision, rollouts.Cancel):
            self._rows.cancel(row, decision.reason)
            status = BulkStatus.DELETED
        elif isinstance(decision, rollouts.Complete):
            status = BulkStatus.COMPLETED
        else:
            created, refused = await self._create(bulk, decision, check, counts)
            made = len(created) + len(refused)
            next_creation_at = rollouts.next_creation_after(snapshot, made, decision.interval)
            next_step_at = max(next_creation_at, now)
            if status is BulkStatus.ACTIVE:
                status = BulkStatus.IN_PROGRESS
        settled = status in (BulkStatus.COMPLETED, BulkStatus.DELETED) and tally.open == 0
        touched = tally != before.tally or bool(created or refused)
        current = row.bulk  # a cancel above changed it
        if current.status is not BulkStatus.DELETED:
            current = replace(current, status=status)
        row.bulk = replace(
            current,
            tally=replace(
                tally,
                failed=tally.failed - counts["retried"],
                timed_out=tally.timed_out - counts["timed_out"],
            ),
            paused_reason=None if status in (BulkStatus.DELETED, BulkStatus.COMPLETED) else paused,
            created=current.created + counts["created"],
            skipped=current.skipped + counts["skipped"],
            retried=current.retried + counts["retried"],
            last_updated=(
                now
                if touched or (status, paused) != (before.status, before.paused_reason)
                else current.last_updated
            ),
        )
        row.next_step_at, row.next_creation_at, row.settled = (
            next_step_at,
            next_creation_at,
            settled,
        )
        return StepReport(row.bulk, created, refused, _visible(before) != _visible(row.bulk))

    def _retryable(self, bulk: BulkOperation) -> list[TargetRow]:
        rollout = bulk.rollout
        if rollout is None or rollout.retries is None or rollout.retries.max <= 0:
            return []
        kind = rollout.retries.failure_type
        return sorted(
            (
                t
                for t in self._db.bulk_targets[bulk.id].values()
                if t.state is TargetState.CREATED
                and t.attempts <= rollout.retries.max
                and (found := self._rows.kind(t)) in ("FAILED", "TIMED_OUT")
                and (kind is FailureType.ALL or found == str(kind))
            ),
            key=lambda t: t.position,
        )

    def _snapshot(self, row: BulkRow, bulk: BulkOperation, now: datetime) -> Snapshot:
        rollout = bulk.rollout
        targets = self._db.bulk_targets[bulk.id].values()
        canary_targets = waiting_canary = 0
        canary = Tally()
        if rollout is not None and rollout.canary is not None and not bulk.canary_passed:
            mine = [t for t in targets if t.canary]
            statuses = [(self._rows.status_of(t) or (None, None))[0] for t in mine]
            canary_targets = len(mine)
            waiting_canary = sum(t.state is TargetState.WAITING for t in mine)
            canary = Tally(
                successful=sum(s is Status.SUCCESSFUL for s in statuses),
                failed=sum(
                    s is Status.FAILED or t.state is TargetState.SKIPPED
                    for s, t in zip(statuses, mine, strict=True)
                ),
            )
        return Snapshot(
            now=now,
            start_date=bulk.start_date,
            creation_ramp=bulk.creation_ramp,
            rollout=rollout,
            paused=bulk.paused_reason is not None,
            closed=bulk.status in (BulkStatus.COMPLETED, BulkStatus.DELETED),
            tally=bulk.tally,
            waiting_canary=waiting_canary,
            waiting_rest=bulk.waiting - waiting_canary,
            canary_targets=canary_targets,
            canary=canary,
            canary_passed=bulk.canary_passed,
            retryable=len(self._retryable(bulk)),
            next_creation_at=row.next_creation_at if bulk.created or bulk.skipped else None,
            baseline=row.baseline,
        )

    async def _create(
        self, bulk: BulkOperation, decision: Create, check: BulkCheck, counts: dict[str, int]
    ) -> tuple[list[Operation], list[Refusal]]:
        targets = self._db.bulk_targets[bulk.id]
        retries = self._retryable(bulk)[: decision.retries] if decision.retries else []
        waiting = sorted(
            (
                t
                for t in targets.values()
                if t.state is TargetState.WAITING and (t.canary or not decision.canary_only)
            ),
            key=lambda t: (not t.canary, t.position),
        )[: decision.new]
        claimed = {t.device_id: t for t in [*retries, *waiting]}
        old_kinds = {t.device_id: self._rows.kind(t) for t in retries}
        if not claimed:
            return [], []
        devices = [
            DeviceTarget(o.id, self._db.serial_of(o.id), o.type, jsonb(o.fragments))
            for d in sorted(claimed)
            if (o := self._db.object_in(bulk.tenant_id, d)) is not None
        ]
        verdicts = await check(bulk.tenant_id, bulk.prototype, devices)
        prepared = [v for v in verdicts if isinstance(v, Prepared)]
        refused = [v for v in verdicts if isinstance(v, Refusal)]
        created: list[Operation] = []
        now = self._db.clock()
        for p in prepared:
            target = claimed[p.device_id]
            attempt = target.attempts + 1
            fragments = dict(p.fragments)
            if target.operation_id is not None:
                fragments[RETRY_FRAGMENT] = {
                    "operationId": str(target.operation_id), "attempt": attempt,
                }  # fmt: skip
            op = Operation(
                self._db.new_operation_id(), bulk.tenant_id, p.device_id, p.serial, None,
                p.fragment_type, Status.PENDING, None, p.description, jsonb(fragments), bulk.id,
                now, now,
            )  # fmt: skip
            taken = any(
                r.bulk_attempt == attempt
                and r.op.bulk_operation_id == bulk.id
                and r.op.device_id == p.device_id
                for r in self._db.operations.values()
            )
            config_type = _snapshot_type(op)
            conflict = config_type is not None and any(
                r.op.device_id == p.device_id and _snapshot_type(r.op) == config_type
                for r in self._db.operations.values()
            )
            if taken or conflict or p.device_id not in self._db.objects:
                refused.append(
                    Refusal(p.device_id, "An open operation of the device conflicts with this one")
                )
                continue
            stored = OperationRow(op, bulk_attempt=attempt)
            self._db.operations[op.id] = stored
            created.append(self._db.shown(stored))
            if target.operation_id is None:
                counts["created"] += 1
            else:
                counts["retried"] += 1
                counts["timed_out"] += old_kinds.get(p.device_id) == "TIMED_OUT"
            target.state, target.operation_id, target.attempts = (
                TargetState.CREATED,
                op.id,
                attempt,
            )
        for r in refused:
            target = claimed[r.device_id]
            if target.state is TargetState.WAITING:
                target.state = TargetState.SKIPPED
                counts["skipped"] += 1
            else:
                target.attempts = 1000  # a refused retry retries no more
            target.reason = r.reason
        return created, refused
