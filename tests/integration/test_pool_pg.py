"""The service's connection pool: a reset only where session state was taken."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fleetgate.db.pool import create_pool, holds_session_state

pytestmark = pytest.mark.integration

LOCK = 7_340_033


@pytest.fixture
async def one_connection(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The service's pool with one connection: every acquire gets the same one back."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        yield pool
    finally:
        await pool.close()


async def other_session_can_lock(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK))
        if taken:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
        return taken
    finally:
        await conn.close()


async def test_a_marked_connection_gives_back_its_advisory_lock(
    one_connection: asyncpg.Pool, database_url: str
) -> None:
    async with one_connection.acquire() as conn:
        holds_session_state(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK)  # and never unlocks
    assert await other_session_can_lock(database_url)


async def test_an_unmarked_connection_is_not_reset(one_connection: asyncpg.Pool) -> None:
    # The round trip that is saved: session settings of an unmarked connection stay
    # (fleetgate takes none; this shows that no reset query ran).
    async with one_connection.acquire() as conn:
        await conn.execute("SET application_name = 'left-behind'")
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SHOW application_name") == "left-behind"
        holds_session_state(conn)
    async with one_connection.acquire() as conn:
        assert await conn.fetchval("SHOW application_name") == ""


async def test_an_open_transaction_is_rolled_back_either_way(
    one_connection: asyncpg.Pool,
) -> None:
    async with one_connection.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("INSERT INTO tenant (id) VALUES ('never-committed')")
    async with one_connection.acquire() as conn:
        assert not conn.is_in_transaction()
        count = await conn.fetchval("SELECT count(*) FROM tenant WHERE id = 'never-committed'")
        assert count == 0
