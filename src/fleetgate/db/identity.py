"""External ids in PostgreSQL (``/identity``). A ``c8y_Serial`` is the device id: global
across tenants, claimed before it is given (:mod:`fleetgate.db.device_ids`)."""

from __future__ import annotations

import asyncpg

from fleetgate.db.device_ids import claim_device_id
from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict, NotFound
from fleetgate.domain.inventory import ExternalId


class PgIdentity:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, tenant_id: str, object_id: int, type: str, value: str) -> ExternalId:
        """Give the object this external id. A ``c8y_Serial`` (a device id) is claimed
        across tenants first (decision 0006), and an object has at most one."""
        async with self._pool.acquire() as conn, conn.transaction():
            if type == DEVICE_ID_TYPE:
                await claim_device_id(conn, tenant_id, value)
            exists = await conn.fetchval(
                "SELECT 1 FROM managed_object WHERE tenant_id = $1 AND id = $2 FOR SHARE",
                tenant_id,
                object_id,
            )
            if not exists:
                raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
            if type == DEVICE_ID_TYPE:
                held = await conn.fetchval(
                    "SELECT value FROM external_id WHERE managed_object_id = $1 AND type = $2",
                    object_id,
                    DEVICE_ID_TYPE,
                )
                if held is not None and held != value:
                    raise Conflict(
                        f"Managed object {object_id} has the device id {held} already; delete"
                        f" that {DEVICE_ID_TYPE} first",
                        code="identity/Duplicate",
                    )
            inserted = await conn.fetchval(
                "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
                tenant_id,
                type,
                value,
                object_id,
            )
        if not inserted:
            raise Conflict(f"External id {type}/{value} already exists", code="identity/Duplicate")
        return ExternalId(tenant_id, type, value, object_id)

    async def get(self, tenant_id: str, type: str, value: str) -> ExternalId | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM external_id WHERE tenant_id = $1 AND type = $2 AND value = $3",
            tenant_id,
            type,
            value,
        )
        return _external(row) if row else None

    async def device(self, device_id: str) -> ExternalId | None:
        """The device that holds ``device_id`` (its ``c8y_Serial``), in whatever tenant:
        device ids are global."""
        row = await self._pool.fetchrow(
            "SELECT * FROM external_id WHERE type = $1 AND value = $2", DEVICE_ID_TYPE, device_id
        )
        return _external(row) if row else None

    async def of_object(self, tenant_id: str, object_id: int) -> list[ExternalId]:
        rows = await self._pool.fetch(
            "SELECT * FROM external_id WHERE tenant_id = $1 AND managed_object_id = $2"
            " ORDER BY type, value",
            tenant_id,
            object_id,
        )
        return [_external(r) for r in rows]

    async def delete(self, tenant_id: str, type: str, value: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM external_id WHERE tenant_id = $1 AND type = $2 AND value = $3",
            tenant_id,
            type,
            value,
        )
        return not status.endswith(" 0")


def _external(row: asyncpg.Record) -> ExternalId:
    return ExternalId(row["tenant_id"], row["type"], row["value"], row["managed_object_id"])
