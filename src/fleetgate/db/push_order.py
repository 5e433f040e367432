"""The order of the broker plugin's state pushes across service instances (decision 0018).

Every instance's broker bridge pushes changes (single control lines, after their commit)
and, at each of its connects, the plugin's whole state (``reset`` + everything, read from
the database). A whole state read before another instance committed a change and
published after that instance pushed it would put the older state back. So a whole-state
push holds a PostgreSQL advisory lock *exclusively* from before it reads until the
plugin has it, and a change's push holds the same lock *shared* while it publishes:
a change committed during a whole-state push is pushed after it (and one committed
before it is in it; pushing it again is harmless: control lines are idempotent).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from fleetgate.db.pool import holds_session_state

#: The lock's key ('fgpu').
_KEY = 0x66677075


class PgPushOrder:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def whole_state(self) -> AsyncIterator[None]:
        """Held while the whole state is read and pushed: no change is pushed meanwhile."""
        async with self._held("pg_advisory_lock", "pg_advisory_unlock"):
            yield

    @contextlib.asynccontextmanager
    async def change(self) -> AsyncIterator[None]:
        """Held while a change is pushed (changes do not wait for each other)."""
        async with self._held("pg_advisory_lock_shared", "pg_advisory_unlock_shared"):
            yield

    @contextlib.asynccontextmanager
    async def _held(self, lock: str, unlock: str) -> AsyncIterator[None]:
        async with self._pool.acquire() as conn:
            holds_session_state(conn)  # reset fully when it goes back, lock or not
            await conn.execute(f"SELECT {lock}($1)", _KEY)
            try:
                yield
            finally:
                if not conn.is_closed():
                    await conn.execute(f"SELECT {unlock}($1)", _KEY)
