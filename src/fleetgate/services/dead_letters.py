"""Dead letters for operators: read and clear them (they are written by
:mod:`fleetgate.services.device_messages`).

A tenant sees the dead letters of its own devices; the management tenant also sees those
of device ids that no tenant held when they arrived (a device whose registration had not
been committed, or that was deleted meanwhile).
"""

from __future__ import annotations

from typing import Protocol

from fleetgate.domain.dead_letters import DeadLetterFilter, StoredDeadLetter
from fleetgate.domain.errors import NotFound
from fleetgate.domain.users import Tenant


class DeadLetterArchive(Protocol):
    async def find(
        self, tenant_id: str, unowned: bool, flt: DeadLetterFilter, offset: int, limit: int
    ) -> list[StoredDeadLetter]: ...

    async def count(self, tenant_id: str, unowned: bool, flt: DeadLetterFilter) -> int: ...

    async def get(
        self, tenant_id: str, unowned: bool, letter_id: int
    ) -> StoredDeadLetter | None: ...

    async def delete(self, tenant_id: str, unowned: bool, flt: DeadLetterFilter) -> int: ...

    async def delete_one(self, tenant_id: str, unowned: bool, letter_id: int) -> bool: ...


def _not_found(letter_id: int) -> NotFound:
    return NotFound(f"Dead letter {letter_id} not found", code="devicecontrol/Not Found")


class DeadLetters:
    def __init__(self, archive: DeadLetterArchive) -> None:
        self._archive = archive

    async def find(
        self, tenant: Tenant, flt: DeadLetterFilter, offset: int, limit: int, *, count: bool
    ) -> tuple[list[StoredDeadLetter], int | None]:
        unowned = tenant.is_management
        found = await self._archive.find(tenant.id, unowned, flt, offset, limit)
        total = await self._archive.count(tenant.id, unowned, flt) if count else None
        return found, total

    async def get(self, tenant: Tenant, letter_id: int) -> StoredDeadLetter:
        found = await self._archive.get(tenant.id, tenant.is_management, letter_id)
        if found is None:
            raise _not_found(letter_id)
        return found

    async def delete(self, tenant: Tenant, flt: DeadLetterFilter) -> int:
        return await self._archive.delete(tenant.id, tenant.is_management, flt)

    async def delete_one(self, tenant: Tenant, letter_id: int) -> None:
        if not await self._archive.delete_one(tenant.id, tenant.is_management, letter_id):
            raise _not_found(letter_id)
