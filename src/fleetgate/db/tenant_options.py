"""Tenant options in PostgreSQL (the ``tenant_option`` table, migration 0011)."""

from __future__ import annotations

import asyncpg

from fleetgate.domain import tenant_options
from fleetgate.domain.tenant_options import TenantOption


def _option(row: asyncpg.Record) -> TenantOption:
    return TenantOption(row["category"], row["key"], row["value"])


class PgTenantOptions:
    """A :class:`~fleetgate.services.ports.TenantOptionStore`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find(self, tenant_id: str, offset: int, limit: int) -> list[TenantOption]:
        rows = await self._pool.fetch(
            "SELECT category, key, value FROM tenant_option WHERE tenant_id = $1"
            " ORDER BY category, key OFFSET $2 LIMIT $3",
            tenant_id,
            offset,
            limit,
        )
        return [_option(r) for r in rows]

    async def count(self, tenant_id: str) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM tenant_option WHERE tenant_id = $1", tenant_id
        )
        return int(value)

    async def of_category(self, tenant_id: str, category: str) -> list[TenantOption]:
        rows = await self._pool.fetch(
            "SELECT category, key, value FROM tenant_option"
            " WHERE tenant_id = $1 AND category = $2 ORDER BY key",
            tenant_id,
            category,
        )
        return [_option(r) for r in rows]

    async def get(self, tenant_id: str, category: str, key: str) -> TenantOption | None:
        row = await self._pool.fetchrow(
            "SELECT category, key, value FROM tenant_option"
            " WHERE tenant_id = $1 AND category = $2 AND key = $3",
            tenant_id,
            category,
            key,
        )
        return _option(row) if row else None

    async def put(self, tenant_id: str, option: TenantOption) -> TenantOption:
        """Store the option, replacing its value if it exists."""
        await self._pool.execute(
            "INSERT INTO tenant_option (tenant_id, category, key, value) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant_id, category, key) DO UPDATE SET value = EXCLUDED.value",
            tenant_id,
            option.category,
            option.key,
            option.value,
        )
        return option

    async def replace(self, tenant_id: str, option: TenantOption) -> bool:
        """Set the value of an option that exists; False when it does not."""
        status = await self._pool.execute(
            "UPDATE tenant_option SET value = $4"
            " WHERE tenant_id = $1 AND category = $2 AND key = $3",
            tenant_id,
            option.category,
            option.key,
            option.value,
        )
        return not status.endswith(" 0")

    async def delete(self, tenant_id: str, category: str, key: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM tenant_option WHERE tenant_id = $1 AND category = $2 AND key = $3",
            tenant_id,
            category,
            key,
        )
        return not status.endswith(" 0")

    async def child_auto_registration(self, tenant_id: str) -> bool:
        """The tenant's ``fleetgate.gateways`` / ``childAutoRegistration`` (on when unset)."""
        return await child_auto_registration_of(self._pool, tenant_id)


async def child_auto_registration_of(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool, tenant_id: str
) -> bool:
    """The tenant's ``fleetgate.gateways`` / ``childAutoRegistration`` (on when unset), read
    on ``conn`` (inside the caller's transaction, for a registration)."""
    value = await conn.fetchval(
        "SELECT value FROM tenant_option WHERE tenant_id = $1 AND category = $2 AND key = $3",
        tenant_id,
        tenant_options.GATEWAYS,
        tenant_options.CHILD_AUTO_REGISTRATION,
    )
    return tenant_options.child_auto_registration(value)
