"""Tenants and users in PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import asyncpg

from fleetgate.domain.lockout import LoginFailures
from fleetgate.domain.users import Role, Tenant, User

#: The profile columns an update may set (``User`` field = column).
_PROFILE_COLUMNS = frozenset({"email", "first_name", "last_name"})


def _tenant(row: asyncpg.Record) -> Tenant:
    return Tenant(
        id=row["id"],
        is_management=row["is_management"],
        domain_name=row["domain_name"],
        suspended=row["status"] == "SUSPENDED",
    )


def user_of_row(row: asyncpg.Record) -> User:
    known = {r.value for r in Role}
    return User(
        tenant_id=row["tenant_id"],
        username=row["username"],
        password_hash=row["password_hash"],
        enabled=row["enabled"],
        roles=frozenset(Role(r) for r in row["roles"] if r in known),
        last_password_change=row["last_password_change"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        failures=LoginFailures(
            row["failed_logins"], row["first_failed_login"], row["locked_until"]
        ),
    )


class PgUsers:
    """The :class:`fleetgate.services.ports.UserStore` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def find_user(self, tenant_id: str, username: str) -> tuple[Tenant, User] | None:
        row = await self._pool.fetchrow(
            """
            SELECT t.id, t.is_management, t.domain_name, t.status, u.*
              FROM app_user u JOIN tenant t ON t.id = u.tenant_id
             WHERE u.tenant_id = $1 AND u.username = $2
            """,
            tenant_id,
            username,
        )
        if row is None:
            return None
        return _tenant(row), user_of_row(row)

    async def users_with_role(self, role: Role) -> list[User]:
        rows = await self._pool.fetch(
            "SELECT * FROM app_user WHERE $1 = ANY (roles) ORDER BY tenant_id, username",
            role.value,
        )
        return [user_of_row(r) for r in rows]

    async def ensure_tenant(self, tenant: Tenant) -> bool:
        """Create the tenant unless it exists; True when it was created."""
        status = await self._pool.execute(
            "INSERT INTO tenant (id, is_management, domain_name) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            tenant.id,
            tenant.is_management,
            tenant.domain_name,
        )
        return status.endswith(" 1")

    async def ensure_user(
        self, tenant_id: str, username: str, password_hash: str, roles: Iterable[Role]
    ) -> bool:
        """Create the user unless it exists (an existing one is left as it is)."""
        status = await self._pool.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, username) DO NOTHING",
            tenant_id,
            username,
            password_hash,
            sorted(r.value for r in roles),
        )
        return status.endswith(" 1")

    async def list_users(
        self, tenant_id: str, *, only_devices: bool, offset: int, limit: int
    ) -> list[User]:
        rows = await self._pool.fetch(
            "SELECT * FROM app_user WHERE tenant_id = $1 AND ($2 = ANY (roles)) = $3"
            " ORDER BY username OFFSET $4 LIMIT $5",
            tenant_id,
            Role.DEVICE.value,
            only_devices,
            offset,
            limit,
        )
        return [user_of_row(r) for r in rows]

    async def count_users(self, tenant_id: str, *, only_devices: bool) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM app_user WHERE tenant_id = $1 AND ($2 = ANY (roles)) = $3",
            tenant_id,
            Role.DEVICE.value,
            only_devices,
        )
        return int(value)

    async def set_enabled(self, tenant_id: str, username: str, enabled: bool) -> User | None:
        row = await self._pool.fetchrow(
            "UPDATE app_user SET enabled = $3 WHERE tenant_id = $1 AND username = $2 RETURNING *",
            tenant_id,
            username,
            enabled,
        )
        return user_of_row(row) if row else None

    async def delete_user(self, tenant_id: str, username: str) -> bool:
        status = await self._pool.execute(
            "DELETE FROM app_user WHERE tenant_id = $1 AND username = $2", tenant_id, username
        )
        return not status.endswith(" 0")

    async def create_user(
        self,
        tenant_id: str,
        username: str,
        password_hash: str,
        *,
        enabled: bool,
        profile: Mapping[str, str | None],
    ) -> User | None:
        """Create an operator without roles; None when the user name is taken."""
        row = await self._pool.fetchrow(
            "INSERT INTO app_user (tenant_id, username, password_hash, enabled, email,"
            " first_name, last_name) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (tenant_id, username) DO NOTHING RETURNING *",
            tenant_id,
            username,
            password_hash,
            enabled,
            profile.get("email"),
            profile.get("first_name"),
            profile.get("last_name"),
        )
        return user_of_row(row) if row else None

    async def update_user(
        self,
        tenant_id: str,
        username: str,
        *,
        enabled: bool | None,
        password_hash: str | None,
        profile: Mapping[str, str | None],
        clear_failures: bool,
    ) -> User | None:
        """Change what is given (None leaves a column); a new password also sets
        ``last_password_change``; ``clear_failures`` unlocks the user."""
        unknown = set(profile) - _PROFILE_COLUMNS
        if unknown:
            raise ValueError(f"not profile columns: {sorted(unknown)}")
        row = await self._pool.fetchrow(
            """
            UPDATE app_user SET
                   enabled = coalesce($3, enabled),
                   password_hash = coalesce($4, password_hash),
                   last_password_change = CASE WHEN $4::text IS NULL
                                               THEN last_password_change ELSE now() END,
                   email = CASE WHEN $5 THEN $6 ELSE email END,
                   first_name = CASE WHEN $7 THEN $8 ELSE first_name END,
                   last_name = CASE WHEN $9 THEN $10 ELSE last_name END,
                   failed_logins = CASE WHEN $11 THEN 0 ELSE failed_logins END,
                   first_failed_login = CASE WHEN $11 THEN NULL ELSE first_failed_login END,
                   locked_until = CASE WHEN $11 THEN NULL ELSE locked_until END
             WHERE tenant_id = $1 AND username = $2
            RETURNING *
            """,
            tenant_id,
            username,
            enabled,
            password_hash,
            "email" in profile,
            profile.get("email"),
            "first_name" in profile,
            profile.get("first_name"),
            "last_name" in profile,
            profile.get("last_name"),
            clear_failures,
        )
        return user_of_row(row) if row else None

    async def add_role(self, tenant_id: str, username: str, role: Role) -> User | None:
        row = await self._pool.fetchrow(
            "UPDATE app_user SET roles = ARRAY(SELECT DISTINCT r FROM unnest(roles || $3::text)"
            " r ORDER BY r) WHERE tenant_id = $1 AND username = $2 RETURNING *",
            tenant_id,
            username,
            role.value,
        )
        return user_of_row(row) if row else None

    async def remove_role(
        self, tenant_id: str, username: str, role: Role, *, keep_one_of: frozenset[Role]
    ) -> User | None:
        """Take ``role`` away, unless the user would then hold none of ``keep_one_of``
        (checked on the row as it is when the update runs: two concurrent removals
        cannot both pass); None when there is no such user or the check failed."""
        row = await self._pool.fetchrow(
            "UPDATE app_user SET roles = array_remove(roles, $3::text)"
            " WHERE tenant_id = $1 AND username = $2"
            " AND (cardinality($4::text[]) = 0 OR array_remove(roles, $3::text) && $4::text[])"
            " RETURNING *",
            tenant_id,
            username,
            role.value,
            sorted(r.value for r in keep_one_of),
        )
        return user_of_row(row) if row else None

    async def update_failures(
        self, tenant_id: str, username: str, change: Callable[[LoginFailures], LoginFailures]
    ) -> LoginFailures | None:
        """Apply ``change`` to the user's failed-login count under a row lock, so that
        the failures every service instance sees add up; None when there is no user."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT failed_logins, first_failed_login, locked_until FROM app_user"
                " WHERE tenant_id = $1 AND username = $2 FOR UPDATE",
                tenant_id,
                username,
            )
            if row is None:
                return None
            after = change(LoginFailures(*row.values()))
            await conn.execute(
                "UPDATE app_user SET failed_logins = $3, first_failed_login = $4,"
                " locked_until = $5 WHERE tenant_id = $1 AND username = $2",
                tenant_id,
                username,
                after.count,
                after.first_at,
                after.locked_until,
            )
            return after

    async def clear_failures(self, tenant_id: str, username: str) -> None:
        await self._pool.execute(
            "UPDATE app_user SET failed_logins = 0, first_failed_login = NULL,"
            " locked_until = NULL WHERE tenant_id = $1 AND username = $2"
            " AND (failed_logins > 0 OR locked_until IS NOT NULL)",
            tenant_id,
            username,
        )
