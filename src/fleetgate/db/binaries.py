"""Binaries in PostgreSQL: a managed object plus its ``binary_file`` row.

Files are shared by content (SHA-256), so whether a file may be removed is a question
about every binary of every tenant. The **content lock** answers it without races: a
PostgreSQL session advisory lock per SHA-256, held by whoever places a file in the store
and commits its row, and by whoever finds a file unused and removes it. Being
PostgreSQL's, it holds across service instances that share the store and the database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from fleetgate.db.inventory import insert_object, object_of_row
from fleetgate.db.pool import holds_session_state
from fleetgate.domain.binaries import BinaryFile, NewContent, file_fragments
from fleetgate.domain.devices import ManagedObject

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
#: First key of our advisory locks (``'bin'``): other features' locks use other keys.
_LOCK_SPACE = 0x62696E


def _lock_key(sha256: str) -> int:
    """The second key: the SHA-256's first 32 bits as a signed int4 (collisions only
    make two contents share a lock)."""
    return int(sha256[:8], 16) - 2**31


def _file(row: asyncpg.Record) -> BinaryFile:
    return BinaryFile(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        sha256=row["sha256"],
        length=row["length"],
        content_type=row["content_type"],
    )


_FILE_QUERY = (
    "SELECT m.id, m.tenant_id, m.name, b.sha256, b.length, b.content_type"
    " FROM managed_object m JOIN binary_file b ON b.managed_object_id = m.id"
)


class PgBinaries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def file_of(self, tenant_id: str, binary_id: int) -> BinaryFile | None:
        row = await self._pool.fetchrow(
            _FILE_QUERY + " WHERE m.tenant_id = $1 AND m.id = $2", tenant_id, binary_id
        )
        return _file(row) if row else None

    async def file_by_id(self, binary_id: int) -> BinaryFile | None:
        """The binary with this id in any tenant (for a signed URL, which names no tenant)."""
        row = await self._pool.fetchrow(_FILE_QUERY + " WHERE m.id = $1", binary_id)
        return _file(row) if row else None

    async def all_contents(self) -> set[str]:
        """The SHA-256 of every binary of every tenant."""
        rows = await self._pool.fetch("SELECT DISTINCT sha256 FROM binary_file")
        return {r["sha256"] for r in rows}

    @asynccontextmanager
    async def content(self, *sha256: str) -> AsyncIterator[LockedContent]:
        """Hold the content lock of each SHA-256 (taken in one order: no deadlock) for the
        ``async with`` block, with a connection to change binaries of that content."""
        keys = sorted({_lock_key(s) for s in sha256})
        async with self._pool.acquire() as conn:
            holds_session_state(conn)  # an unlock that never ran must not outlive us
            for key in keys:
                await conn.execute("SELECT pg_advisory_lock($1, $2)", _LOCK_SPACE, key)
            try:
                yield LockedContent(conn)
            finally:
                for key in reversed(keys):
                    await conn.execute("SELECT pg_advisory_unlock($1, $2)", _LOCK_SPACE, key)


class LockedContent:
    """Changes to binaries, made while their contents' locks are held."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def in_use(self, sha256: str) -> bool:
        """Whether any binary (of any tenant) has this content."""
        return bool(
            await self._conn.fetchval("SELECT 1 FROM binary_file WHERE sha256 = $1", sha256)
        )

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
        content: NewContent,
    ) -> ManagedObject:
        """The binary's managed object and its file row, in one transaction."""
        all_fragments = {
            **{k: v for k, v in fragments.items() if v is not None},
            **file_fragments(content.content_type, content.length),
        }
        async with self._conn.transaction():
            row = await insert_object(
                self._conn, tenant_id, name=name, type=type, owner=owner, fragments=all_fragments
            )
            await self._conn.execute(
                "INSERT INTO binary_file (managed_object_id, sha256, length, content_type)"
                " VALUES ($1, $2, $3, $4)",
                row["id"],
                content.sha256,
                content.length,
                content.content_type,
            )
        return object_of_row(row)

    async def replace(
        self, tenant_id: str, binary_id: int, expected_sha256: str, content: NewContent
    ) -> ManagedObject | None:
        """Give the binary new content, if its content is still ``expected_sha256``
        (None otherwise: it is gone, or someone replaced it meanwhile)."""
        async with self._conn.transaction():
            updated = await self._conn.fetchval(
                """
                UPDATE binary_file b SET sha256 = $4, length = $5, content_type = $6
                  FROM managed_object m
                 WHERE m.id = b.managed_object_id AND m.tenant_id = $1 AND m.id = $2
                   AND b.sha256 = $3
                RETURNING b.managed_object_id
                """,
                tenant_id,
                binary_id,
                expected_sha256,
                content.sha256,
                content.length,
                content.content_type,
            )
            if updated is None:
                return None
            row = await self._conn.fetchrow(
                "UPDATE managed_object SET fragments = fragments || $2::jsonb,"
                " last_updated = now() WHERE id = $1 RETURNING *",
                binary_id,
                json.dumps(file_fragments(content.content_type, content.length)),
            )
        assert row is not None
        return object_of_row(row)

    async def delete(self, tenant_id: str, binary_id: int, expected_sha256: str) -> bool:
        """Delete the binary if its content is still ``expected_sha256``."""
        status = await self._conn.execute(
            """
            DELETE FROM managed_object m USING binary_file b
             WHERE m.tenant_id = $1 AND m.id = $2 AND b.managed_object_id = m.id
               AND b.sha256 = $3
            """,
            tenant_id,
            binary_id,
            expected_sha256,
        )
        return not status.endswith(" 0")
