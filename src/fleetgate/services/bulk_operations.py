"""Bulk operations: operators create, reschedule, pause, resume and cancel them; the
scheduler (:meth:`BulkOperations.run_scheduler`, one per service instance, any number
of instances) creates their operations in batches and dispatches them.

Every state of a rollout is in the database (decision 0010); this service holds none
between steps, so a restarted or second instance simply takes the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from fleetgate.domain import commands
from fleetgate.domain.bulk_operations import (
    BulkFilter,
    BulkOperation,
    Prepared,
    Refusal,
    StepReport,
    Target,
    TargetState,
    parse_changes,
    parse_new,
)
from fleetgate.domain.errors import NotFound, ServiceUnavailable, ValidationFailed
from fleetgate.domain.operations import DeviceTarget
from fleetgate.services.operation_checks import Lookups, urls
from fleetgate.services.operations import Operations
from fleetgate.services.ports import BulkOperationStore, GroupStore, RolloutSteps

log = logging.getLogger(__name__)


def _not_found(bulk_id: int) -> NotFound:
    return NotFound(f"Bulk operation {bulk_id} not found", code="devicecontrol/Not Found")


class BulkOperations:
    def __init__(
        self,
        store: BulkOperationStore,
        steps: RolloutSteps,
        groups: GroupStore,
        operations: Operations,
    ) -> None:
        self._store = store
        self._steps = steps
        self._groups = groups
        self._operations = operations
        self.feed = operations.feed
        #: Set when there may be work now (a new or resumed bulk operation): the
        #: scheduler of this instance looks at once instead of at its next round.
        self.wake = asyncio.Event()

    # --- operators -------------------------------------------------------------------

    async def create(self, tenant_id: str, body: dict[str, Any]) -> BulkOperation:
        new = parse_new(body)
        await self._precheck(tenant_id, new.prototype)
        if new.group_id is not None:
            # The group's devices at any depth, narrowed by fleetgate_Targets.query.
            devices = await self._groups.device_ids(tenant_id, new.group_id, new.where)
        else:
            assert new.failed_parent_id is not None
            failed = await self._store.failed_devices(tenant_id, new.failed_parent_id)
            if failed is None:
                raise _not_found(new.failed_parent_id)
            devices = failed
        canary = new.rollout.canary if new.rollout is not None else None
        canary_group = (
            await self._groups.device_ids(tenant_id, canary.group_id)
            if canary is not None and canary.group_id is not None
            else []
        )
        bulk = await self._store.create(tenant_id, new, devices, canary_group)
        self.wake.set()
        return bulk

    async def _precheck(self, tenant_id: str, prototype: dict[str, Any]) -> None:
        """What is wrong with the prototype whatever the device: no command, a malformed
        known command, a binary that does not exist. The rest (a command the device did
        not declare, a configuration for another type) is checked per device."""
        candidates = [
            k
            for k, v in prototype.items()
            if k not in commands.OWN_KEYS and isinstance(v, dict | list)
        ]
        if not candidates:
            raise ValidationFailed(
                "operationPrototype has no command fragment (c8y_Firmware, c8y_Restart …)",
                code="devicecontrol/Invalid Data",
            )
        lookups = Lookups()
        for key in candidates:
            commands.check_command(key, prototype[key])  # does nothing to unknown ones
            files = await self._operations.checks.files_of(tenant_id, prototype[key], lookups)
            for url in urls(prototype[key]):
                if "/inventory/binaries/" in url and url not in files:
                    raise ValidationFailed(
                        f"No such file: {url}", code="devicecontrol/Invalid Data"
                    )

    async def get(self, tenant_id: str, bulk_id: int) -> BulkOperation:
        bulk = await self._store.get(tenant_id, bulk_id)
        if bulk is None:
            raise _not_found(bulk_id)
        return bulk

    async def find(
        self, tenant_id: str, flt: BulkFilter, offset: int, limit: int, *, count: bool
    ) -> tuple[list[BulkOperation], int | None]:
        found = await self._store.find(tenant_id, flt, offset, limit)
        return found, await self._store.count(tenant_id, flt) if count else None

    async def update(self, tenant_id: str, bulk_id: int, body: dict[str, Any]) -> BulkOperation:
        """A PUT: in place while nothing was created; else the bulk operation is cancelled
        and a new one, with the changes, takes over its waiting devices (Cumulocity's
        "cancels it and creates/schedules a new one"); the answer is the new one."""
        current = await self.get(tenant_id, bulk_id)
        merged = parse_changes(body, current).applied_to(current)
        await self._precheck(tenant_id, merged.prototype)
        done = await self._store.reschedule(tenant_id, bulk_id, merged)
        if done is None:
            raise _not_found(bulk_id)
        bulk, _replaced = done
        self.wake.set()  # the feed hears of both from the database's change log
        return bulk

    async def cancel(
        self, tenant_id: str, bulk_id: int, reason: str | None = None
    ) -> BulkOperation:
        bulk = await self._store.cancel(tenant_id, bulk_id, reason or "Cancelled by an operator")
        if bulk is None:
            raise _not_found(bulk_id)
        self.wake.set()
        return bulk

    async def pause(self, tenant_id: str, bulk_id: int, reason: str | None = None) -> BulkOperation:
        bulk = await self._store.pause(tenant_id, bulk_id, reason or "Paused by an operator")
        if bulk is None:
            raise _not_found(bulk_id)
        self.wake.set()
        return bulk

    async def resume(self, tenant_id: str, bulk_id: int) -> BulkOperation:
        bulk = await self._store.resume(tenant_id, bulk_id)
        if bulk is None:
            raise _not_found(bulk_id)
        self.wake.set()
        return bulk

    async def targets(
        self, tenant_id: str, bulk_id: int, state: TargetState | None, offset: int, limit: int
    ) -> list[Target]:
        await self.get(tenant_id, bulk_id)
        return await self._store.targets(tenant_id, bulk_id, state, offset, limit)

    async def count_targets(self, tenant_id: str, bulk_id: int, state: TargetState | None) -> int:
        return await self._store.count_targets(tenant_id, bulk_id, state)

    # --- the scheduler ---------------------------------------------------------------

    async def step(self) -> StepReport | None:
        """One step of one due bulk operation: its counts folded, its next step decided
        and taken; the operations it created are dispatched after the commit."""
        report = await self._steps.step(self._check)
        if report is None:
            return None
        if report.created:
            await self._operations.dispatch(report.created)
        if report.refused:
            log.info(
                "bulk operation %d: %d devices skipped (%s)",
                report.bulk.id,
                len(report.refused),
                report.refused[0].reason,
            )
        return report

    async def _check(
        self, tenant_id: str, prototype: dict[str, Any], devices: Sequence[DeviceTarget]
    ) -> list[Prepared | Refusal]:
        lookups = Lookups()
        verdicts: list[Prepared | Refusal] = []
        for device in devices:
            try:
                checked = await self._operations.checks.check(tenant_id, device, prototype, lookups)
            except ValidationFailed as refused:
                verdicts.append(Refusal(device.id, refused.message))
                continue
            assert device.serial is not None  # checked
            verdicts.append(
                Prepared(
                    device.id,
                    device.serial,
                    checked.fragment_type,
                    checked.description,
                    checked.fragments,
                )
            )
        return verdicts

    async def run_scheduler(self, every: float = 0.2) -> None:
        """Step due bulk operations until cancelled: without pause while there are due
        ones, else every ``every`` seconds (or at once when woken)."""
        while True:
            try:
                report = await self.step()
            except ServiceUnavailable as exc:
                log.warning("the bulk operation scheduler waits for the database: %s", exc)
                report = None
            except Exception:
                log.exception("a bulk operation step failed")
                report = None
            if report is None:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), every)


__all__ = ["BulkOperations"]
