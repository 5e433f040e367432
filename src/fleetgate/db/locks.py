"""Every advisory lock key fleetgate takes, in one place.

Transaction-scoped advisory locks (``pg_advisory_xact_lock``) serialise work on one thing
across service instances; their keys are strings hashed by PostgreSQL, so two features
that lock the same thing must build the same string — hence one module.

Lock order, wherever several are taken in one transaction: device id, then groups from
the top of their path down. Nothing takes them the other way round, so nothing deadlocks.
"""

from __future__ import annotations

import asyncpg

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


async def lock_device_id(conn: Conn, device_id: str) -> None:
    """Until the transaction ends: nobody else gives ``device_id`` to a device, takes it
    away or registers it — in any tenant (device ids are global, decision 0006)."""
    await conn.execute(_XACT_LOCK, f"device-id/{device_id}")


async def lock_trusted_subject(conn: Conn, subject_key: str) -> None:
    """Until the transaction ends: nobody else stores a trusted CA of this subject."""
    await conn.execute(_XACT_LOCK, f"trusted-subject/{subject_key}")


async def lock_group(conn: Conn, tenant_id: str, parent_id: int | None, name: str) -> None:
    """Until the transaction ends: nobody else makes the group ``name`` under ``parent_id``."""
    await conn.execute(_XACT_LOCK, f"group/{tenant_id}/{parent_id or ''}/{name}")
