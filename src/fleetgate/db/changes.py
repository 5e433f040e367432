"""The change log of operations and bulk operations (migration 0023), read by every
service instance for its live stream.

A deferred trigger numbers each committed change in commit order and notifies
``fleetgate_changes``; :class:`PgChangeLog` listens on a connection of the pool and reads
the changes after a position (a change's position is its SSE event id, the same on every
instance), each object as that change committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from fleetgate.db.bulk_operations import bulk_from_row
from fleetgate.db.operation_rows import DEVICE_COLUMNS, operation_of_row
from fleetgate.db.pool import holds_session_state
from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.operations import Operation

CHANNEL = "fleetgate_changes"

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: The operations' changes in a range of positions, as committed (with what an
#: :class:`Operation` shows of its device now).
_OPERATIONS = f"""
SELECT c.position, o.*, {DEVICE_COLUMNS}
  FROM operation_change c
 CROSS JOIN LATERAL jsonb_populate_record(NULL::operation, c.state) o
  JOIN managed_object m ON m.id = o.device_id
 WHERE c.kind = 'operation' AND c.position > $1 AND c.position <= $2
"""  # noqa: S608 — fixed fragments
_BULKS = """
SELECT c.position, b.*
  FROM operation_change c
 CROSS JOIN LATERAL jsonb_populate_record(NULL::bulk_operation, c.state) b
 WHERE c.kind = 'bulk_operation' AND c.position > $1 AND c.position <= $2
   AND EXISTS (SELECT 1 FROM bulk_operation x WHERE x.id = c.object_id)
"""

Change = Operation | BulkOperation
#: Changes read in order (position, object), and the position the next read starts after.
ChangeBatch = tuple[list[tuple[int, Change]], int]


class PgChangeLog:
    """The log in ``pool``'s database: :meth:`listening` for wake-ups, :meth:`after` for
    the rows."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[Wakeups]:
        """LISTEN on a connection of the pool, held while the block runs (and reset when
        it goes back). A lost connection raises ``ConnectionError`` out of the block's
        next wait (a notification could have been missed: read again after listening
        anew)."""
        async with self._pool.acquire() as conn:
            holds_session_state(conn)
            async with self._listening_on(conn) as wakeups:
                yield wakeups

    @contextlib.asynccontextmanager
    async def _listening_on(self, conn: Conn) -> AsyncIterator[Wakeups]:
        wake = asyncio.Event()
        lost = asyncio.Event()

        def notified(*_: object) -> None:
            wake.set()

        def terminated(_: object) -> None:
            lost.set()
            wake.set()

        conn.add_termination_listener(terminated)
        try:
            await conn.add_listener(CHANNEL, notified)
            yield Wakeups(wake, lost, conn)
        finally:
            conn.remove_termination_listener(terminated)
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.remove_listener(CHANNEL, notified)

    async def latest(self) -> int:
        """The position of the last change committed (0: none)."""
        value = await self._pool.fetchval("SELECT coalesce(max(position), 0) FROM operation_change")
        return int(value)

    async def last(self, count: int) -> ChangeBatch:
        """The last ``count`` changes (for a history that resumes from before this
        process started)."""
        start = await self._pool.fetchval(
            "SELECT coalesce(min(position) - 1, 0) FROM"
            " (SELECT position FROM operation_change ORDER BY position DESC LIMIT $1) c",
            count,
        )
        return await self.after(int(start), count)

    async def after(self, position: int, limit: int) -> ChangeBatch:
        """Up to ``limit`` changes after ``position``, in order, each object as that
        change committed it (changes of objects deleted since are left out)."""
        last = await self._pool.fetchval(
            "SELECT max(position) FROM (SELECT position FROM operation_change"
            " WHERE position > $1 ORDER BY position LIMIT $2) c",
            position,
            limit,
        )
        if last is None:
            return [], position
        changes: list[tuple[int, Change]] = [
            (r["position"], operation_of_row(r))
            for r in await self._pool.fetch(_OPERATIONS, position, last)
        ]
        changes += [
            (r["position"], bulk_from_row(r))
            for r in await self._pool.fetch(_BULKS, position, last)
        ]
        changes.sort(key=lambda c: c[0])
        return changes, int(last)

    async def forget_before(self, age_seconds: float, keep: int) -> int:
        """Delete changes older than ``age_seconds`` beyond the last ``keep``; how many."""
        result = await self._pool.execute(
            "DELETE FROM operation_change WHERE at < now() - make_interval(secs => $1)"
            " AND position < (SELECT coalesce(max(position), 0) FROM operation_change) - $2",
            age_seconds,
            keep,
        )
        return int(result.split()[-1])


class Wakeups:
    """The notifications :meth:`PgChangeLog.listening` receives."""

    def __init__(self, wake: asyncio.Event, lost: asyncio.Event, conn: Conn) -> None:
        self._wake, self._lost, self._conn = wake, lost, conn

    async def wait(self, timeout: float) -> None:
        """Until a notification (or ``timeout`` seconds); raises ``ConnectionError`` when
        the connection was lost."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self._lost.is_set() or self._conn.is_closed():
            raise ConnectionError("the database connection that listens was lost")
