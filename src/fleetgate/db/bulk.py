"""Storing one row of a bulk credentials import, in one transaction.

The device's managed object, its external ids, its user and its place in the group
hierarchy are written together or not at all. Locks are taken in the order of
``fleetgate.db.locks`` (the device id, then each group from the top of its path down), so
concurrent imports and auto-registrations of the same devices never deadlock.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

import asyncpg

from fleetgate.db.device_ids import claim_device_id
from fleetgate.db.inventory import insert_object
from fleetgate.db.locks import lock_group
from fleetgate.domain.bulk import DeviceRow, Refused, Stored, device_values, group_values
from fleetgate.domain.devices import DEVICE_ID_TYPE, device_username
from fleetgate.domain.enablement import effective_enabled
from fleetgate.domain.errors import Conflict
from fleetgate.domain.users import Role

log = logging.getLogger(__name__)

_Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class _Refusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PgBulkCredentials:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def existing_tenants(self, tenant_ids: list[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT id FROM tenant WHERE id = ANY($1::text[])", tenant_ids
        )
        return {r["id"] for r in rows}

    async def store(
        self, tenant_id: str, row: DeviceRow, password_hash: str, *, operator: str, at: datetime
    ) -> Stored | Refused:
        """Create or update the device of ``row`` with its credentials, all or nothing."""
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                return await _store(conn, tenant_id, row, password_hash, operator, at)
        except _Refusal as refusal:
            return Refused(refusal.reason)
        except asyncpg.PostgresError as exc:
            # The domain checks every value first (domain/bulk.py read_row), so this is a
            # rule it does not know yet: logged in full, never shown (it names tables and
            # may quote the row, password hash included).
            log.warning("bulk import: line %d of tenant %s refused: %r", row.line, tenant_id, exc)
            return Refused(
                "the row could not be stored and nothing of it was written; the service log"
                f" has the reason (line {row.line})"
            )


async def _store(
    conn: _Conn, tenant_id: str, row: DeviceRow, password_hash: str, operator: str, at: datetime
) -> Stored:
    device_id = row.device_id
    # The same claim as every other path that gives a device its id: they never interleave.
    try:
        await claim_device_id(conn, tenant_id, device_id)
    except Conflict as taken:
        raise _Refusal(taken.message) from None
    found = await conn.fetch(
        """
        SELECT e.type, m.id, m.fragments, m.fragments ? 'c8y_IsDevice' AS is_device
          FROM external_id e JOIN managed_object m ON m.id = e.managed_object_id
         WHERE e.tenant_id = $1 AND e.value = $2 AND e.type = ANY($3::text[])
           FOR UPDATE OF m
        """,
        tenant_id,
        device_id,
        sorted({row.id_type, DEVICE_ID_TYPE}),
    )
    if len({r["id"] for r in found}) > 1:
        raise _Refusal(
            f"the external ids {row.id_type}/{device_id} and {DEVICE_ID_TYPE}/{device_id}"
            " belong to two different managed objects"
        )
    if found and not found[0]["is_device"]:
        raise _Refusal(
            f"the external id {found[0]['type']}/{device_id} belongs to a managed object that"
            " is not a device"
        )
    existing = json.loads(found[0]["fragments"]) if found else None
    name, type_, fragments = device_values(row, existing)
    if found:
        object_id = int(found[0]["id"])
        await conn.execute(
            "UPDATE managed_object SET name = coalesce($2, name), type = coalesce($3, type),"
            " fragments = fragments || $4::jsonb, last_updated = $5 WHERE id = $1",
            object_id,
            name,
            type_,
            json.dumps(fragments),
            at,
        )
    else:
        created = await insert_object(
            conn,
            tenant_id,
            name=name,
            type=type_,
            owner=device_username(device_id),
            fragments=fragments,
            at=at,
        )
        object_id = int(created["id"])
    await conn.executemany(
        "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        [(tenant_id, t, device_id, object_id) for t in sorted({row.id_type, DEVICE_ID_TYPE})],
    )
    enabled = await conn.fetchval(
        """
        INSERT INTO app_user (tenant_id, username, password_hash, roles, last_password_change)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, username) DO UPDATE
           SET password_hash = EXCLUDED.password_hash,
               last_password_change = EXCLUDED.last_password_change
         WHERE $6 = ANY (app_user.roles)
        RETURNING enabled
        """,
        tenant_id,
        device_username(device_id),
        password_hash,
        [Role.DEVICE.value, Role.USER_MANAGEMENT_OWN_READ.value],
        at,
        Role.DEVICE.value,
    )
    if enabled is None:
        raise _Refusal(f"the user {device_username(device_id)} exists and is not a device's user")
    # The user follows its device (decision 0012): a disabled device's stays disabled.
    disabled = await conn.fetchval("SELECT disabled FROM managed_object WHERE id = $1", object_id)
    if disabled and enabled:
        await conn.execute(
            "UPDATE app_user SET enabled = false WHERE tenant_id = $1 AND username = $2",
            tenant_id,
            device_username(device_id),
        )
    enabled = effective_enabled(bool(enabled), bool(disabled))
    if row.path:
        group_id = await _group(conn, tenant_id, row.path, operator, at)
        await _link(conn, group_id, object_id)
    return Stored(created=not found, enabled=bool(enabled))


async def _group(
    conn: _Conn, tenant_id: str, path: tuple[str, ...], operator: str, at: datetime
) -> int:
    """The id of the last group of ``path``, making the groups that are missing."""
    parent: int | None = None
    for depth, name in enumerate(path):
        await lock_group(conn, tenant_id, parent, name)
        type_, fragments = group_values(depth)
        marker = next(iter(fragments))
        if parent is None:
            found = await conn.fetchval(
                "SELECT id FROM managed_object WHERE tenant_id = $1 AND name = $2"
                " AND fragments ? $3 ORDER BY id LIMIT 1",
                tenant_id,
                name,
                marker,
            )
        else:
            found = await conn.fetchval(
                "SELECT m.id FROM managed_object_child c JOIN managed_object m ON m.id = c.child_id"
                " WHERE c.parent_id = $1 AND c.kind = 'childAssets' AND m.name = $2"
                " AND m.fragments ? $3 ORDER BY m.id LIMIT 1",
                parent,
                name,
                marker,
            )
        if found is None:
            group = await insert_object(
                conn, tenant_id, name=name, type=type_, owner=operator, fragments=fragments, at=at
            )
            found = group["id"]
            if parent is not None:
                await _link(conn, parent, int(found))
        parent = int(found)
    assert parent is not None
    return parent


async def _link(conn: _Conn, parent_id: int, child_id: int) -> None:
    await conn.execute(
        "INSERT INTO managed_object_child (parent_id, child_id, kind)"
        " VALUES ($1, $2, 'childAssets') ON CONFLICT DO NOTHING",
        parent_id,
        child_id,
    )
