"""Device ids are global (docs/decisions/0006-global-device-ids.md): every path that gives a
device its id claims it here first."""

from __future__ import annotations

import asyncpg

from fleetgate.db.locks import lock_device_id
from fleetgate.domain.devices import DEVICE_ID_TYPE, device_id_taken

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def claim_device_id(conn: Conn, tenant_id: str, device_id: str) -> None:
    """Call inside a transaction before giving ``device_id`` to a device of ``tenant_id``:
    locks the id until the transaction ends (whichever service instance, whichever path:
    registration, external ids, bulk import, bootstrap) and raises the domain's
    :func:`device_id_taken` when a device or new device request of another tenant holds it."""
    await lock_device_id(conn, device_id)
    elsewhere = await conn.fetchval(
        "SELECT 1 FROM external_id WHERE type = $1 AND value = $2 AND tenant_id <> $3"
        " UNION ALL"
        " SELECT 1 FROM new_device_request WHERE id = $2 AND tenant_id <> $3 LIMIT 1",
        DEVICE_ID_TYPE,
        device_id,
        tenant_id,
    )
    if elsewhere:
        raise device_id_taken(device_id)
