"""Disabling and enabling a device in PostgreSQL (decision 0012): the device's flag, its
``device_<id>`` user's ``enabled`` and the lifecycle its managed object and its
children's show, in one transaction.

Locks: the device and its children's rows in id order (as every writer of a child's
connection does, :mod:`fleetgate.db.connections`), then what decides the lifecycle is
read in a new statement: a connection event committed meanwhile is seen, and one that
comes later sees the flag.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.db.users import user_of_row
from fleetgate.domain.connections import C8Y_CONNECTION, FRAGMENT, shown_lifecycle
from fleetgate.domain.devices import DEVICE_ID_TYPE, device_username
from fleetgate.domain.enablement import Switched
from fleetgate.domain.lifecycle import DEVICE_FRAGMENT
from fleetgate.domain.users import Role

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_OBJECT = """
SELECT m.id, m.fragments ? $3 AS is_device, m.disabled, e.value AS serial,
       (SELECT ge.value FROM managed_object_child c
          JOIN external_id ge ON ge.managed_object_id = c.parent_id AND ge.type = $4
         WHERE c.child_id = m.id AND c.kind = 'childDevices') AS gateway
  FROM managed_object m
  LEFT JOIN external_id e ON e.managed_object_id = m.id AND e.type = $4
 WHERE m.tenant_id = $1 AND m.id = $2
"""

_CHILDREN = """
SELECT child_id FROM managed_object_child WHERE parent_id = $1 AND kind = 'childDevices'
"""

_LOCK = "SELECT id FROM managed_object WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"

#: What decides each device's lifecycle: its connection as shown, its flag, its gateway's.
_FACTS = """
SELECT m.id,
       m.fragments -> 'c8y_Connection' AS c8y_connection,
       m.fragments -> 'fleetgate_Connection' AS fleetgate_connection,
       m.fragments -> 'fleetgate_Lifecycle' AS lifecycle,
       m.disabled,
       CASE WHEN g.disabled THEN ge.value END AS disabled_gateway
  FROM managed_object m
  LEFT JOIN managed_object_child c ON c.child_id = m.id AND c.kind = 'childDevices'
  LEFT JOIN managed_object g ON g.id = c.parent_id
  LEFT JOIN external_id ge ON ge.managed_object_id = g.id AND ge.type = 'c8y_Serial'
 WHERE m.id = ANY($1::bigint[]) AND m.fragments ? 'c8y_IsDevice'
"""

_SHOW = """
UPDATE managed_object m
   SET fragments = m.fragments || jsonb_build_object('fleetgate_Lifecycle', u.shown::jsonb),
       last_updated = $3
  FROM unnest($1::bigint[], $2::text[]) AS u(id, shown)
 WHERE m.id = u.id
"""


class PgEnablement:
    """Devices' disabled flag (``services.enablement.EnablementStore``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set_disabled(
        self, tenant_id: str, object_id: int, disabled: bool, at: datetime
    ) -> Switched | None:
        """Disable (or enable) the device ``object_id`` of ``tenant_id``: its flag, its
        user's ``enabled``, its lifecycle and its children's. None when the tenant has
        no such object; an object that is no device is left as it is (``is_device``
        False)."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow(
                _OBJECT, tenant_id, object_id, DEVICE_FRAGMENT, DEVICE_ID_TYPE
            )
            if found is None:
                return None
            if not found["is_device"]:
                return Switched(object_id, None, None, False, False, None)
            children = [r["child_id"] for r in await conn.fetch(_CHILDREN, object_id)]
            ids = sorted({object_id, *children})
            await conn.execute(_LOCK, ids)
            was = await conn.fetchval(
                "UPDATE managed_object m SET disabled = $2, last_updated = $3"
                " FROM (SELECT disabled FROM managed_object WHERE id = $1) AS before"
                " WHERE m.id = $1 RETURNING before.disabled",
                object_id,
                disabled,
                at,
            )
            serial: str | None = found["serial"]
            user = None
            if serial is not None:
                row = await conn.fetchrow(
                    "UPDATE app_user SET enabled = $3"
                    " WHERE tenant_id = $1 AND username = $2 AND $4 = ANY (roles)"
                    " RETURNING *",
                    tenant_id,
                    device_username(serial),
                    not disabled,
                    Role.DEVICE.value,
                )
                user = user_of_row(row) if row is not None else None
            await _show_lifecycle(conn, ids, at)
        return Switched(object_id, serial, found["gateway"], True, was != disabled, user)

    async def object_of(self, tenant_id: str, device_id: str) -> int | None:
        """The managed object that holds ``device_id`` in ``tenant_id``."""
        found: int | None = await self._pool.fetchval(
            "SELECT managed_object_id FROM external_id"
            " WHERE tenant_id = $1 AND type = $2 AND value = $3",
            tenant_id,
            DEVICE_ID_TYPE,
            device_id,
        )
        return found

    async def disabled_devices(self) -> dict[str, str]:
        """Every disabled device, in every tenant: device id -> tenant (the broker's
        state)."""
        rows = await self._pool.fetch(
            "SELECT e.value, e.tenant_id FROM managed_object m"
            " JOIN external_id e ON e.managed_object_id = m.id AND e.type = $1"
            " WHERE m.disabled",
            DEVICE_ID_TYPE,
        )
        return {r["value"]: r["tenant_id"] for r in rows}


async def _show_lifecycle(conn: Conn, ids: list[int], at: datetime) -> None:
    """Write the lifecycle these devices must show now, where it differs (locked)."""
    changed: list[tuple[int, str]] = []
    for row in await conn.fetch(_FACTS, ids):
        shown: dict[str, Any] = {}
        for key, column in ((C8Y_CONNECTION, "c8y_connection"), (FRAGMENT, "fleetgate_connection")):
            if row[column] is not None:
                shown[key] = json.loads(row[column])
        wanted = shown_lifecycle(
            shown, disabled=row["disabled"], disabled_gateway=row["disabled_gateway"]
        )
        current = json.loads(row["lifecycle"]) if row["lifecycle"] is not None else None
        if current != wanted:
            changed.append((row["id"], json.dumps(wanted)))
    if changed:
        await conn.execute(_SHOW, [i for i, _ in changed], [s for _, s in changed], at)
