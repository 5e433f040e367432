"""Bulk device credentials: import a CSV upload of devices and their passwords.

The file is read as a stream in batches of rows; each row is decided by the domain
(:mod:`fleetgate.domain.bulk`), its password hashed in a worker thread (scrypt releases
the GIL, so hashes run in parallel on every core), and stored in its own transaction.
After a batch's rows are committed, the broker learns their accounts in one control
push. Only failures and the ids of updated devices are kept: they are the answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import IO, Protocol

from fleetgate.domain import broker_control as control
from fleetgate.domain.bulk import BulkResult, DeviceRow, Refused, RowFailure, Stored
from fleetgate.domain.bulk_file import BulkFile
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Tenant
from fleetgate.services.ports import BrokerPush

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Hasher = Callable[[str], str]


def _now() -> datetime:
    return datetime.now(UTC)


class BulkStore(Protocol):
    """Where rows are stored (``fleetgate.db.bulk.PgBulkCredentials``)."""

    async def existing_tenants(self, tenant_ids: list[str]) -> set[str]: ...

    async def store(
        self, tenant_id: str, row: DeviceRow, password_hash: str, *, operator: str, at: datetime
    ) -> Stored | Refused: ...


@dataclass(frozen=True, slots=True)
class BulkLimits:
    #: Rows read, stored and pushed to the broker together.
    batch_rows: int = 500
    #: Passwords hashed at once (each scrypt hash holds 16 MiB while it runs).
    hash_threads: int = max(1, os.cpu_count() or 1)
    #: Rows stored at once (each holds a database connection).
    store_parallel: int = 8


class BulkCredentials:
    """``POST /devicecontrol/bulkNewDeviceRequests``: the use case behind it."""

    def __init__(
        self,
        store: BulkStore,
        broker: BrokerPush,
        *,
        limits: BulkLimits | None = None,
        hasher: Hasher = hash_password,
        clock: Clock = _now,
    ) -> None:
        self._store = store
        self._broker = broker
        self._limits = limits or BulkLimits()
        self._hasher = hasher
        self._clock = clock

    async def import_csv(self, tenant: Tenant, operator: str, stream: IO[bytes]) -> BulkResult:
        """Import the CSV in ``stream`` for ``tenant`` on behalf of the user ``operator``.

        Raises :class:`~fleetgate.domain.errors.ValidationFailed` (nothing stored) when
        the header is unusable or the file has no rows. Every row is independent: a
        failing row is reported and the others go on.
        """
        bulk = await asyncio.to_thread(BulkFile, stream, management=tenant.is_management)
        rows = iter(bulk)
        result = BulkResult()
        known_tenants: dict[str, bool] = {}
        while batch := await asyncio.to_thread(lambda: list(islice(rows, self._limits.batch_rows))):
            await self._import_batch(tenant, operator, batch, known_tenants, result)
        if result.total == 0:
            raise ValidationFailed(
                "the file has no rows: give one device per line after the header"
            )
        return result

    async def _import_batch(
        self,
        tenant: Tenant,
        operator: str,
        batch: list[DeviceRow | RowFailure],
        known_tenants: dict[str, bool],
        result: BulkResult,
    ) -> None:
        wanted = sorted(
            {r.tenant for r in batch if isinstance(r, DeviceRow) and r.tenant}
            - known_tenants.keys()
        )
        if wanted:
            found = await self._store.existing_tenants(wanted)
            known_tenants.update({t: t in found for t in wanted})
        hashing = asyncio.Semaphore(self._limits.hash_threads)
        storing = asyncio.Semaphore(self._limits.store_parallel)
        outcomes: list[RowFailure | tuple[DeviceRow, str, str, Stored] | None] = [None] * len(batch)

        async def one(index: int, row: DeviceRow) -> None:
            target = row.tenant or tenant.id
            if not known_tenants.get(target, target == tenant.id):
                outcomes[index] = _failure(row, f"the tenant {target} does not exist")
                return
            async with hashing:
                password_hash = await asyncio.to_thread(self._hasher, row.password)
            async with storing:
                stored = await self._store.store(
                    target, row, password_hash, operator=operator, at=self._clock()
                )
            if isinstance(stored, Refused):
                outcomes[index] = _failure(row, stored.reason)
            else:
                outcomes[index] = (row, target, password_hash, stored)

        try:
            async with asyncio.TaskGroup() as tg:
                for index, row in enumerate(batch):
                    if isinstance(row, RowFailure):
                        outcomes[index] = row
                    else:
                        tg.create_task(one(index, row))
        finally:
            # Also when a row broke the batch (the database went away): what is committed
            # reaches the broker. Every row pushed here is committed, so the broker never
            # knows an account the database does not.
            lines = _tally(outcomes, result)
            if lines:
                await self._broker.push(lines)


def _tally(
    outcomes: list[RowFailure | tuple[DeviceRow, str, str, Stored] | None], result: BulkResult
) -> list[str]:
    """Count the batch's outcomes into ``result``; the control lines of the stored rows."""
    lines: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, RowFailure):
            result.failures.append(outcome)
        elif outcome is not None:
            row, tenant_id, password_hash, stored = outcome
            if stored.created:
                result.created += 1
            else:
                result.updated.append(row.device_id)
            # As services/broker.device_lines: a disabled device keeps no account.
            lines.append(control.device(row.device_id, tenant_id, stored.enabled))
            if stored.enabled:
                lines.append(control.device_account(tenant_id, row.device_id, password_hash))
    return lines


def _failure(row: DeviceRow, reason: str) -> RowFailure:
    return RowFailure(row.line, reason, row.text, row.device_id)
