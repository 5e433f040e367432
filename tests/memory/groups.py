"""Device groups' membership (``db/groups.py``)."""

from __future__ import annotations

from fleetgate.domain.inventory_query import Query, QueryTarget, matches

from memory.database import MemoryDatabase, queries
from memory.inventory import assets_of


@queries
class MemoryGroups:
    """A :class:`~fleetgate.services.ports.GroupStore` (``PgGroups``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def _below(self, tenant_id: str, group_id: int) -> set[int]:
        if self._db.object_in(tenant_id, group_id) is None:
            return set()
        found: set[int] = set()
        todo = [group_id]
        while todo:
            for child in assets_of(self._db, todo.pop()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    async def device_ids(
        self, tenant_id: str, group_id: int, where: Query | None = None
    ) -> list[int]:
        found = []
        for object_id in sorted(self._below(tenant_id, group_id)):
            row = self._db.object_in(tenant_id, object_id)
            if row is None or "c8y_IsDevice" not in row.fragments:
                continue
            target = QueryTarget(row.id, row.name, row.type, row.owner, row.fragments)
            if where is None or matches(where, target, lambda g: assets_of(self._db, g)):
                found.append(object_id)
        return found

    async def reaches(self, tenant_id: str, ancestor_id: int, object_id: int) -> bool:
        return object_id in self._below(tenant_id, ancestor_id)
