"""Gateways' child devices in PostgreSQL: ``childDevices`` references (one gateway per
device: the unique index ``managed_object_one_gateway``) and ``removed_child`` (migration
0010).

Whoever adds a ``childDevices`` reference locks both ends first (:func:`tree_ends`, ``FOR
NO KEY UPDATE`` in id order) and reads their state in a later statement, so that two
attachments that share an object run one after the other and each sees what the other
made: the one-level rule (no grandchildren) holds only if every writer does so. The
unique index is the last word on "one gateway per device": its violation is the same 409
as the rule's.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from fleetgate.domain.child_devices import (
    Attached,
    Detached,
    Gateway,
    HowRemoved,
    RemovedChild,
    TreeEnd,
    already_a_child,
    decide_attach,
)
from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict
from fleetgate.domain.gateways import CHILD_DEVICES

#: The unique index that makes a device belong to one gateway at a time.
ONE_GATEWAY = "managed_object_one_gateway"

_TREE_ENDS = """
SELECT m.id, m.fragments ? 'c8y_IsDevice' AS is_device, e.value AS device_id,
       p.parent_id AS gateway_id, pe.value AS gateway_device_id,
       (SELECT count(*) FROM managed_object_child k
         WHERE k.parent_id = m.id AND k.kind = 'childDevices') AS children
  FROM managed_object m
  LEFT JOIN external_id e ON e.managed_object_id = m.id AND e.type = 'c8y_Serial'
  LEFT JOIN managed_object_child p ON p.child_id = m.id AND p.kind = 'childDevices'
  LEFT JOIN external_id pe ON pe.managed_object_id = p.parent_id AND pe.type = 'c8y_Serial'
 WHERE m.tenant_id = $1 AND m.id = ANY($2)
"""


async def tree_ends(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    tenant_id: str,
    object_ids: Sequence[int],
) -> dict[int, TreeEnd]:
    """Lock the tenant's objects among ``object_ids`` (in id order, against deadlocks),
    then read where each stands in the tree. Inside a transaction."""
    await conn.execute(
        "SELECT 1 FROM managed_object WHERE tenant_id = $1 AND id = ANY($2)"
        " ORDER BY id FOR NO KEY UPDATE",
        tenant_id,
        list(object_ids),
    )
    # A statement of its own: its snapshot sees what a writer we waited for committed.
    rows = await conn.fetch(_TREE_ENDS, tenant_id, list(object_ids))
    return {
        r["id"]: TreeEnd(
            object_id=r["id"],
            is_device=r["is_device"],
            device_id=r["device_id"],
            gateway=Gateway(r["gateway_id"], r["gateway_device_id"])
            if r["gateway_id"] is not None
            else None,
            children=r["children"],
        )
        for r in rows
    }


class PgChildDevices:
    """A :class:`~fleetgate.services.ports.ChildDeviceStore`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def attach(self, tenant_id: str, gateway_id: int, child_id: int) -> Attached:
        """Make ``child_id`` a child device of ``gateway_id`` as
        :func:`~fleetgate.domain.child_devices.decide_attach` says (its errors are raised),
        and forget that an operator had removed it from this gateway (``made`` is False
        when it was this gateway's child already)."""
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    ends = await tree_ends(conn, tenant_id, (gateway_id, child_id))
                    made = decide_attach(
                        gateway_id, child_id, ends.get(gateway_id), ends.get(child_id)
                    )
                    if made:
                        await conn.execute(
                            "INSERT INTO managed_object_child (parent_id, kind, child_id)"
                            " VALUES ($1, $2, $3)",
                            gateway_id,
                            CHILD_DEVICES,
                            child_id,
                        )
                    await conn.execute(
                        "DELETE FROM removed_child WHERE gateway_id = $1 AND device_id = $2",
                        gateway_id,
                        ends[child_id].device_id,
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != ONE_GATEWAY:
                    raise
                # Another writer gave the device a gateway between our read and our insert.
                raise await self._taken(conn, child_id) from None
        child, gateway = ends[child_id].device_id, ends[gateway_id].device_id
        # decide_attach refused an end without a device id.
        assert child is not None
        assert gateway is not None
        return Attached(made, child, gateway)

    async def _taken(
        self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, child_id: int
    ) -> Conflict:
        row = await conn.fetchrow(
            "SELECT p.parent_id, pe.value AS gateway_device_id, e.value AS device_id"
            "  FROM managed_object_child p"
            "  LEFT JOIN external_id pe ON pe.managed_object_id = p.parent_id"
            "   AND pe.type = 'c8y_Serial'"
            "  LEFT JOIN external_id e ON e.managed_object_id = p.child_id"
            "   AND e.type = 'c8y_Serial'"
            " WHERE p.child_id = $1 AND p.kind = 'childDevices'",
            child_id,
        )
        if row is None:  # and detached again since: the caller may simply retry
            return Conflict(
                f"Managed object {child_id} was attached to another gateway meanwhile; try again",
                code="inventory/Conflict",
            )
        gateway = Gateway(row["parent_id"], row["gateway_device_id"])
        return already_a_child(child_id, row["device_id"], gateway)

    async def detach(
        self, tenant_id: str, gateway_id: int, child_id: int, removed_by: str | None
    ) -> Detached | None:
        """Drop the reference and remember that an operator removed the child (by its
        device id) from this gateway, in one transaction; None when it was no child of it."""
        async with self._pool.acquire() as conn, conn.transaction():
            gone = await conn.fetchval(
                "DELETE FROM managed_object_child c USING managed_object m"
                " WHERE c.parent_id = $2 AND c.kind = $3 AND c.child_id = $4"
                " AND m.id = c.parent_id AND m.tenant_id = $1 RETURNING c.child_id",
                tenant_id,
                gateway_id,
                CHILD_DEVICES,
                child_id,
            )
            if gone is None:
                return None
            device_id = await conn.fetchval(
                "INSERT INTO removed_child (gateway_id, device_id, removed_by, how)"
                " SELECT $1, e.value, $3, $4 FROM external_id e"
                "  WHERE e.managed_object_id = $2 AND e.type = $5"
                " ON CONFLICT (gateway_id, device_id) DO UPDATE"
                " SET removed_at = now(), removed_by = EXCLUDED.removed_by, how = EXCLUDED.how"
                " RETURNING device_id",
                gateway_id,
                child_id,
                removed_by,
                HowRemoved.DETACHED.value,
                DEVICE_ID_TYPE,
            )
        return Detached(device_id)

    async def removed_children(self, tenant_id: str, gateway_id: int) -> list[RemovedChild]:
        """The children operators removed from the gateway, by device id."""
        rows = await self._pool.fetch(
            "SELECT r.* FROM removed_child r JOIN managed_object m ON m.id = r.gateway_id"
            " WHERE m.tenant_id = $1 AND r.gateway_id = $2 ORDER BY r.device_id",
            tenant_id,
            gateway_id,
        )
        return [
            RemovedChild(
                r["gateway_id"],
                r["device_id"],
                r["removed_at"],
                r["removed_by"],
                HowRemoved(r["how"]),
            )
            for r in rows
        ]
