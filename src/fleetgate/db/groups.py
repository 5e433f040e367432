"""Device groups' membership in PostgreSQL: a recursive walk down ``childAssets``."""

from __future__ import annotations

from typing import Any

import asyncpg

from fleetgate.db.inventory_query import compile_query
from fleetgate.domain.inventory_query import Query

#: Everything reached from the group $2 of tenant $1 through childAssets (UNION: a loop,
#: should one be made by two operators at once, ends the walk instead of running it on).
_BELOW = """
WITH RECURSIVE below(id) AS (
    SELECT c.child_id FROM managed_object_child c
      JOIN managed_object p ON p.id = c.parent_id AND p.tenant_id = $1
     WHERE c.parent_id = $2 AND c.kind = 'childAssets'
    UNION
    SELECT c.child_id FROM managed_object_child c JOIN below b ON c.parent_id = b.id
     WHERE c.kind = 'childAssets')
"""


class PgGroups:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def device_ids(
        self, tenant_id: str, group_id: int, where: Query | None = None
    ) -> list[int]:
        """The group's devices at any depth that pass ``where``, ascending."""
        args: list[Any] = [tenant_id, group_id]
        condition = f" AND {compile_query(where, args, 'm')}" if where is not None else ""
        rows = await self._pool.fetch(
            f"{_BELOW} SELECT m.id FROM managed_object m JOIN below b ON b.id = m.id"  # noqa: S608
            f" WHERE m.tenant_id = $1 AND m.fragments ? 'c8y_IsDevice'{condition}"
            " ORDER BY m.id",
            *args,
        )
        return [r["id"] for r in rows]

    async def reaches(self, tenant_id: str, ancestor_id: int, object_id: int) -> bool:
        return bool(
            await self._pool.fetchval(
                f"{_BELOW} SELECT EXISTS (SELECT 1 FROM below WHERE id = $3)",  # noqa: S608
                tenant_id,
                ancestor_id,
                object_id,
            )
        )
