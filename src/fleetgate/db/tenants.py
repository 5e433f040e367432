"""Tenants as the management tenant manages them, in PostgreSQL (``tenant``, migration 0019).

Creating a tenant writes the tenant, its administrator and its bootstrap user in one
transaction; deleting one deletes the tenant row, and with it (``ON DELETE CASCADE``) its
users, trusted certificates, managed objects, external ids, operations, bulk operations,
new device requests, binaries' rows and options, in one transaction. The device ids it
held are left in ``device_session_release`` by the ``external_id`` trigger (migration
0007), so the broker's sessions under them are discarded even after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict
from fleetgate.domain.tenants import (
    PROFILE_FIELDS,
    DeletedTenant,
    NewTenantRows,
    TenantRecord,
    TenantStatus,
)
from fleetgate.domain.users import Role


def _record(row: asyncpg.Record) -> TenantRecord:
    return TenantRecord(
        id=row["id"],
        is_management=row["is_management"],
        status=TenantStatus(row["status"]),
        created_at=row["created_at"],
        domain=row["domain_name"],
        company=row["company"],
        contact_name=row["contact_name"],
        contact_phone=row["contact_phone"],
        admin_email=row["admin_email"],
        admin_name=row["admin_name"],
    )


def _domain_taken(domain: str | None) -> Conflict:
    return Conflict(f"Domain {domain} is used by another tenant", code="tenants/Duplicate")


def _roles(roles: Iterable[Role]) -> list[str]:
    return sorted(r.value for r in roles)


class PgTenants:
    """The :class:`fleetgate.services.ports.TenantStore` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def list_tenants(self, offset: int, limit: int) -> list[TenantRecord]:
        rows = await self._pool.fetch(
            "SELECT * FROM tenant ORDER BY created_at, id OFFSET $1 LIMIT $2", offset, limit
        )
        return [_record(r) for r in rows]

    async def count_tenants(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM tenant"))

    async def get_tenant(self, tenant_id: str) -> TenantRecord | None:
        row = await self._pool.fetchrow("SELECT * FROM tenant WHERE id = $1", tenant_id)
        return _record(row) if row else None

    async def suspended_tenants(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM tenant WHERE status = 'SUSPENDED' ORDER BY id"
        )
        return [r["id"] for r in rows]

    async def create_tenant(self, new: NewTenantRows) -> TenantRecord | None:
        """The new tenant with its users; None when the id is taken; ``Conflict`` when
        the domain is."""
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    "INSERT INTO tenant (id, domain_name, company, contact_name, contact_phone,"
                    " admin_email, admin_name) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (id) DO NOTHING RETURNING *",
                    new.id,
                    new.domain,
                    new.company,
                    new.contact_name,
                    new.contact_phone,
                    new.admin_email,
                    new.admin_name,
                )
            except asyncpg.UniqueViolationError:
                raise _domain_taken(new.domain) from None
            if row is None:
                return None
            for username, password_hash, roles, email in (
                (new.admin_name, new.admin_hash, new.admin_roles, new.admin_email),
                (new.bootstrap_name, new.bootstrap_hash, new.bootstrap_roles, None),
            ):
                await conn.execute(
                    "INSERT INTO app_user (tenant_id, username, password_hash, roles, email)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    new.id,
                    username,
                    password_hash,
                    _roles(roles),
                    email,
                )
            return _record(row)

    async def update_tenant(
        self,
        tenant_id: str,
        profile: Mapping[str, str | None],
        status: TenantStatus | None,
        admin_hash: str | None = None,
    ) -> TenantRecord | None:
        """Change what is given, in one transaction: the tenant's columns, and its admin
        user's e-mail (``admin_email``) and password (``admin_hash``) as Cumulocity does;
        None when there is no such tenant; ``Conflict`` when the new domain is taken."""
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise ValueError(f"not tenant profile fields: {sorted(unknown)}")
        args: list[object] = [tenant_id, status.value if status else None]
        for name in PROFILE_FIELDS:
            args += [name in profile, profile.get(name)]
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                row = await conn.fetchrow(
                    """
                    UPDATE tenant SET
                           status = coalesce($2, status),
                           company = CASE WHEN $3 THEN $4 ELSE company END,
                           domain_name = CASE WHEN $5 THEN $6 ELSE domain_name END,
                           contact_name = CASE WHEN $7 THEN $8 ELSE contact_name END,
                           contact_phone = CASE WHEN $9 THEN $10 ELSE contact_phone END,
                           admin_email = CASE WHEN $11 THEN $12 ELSE admin_email END
                     WHERE id = $1
                    RETURNING *
                    """,
                    *args,
                )
            except asyncpg.UniqueViolationError:
                raise _domain_taken(profile.get("domain")) from None
            if row is None:
                return None
            if row["admin_name"] is not None and (admin_hash or "admin_email" in profile):
                await conn.execute(
                    "UPDATE app_user SET"
                    " email = CASE WHEN $3 THEN $4 ELSE email END,"
                    " password_hash = coalesce($5, password_hash),"
                    " last_password_change = CASE WHEN $5::text IS NULL"
                    "   THEN last_password_change ELSE now() END"
                    " WHERE tenant_id = $1 AND username = $2",
                    tenant_id,
                    row["admin_name"],
                    "admin_email" in profile,
                    profile.get("admin_email"),
                    admin_hash,
                )
            return _record(row)

    async def delete_tenant(self, tenant_id: str) -> DeletedTenant | None:
        """Delete the tenant and everything it owns in one transaction; what the broker
        and the file store must then forget. None when there is no such tenant (the
        management tenant is never deleted here)."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                "SELECT id FROM tenant WHERE id = $1 AND NOT is_management FOR UPDATE",
                tenant_id,
            )
            if found is None:
                return None
            device_ids = await conn.fetch(
                "SELECT value FROM external_id WHERE tenant_id = $1 AND type = $2",
                tenant_id,
                DEVICE_ID_TYPE,
            )
            files = await conn.fetch(
                "SELECT DISTINCT b.sha256 FROM binary_file b"
                " JOIN managed_object m ON m.id = b.managed_object_id WHERE m.tenant_id = $1",
                tenant_id,
            )
            # bulk_operation_change has no foreign key (appended, folded by the scheduler)
            await conn.execute(
                "DELETE FROM bulk_operation_change WHERE bulk_operation_id IN"
                " (SELECT id FROM bulk_operation WHERE tenant_id = $1)",
                tenant_id,
            )
            await conn.execute("DELETE FROM tenant WHERE id = $1", tenant_id)
            return DeletedTenant(
                tenant_id=tenant_id,
                device_ids=tuple(r["value"] for r in device_ids),
                file_sha256s=tuple(r["sha256"] for r in files),
            )
