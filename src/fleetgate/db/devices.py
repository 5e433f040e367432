"""Registering devices in one transaction: managed object, external id, device user."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.db.device_ids import claim_device_id
from fleetgate.db.inventory import DISABLED_SHOWN, insert_object, keep_disabled
from fleetgate.domain.devices import (
    DEFAULT_DEVICE_TYPE,
    DEVICE_ID_TYPE,
    NO_PASSWORD,
    Registration,
    device_username,
)
from fleetgate.domain.enablement import effective_enabled
from fleetgate.domain.users import Role


class PgDevices:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def register(
        self,
        tenant_id: str,
        device_id: str,
        *,
        fragments: dict[str, Any],
        connection: dict[str, Any],
        connection_id: str | None,
        at: datetime,
    ) -> Registration:
        """Find or make the device ``device_id`` and its user; mark it on ``connection_id``.

        Exactly once under concurrency (see :func:`ensure_device`); ``Conflict`` when
        another tenant holds the id.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            object_id, created = await ensure_device(
                conn, tenant_id, device_id, at, fragments=fragments
            )
            shown = keep_disabled("managed_object", "$2", "$5")
            await conn.execute(
                f"UPDATE managed_object SET fragments = {shown},"  # noqa: S608 — fixed
                " connection_id = $3, last_updated = $4 WHERE id = $1",
                object_id,
                json.dumps(connection),
                connection_id,
                at,
                json.dumps(DISABLED_SHOWN),
            )
            user_created, user_enabled = await _ensure_device_user(conn, tenant_id, device_id)
        return Registration(int(object_id), created, user_created, user_enabled)

    async def released(self, limit: int) -> list[str]:
        """Device ids whose broker sessions are still to discard (``ReleasedDeviceIds``)."""
        rows = await self._pool.fetch(
            "SELECT device_id FROM device_session_release ORDER BY released_at LIMIT $1", limit
        )
        return [r["device_id"] for r in rows]

    async def discarded(self, device_ids: list[str]) -> None:
        await self._pool.execute(
            "DELETE FROM device_session_release WHERE device_id = ANY($1::text[])", device_ids
        )

    async def ensure_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        """Make the device user unless it exists: (created, enabled)."""
        async with self._pool.acquire() as conn:
            return await _ensure_device_user(conn, tenant_id, device_id)


#: Whether an operator disabled the device with device id $2 in tenant $1.
DEVICE_DISABLED = """
coalesce((SELECT m.disabled FROM external_id e JOIN managed_object m ON m.id = e.managed_object_id
           WHERE e.tenant_id = $1 AND e.type = 'c8y_Serial' AND e.value = $2), false)
"""


async def _ensure_device_user(conn: Conn, tenant_id: str, device_id: str) -> tuple[bool, bool]:
    """Make the device user unless it exists (enabled unless its device is disabled):
    (created, whether the device may log in — :func:`effective_enabled`)."""
    username = device_username(device_id)
    created = await conn.fetchval(
        "INSERT INTO app_user (tenant_id, username, password_hash, roles, enabled)"
        f" SELECT $1, $3, $4, $5, NOT {DEVICE_DISABLED}"
        " ON CONFLICT (tenant_id, username) DO NOTHING RETURNING true",
        tenant_id,
        device_id,
        username,
        NO_PASSWORD,
        [Role.DEVICE.value, Role.USER_MANAGEMENT_OWN_READ.value],
    )
    row = await conn.fetchrow(
        f"SELECT enabled, {DEVICE_DISABLED} AS disabled FROM app_user"  # noqa: S608 — fixed
        " WHERE tenant_id = $1 AND username = $3",
        tenant_id,
        device_id,
        username,
    )
    assert row is not None  # made above if it was missing
    return bool(created), effective_enabled(bool(row["enabled"]), bool(row["disabled"]))


Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def ensure_device(
    conn: Conn,
    tenant_id: str,
    device_id: str,
    at: datetime,
    *,
    fragments: dict[str, Any] | None = None,
) -> tuple[int, bool]:
    """The managed object of device ``device_id`` (c8y_Serial), made if missing (with
    ``fragments``, default just ``c8y_IsDevice``): (its id, whether it was made).

    Call inside a transaction. Exactly once under concurrency, and never for an id that
    another tenant holds (:func:`claim_device_id`).
    """
    await claim_device_id(conn, tenant_id, device_id)
    object_id = await conn.fetchval(
        "SELECT managed_object_id FROM external_id WHERE tenant_id = $1 AND type = $2"
        " AND value = $3",
        tenant_id,
        DEVICE_ID_TYPE,
        device_id,
    )
    created = object_id is None
    if created:
        row = await insert_object(
            conn,
            tenant_id,
            name=device_id,
            type=DEFAULT_DEVICE_TYPE,
            owner=device_username(device_id),
            fragments=fragments if fragments is not None else {"c8y_IsDevice": {}},
            at=at,
        )
        object_id = row["id"]
        await conn.execute(
            "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
            " VALUES ($1, $2, $3, $4)",
            tenant_id,
            DEVICE_ID_TYPE,
            device_id,
            object_id,
        )
    return int(object_id), created


async def set_device_password(
    conn: Conn, tenant_id: str, device_id: str, password_hash: str
) -> None:
    """Make or update the device user ``device_<id>`` with this password, enabled —
    unless its device is disabled (decision 0012: the user follows the device)."""
    await conn.execute(
        "INSERT INTO app_user (tenant_id, username, password_hash, roles, enabled)"
        f" SELECT $1, $3, $4, $5, NOT {DEVICE_DISABLED}"
        " ON CONFLICT (tenant_id, username) DO UPDATE"
        " SET password_hash = EXCLUDED.password_hash, last_password_change = now(),"
        "     enabled = EXCLUDED.enabled",
        tenant_id,
        device_id,
        device_username(device_id),
        password_hash,
        [Role.DEVICE.value, Role.USER_MANAGEMENT_OWN_READ.value],
    )
