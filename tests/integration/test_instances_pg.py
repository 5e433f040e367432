"""Several service instances on one database (decision 0018), each part on a real
PostgreSQL: the change log numbers changes in commit order and every instance's feed
sees every change; an undispatched command is claimed by one instance; a device link
slot is held by one instance and orphaned when it dies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fleetgate.db.changes import PgChangeLog
from fleetgate.db.link_slots import PgLinkSlots
from fleetgate.db.operations import PgOperations
from fleetgate.db.push_order import PgPushOrder
from fleetgate.domain.operations import Report, Status
from fleetgate.services.operation_feed import FeedFilter, OperationFeed, follow

from conftest import TEST_BASE_URL
from operations_world import World, world

pytestmark = pytest.mark.integration
__all__ = ["world"]  # the fixture


@contextlib.asynccontextmanager
async def another_instance(pool: asyncpg.Pool) -> AsyncIterator[OperationFeed]:
    """A second instance's feed: its own pool, its own LISTEN, the same database."""
    feed = OperationFeed()
    task = asyncio.create_task(follow(feed, PgChangeLog(pool)))
    try:
        await asyncio.wait_for(feed.following.wait(), 30)
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_change_made_anywhere_reaches_every_feed_with_one_position(world: World) -> None:
    device = await world.device("d-1")
    async with another_instance(world.pool) as other:
        mine = world.operations.feed.watch(FeedFilter("t1"))
        theirs = other.watch(FeedFilter("t1"))
        first_mine = asyncio.ensure_future(anext(mine))
        first_theirs = asyncio.ensure_future(anext(theirs))
        await asyncio.sleep(0)
        op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
        a = await asyncio.wait_for(first_mine, 30)
        b = await asyncio.wait_for(first_theirs, 30)
        assert a[0] == b[0]  # the same event id on both
        assert a[1].id == b[1].id == int(op["id"])
        # A status committed "by the other instance" (any writer of the database).
        await world.report("d-1", op["id"], "EXECUTING")
        c = await asyncio.wait_for(anext(mine), 30)
        d = await asyncio.wait_for(anext(theirs), 30)
        assert c[0] == d[0] > a[0]
        assert c[1].status == d[1].status == Status.EXECUTING
        await mine.aclose()
        await theirs.aclose()


async def test_positions_follow_commit_order(world: World, pool: asyncpg.Pool) -> None:
    """A transaction that wrote first but commits last gets the later position: a reader
    that has seen position n never finds a change below n committed afterwards."""
    device = await world.device("d-1")
    ops = [(await world.create({"deviceId": device, "c8y_Restart": {}})).json()["id"] for _ in "ab"]
    async with pool.acquire() as slow, pool.acquire() as fast:
        slow_tx = slow.transaction()
        await slow_tx.start()
        await slow.execute("UPDATE operation SET description = 'slow' WHERE id = $1", int(ops[0]))
        await fast.execute("UPDATE operation SET description = 'fast' WHERE id = $1", int(ops[1]))
        await slow_tx.commit()
    rows = await pool.fetch("SELECT object_id FROM operation_change ORDER BY position DESC LIMIT 2")
    assert [r["object_id"] for r in rows] == [int(ops[0]), int(ops[1])]  # slow is last


async def test_bookkeeping_is_not_a_change(world: World, pool: asyncpg.Pool) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    before = await pool.fetchval("SELECT count(*) FROM operation_change")
    await pool.execute("UPDATE operation SET dispatched_at = now() WHERE id = $1", int(op["id"]))
    assert await pool.fetchval("SELECT count(*) FROM operation_change") == before


async def test_an_undispatched_command_is_claimed_by_one_instance(
    world: World, pool: asyncpg.Pool
) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    await pool.execute("UPDATE operation SET dispatched_at = NULL")  # as if its creator died
    a, b = PgOperations(pool, TEST_BASE_URL), PgOperations(pool, TEST_BASE_URL)
    async with (
        a.claim_undispatched(10, 0.0) as claimed_a,
        b.claim_undispatched(10, 0.0) as claimed_b,
    ):
        assert [o.id for o in claimed_a] == [int(op["id"])]
        assert claimed_b == []  # skipped while the first holds it
    async with b.claim_undispatched(10, 0.0) as again:
        assert again == []  # marked dispatched when the first block ended
    # Too young: the instance that created it is still sending it.
    await pool.execute("UPDATE operation SET dispatched_at = NULL")
    async with a.claim_undispatched(10, 3600.0) as young:
        assert young == []


async def test_a_moved_back_status_is_refused_across_writers(world: World) -> None:
    """Two instances applying reports of one operation: whatever the order, it never
    moves back (row lock + transition table)."""
    device = await world.device("d-1")
    op = int((await world.create({"deviceId": device, "c8y_Restart": {}})).json()["id"])
    store_a, store_b = (PgOperations(world.pool, TEST_BASE_URL) for _ in "ab")
    done = Report(op, Status.SUCCESSFUL, None, serial="d-1")
    late = Report(op, Status.EXECUTING, None, serial="d-1")
    await asyncio.gather(store_a.apply([done]), store_b.apply([late]))
    assert (await world.op(str(op)))["status"] == "SUCCESSFUL"


async def test_a_slot_is_held_by_one_instance_and_orphaned_when_it_dies(
    database_url: str,
) -> None:
    one, two = PgLinkSlots(database_url, "fg:t"), PgLinkSlots(database_url, "fg:t")
    async with one.claim() as first:
        async with two.claim() as second:
            assert (first.client_id, second.client_id) == ("fg:t", "fg:t:1")
            async with one.adopt() as orphan:
                assert orphan is None  # both alive
        # The second's connection ended (as when its process is killed): its slot is
        # orphaned, and adopted by whoever looks first.
        async with one.adopt() as orphan:
            assert orphan is not None
            assert orphan.client_id == "fg:t:1"
        async with one.adopt() as orphan:
            assert orphan is None  # drained and forgotten
        async with two.claim() as again:
            assert again.client_id == "fg:t:1"  # the lowest free one


async def test_a_whole_state_push_waits_for_no_change_and_changes_wait_for_it(
    pool: asyncpg.Pool,
) -> None:
    """Two instances' pushes: a change's push waits while a whole state is being read
    and pushed; changes do not wait for each other."""
    one, other = PgPushOrder(pool), PgPushOrder(pool)
    async with one.change(), other.change():
        pass  # two changes at once: neither waits
    order: list[str] = []
    async with one.whole_state():
        pushing = asyncio.create_task(_push(other, order))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pushing), 0.5)
        order.append("whole state pushed")
    await asyncio.wait_for(pushing, 30)
    assert order == ["whole state pushed", "change pushed"]


async def _push(order_of: PgPushOrder, order: list[str]) -> None:
    async with order_of.change():
        order.append("change pushed")
