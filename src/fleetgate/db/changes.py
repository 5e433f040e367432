"""The change log of operations and bulk operations (migration 0023), read by every
service instance for its live stream.

A deferred trigger numbers each committed change in commit order and notifies
``fleetgate_changes``; :class:`PgChangeLog` listens on a connection of its own and reads
the rows after a position, with each object as it is *now* (a change's position is its
SSE event id, the same on every instance). Several changes of one object in one read are
given once, at the last position: the stream shows states, not every step between.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg

from fleetgate.db.bulk_operations import bulk_from_row
from fleetgate.db.operation_rows import SELECT, operation_of_row
from fleetgate.db.pool import holds_session_state
from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.operations import Operation

CHANNEL = "fleetgate_changes"

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

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
        """Up to ``limit`` changes after ``position``, in order (objects deleted since are
        left out, their positions too)."""
        rows = await self._pool.fetch(
            "SELECT position, kind, object_id FROM operation_change"
            " WHERE position > $1 ORDER BY position LIMIT $2",
            position,
            limit,
        )
        if not rows:
            return [], position
        last: dict[tuple[str, int], int] = {}
        for r in rows:
            last[(r["kind"], r["object_id"])] = r["position"]
        ops = [k[1] for k in last if k[0] == "operation"]
        bulks = [k[1] for k in last if k[0] == "bulk_operation"]
        found: dict[tuple[str, int], Change] = {}
        if ops:
            for row in await self._pool.fetch(
                f"{SELECT} WHERE o.id = ANY($1::bigint[])",
                ops,
            ):
                found[("operation", row["id"])] = operation_of_row(row)
        if bulks:
            for row in await self._pool.fetch(
                "SELECT * FROM bulk_operation WHERE id = ANY($1::bigint[])", bulks
            ):
                found[("bulk_operation", row["id"])] = bulk_from_row(row)
        changes = [(pos, found[key]) for key, pos in last.items() if key in found]
        changes.sort(key=lambda c: c[0])
        # The reader goes on from the last row read, even when its object is gone.
        return changes, rows[-1]["position"]

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
