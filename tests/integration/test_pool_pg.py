"""The service's connection pool: a reset only where session state was taken."""

from __future__ import annotations

import asyncpg
import pytest

from fleetgate.db.pool import create_pool, holds_session_state

pytestmark = pytest.mark.integration

LOCK = 7_340_033


async def other_session_can_lock(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        taken = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK))
        if taken:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
        return taken
    finally:
        await conn.close()


async def test_a_marked_connection_gives_back_its_advisory_lock(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            holds_session_state(conn)
            await conn.execute("SELECT pg_advisory_lock($1)", LOCK)  # and never unlocks
        assert await other_session_can_lock(database_url)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == ""
    finally:
        await pool.close()


async def test_an_unmarked_connection_is_not_reset(database_url: str) -> None:
    # The round trip that is saved: session settings of an unmarked connection stay
    # (fleetgate takes none; this shows that no reset query ran).
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "left-behind"
            holds_session_state(conn)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == ""
    finally:
        await pool.close()


async def test_an_open_transaction_is_rolled_back_either_way(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await conn.execute("INSERT INTO tenant (id) VALUES ('never-committed')")
        async with pool.acquire() as conn:  # the same connection: max_size=1
            assert not conn.is_in_transaction()
            assert (
                await conn.fetchval("SELECT count(*) FROM tenant WHERE id = 'never-committed'") == 0
            )
    finally:
        await pool.close()
