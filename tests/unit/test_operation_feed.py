"""The live feed of operation changes: fan-out, overflow, resuming after a reconnect.
The changes' positions (their ids in the database's change log) are the operation ids
here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain.operations import Operation, Status
from fleetgate.services.operation_feed import follow
from fleetgate.services.operations import FeedFilter, FeedOverflow, OperationFeed

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def change(op_id: int, device: int = 1, status: Status = Status.PENDING) -> Operation:
    return Operation(
        id=op_id,
        tenant_id="t1",
        device_id=device,
        serial=f"d-{device}",
        device_name=None,
        fragment_type="c8y_Restart",
        status=status,
        failure_reason=None,
        description=None,
        fragments={"c8y_Restart": {}},
        bulk_operation_id=None,
        creation_time=T0,
        status_time=T0,
    )


def deliver(feed: OperationFeed, changed: list[Operation]) -> None:
    """As ``follow`` hands the feed what it read from the log."""
    feed.deliver([(op.id, op) for op in changed], max(op.id for op in changed))
    feed.following.set()


async def take(changes: AsyncGenerator[tuple[int, Operation]], count: int) -> list[tuple[int, int]]:
    """(sequence, operation id) of the next ``count`` changes."""
    got = []
    for _ in range(count):
        sequence, op = await asyncio.wait_for(anext(changes), 1)
        got.append((sequence, op.id))
    return got


async def test_a_watcher_sees_matching_changes_from_now_on() -> None:
    feed = OperationFeed()
    deliver(feed, [change(1)])
    changes = feed.watch(FeedFilter("t1", device_id=2))
    pending = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)  # subscribed
    deliver(feed, [change(2, device=1), change(3, device=2)])
    assert (await pending)[0] == 3
    await changes.aclose()
    assert feed.watchers == 0


async def test_a_resumed_watcher_gets_what_it_missed_then_the_live_changes() -> None:
    feed = OperationFeed()
    deliver(feed, [change(1), change(2, device=2), change(3)])
    after = feed.resume_point(feed.event_id(1))
    assert after == 1
    changes = feed.watch(FeedFilter("t1", device_id=1), after=after)
    assert await take(changes, 1) == [(3, 3)]  # op 2 is another device's
    deliver(feed, [change(4)])
    assert await take(changes, 1) == [(4, 4)]
    await changes.aclose()


@pytest.mark.parametrize(
    "last_event_id",
    ["other-3", "", "x-y", "-1", "3" * 40],
)
def test_ids_that_are_not_this_feeds_cannot_be_resumed(last_event_id: str) -> None:
    feed = OperationFeed()
    deliver(feed, [change(1), change(2), change(3)])
    assert feed.resume_point(last_event_id) is None


def test_an_id_older_than_the_history_cannot_be_resumed() -> None:
    feed = OperationFeed(history=2)
    deliver(feed, [change(i) for i in range(1, 6)])  # keeps 4 and 5
    assert feed.resume_point(feed.event_id(2)) is None  # 3 is gone
    assert feed.resume_point(feed.event_id(3)) == 3
    assert feed.resume_point(feed.event_id(5)) == 5  # nothing missed
    # Not yet following the database's log: nothing can be resumed yet.
    assert OperationFeed().resume_point(feed.event_id(3)) is None


async def test_an_id_ahead_of_this_instance_resumes_without_repeating() -> None:
    """Another instance read further already: the changes up to its id are not repeated
    here when they arrive."""
    feed = OperationFeed()
    deliver(feed, [change(1)])
    assert feed.resume_point("3") == 3
    changes = feed.watch(FeedFilter("t1"), after=3)
    deliver(feed, [change(2), change(3), change(4)])
    assert await take(changes, 1) == [(4, 4)]
    await changes.aclose()


def test_a_change_read_twice_is_delivered_once() -> None:
    feed = OperationFeed()
    deliver(feed, [change(1), change(2)])
    deliver(feed, [change(2), change(3)])  # read again after a reconnect
    assert feed.position == 3


async def test_a_replay_larger_than_the_queue_overflows() -> None:
    feed = OperationFeed(queue_size=3, history=10)
    deliver(feed, [change(i) for i in range(1, 8)])
    changes = feed.watch(FeedFilter("t1"), after=0)
    with pytest.raises(FeedOverflow):
        await take(changes, 7)


@given(
    devices=st.lists(st.integers(1, 3), min_size=1, max_size=30),
    seen=st.integers(0, 30),
    history=st.integers(1, 40),
)
def test_resuming_never_loses_nor_repeats_a_change(
    devices: list[int], seen: int, history: int
) -> None:
    async def run() -> None:
        feed = OperationFeed(history=history)
        deliver(feed, [change(i + 1, device=d) for i, d in enumerate(devices)])
        after = feed.resume_point(feed.event_id(min(seen, len(devices))))
        missed = [
            i + 1 for i, d in enumerate(devices) if i + 1 > min(seen, len(devices)) and d == 1
        ]
        if after is None:
            assert min(seen, len(devices)) + history < len(devices)  # history too short
            return
        changes = feed.watch(FeedFilter("t1", device_id=1), after=after)
        got = await take(changes, len(missed))
        deliver(feed, [change(100)])
        got += await take(changes, 1)
        await changes.aclose()
        assert [op_id for _, op_id in got] == [*missed, 100]

    asyncio.run(run())


class FakeLog:
    """A change log in memory: ``commit`` appends; a listening connection can be cut."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, Operation]] = []
        self.listens = 0
        self._wake = asyncio.Event()
        self._cut = False

    def commit(self, op: Operation) -> None:
        self.changes.append((len(self.changes) + 1, op))
        self._wake.set()

    def cut(self) -> None:
        self._cut = True
        self._wake.set()

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[FakeLog]:
        self.listens += 1
        self._cut = False
        yield self

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self._cut:
            raise ConnectionError("cut")

    async def last(self, count: int) -> tuple[list[tuple[int, Operation]], int]:
        kept = self.changes[-count:]
        return kept, len(self.changes)

    async def after(self, position: int, limit: int) -> tuple[list[tuple[int, Operation]], int]:
        found = self.changes[position : position + limit]
        return found, found[-1][0] if found else position


async def test_the_feed_follows_the_log_across_a_lost_connection() -> None:
    log = FakeLog()
    log.commit(change(1))  # before this instance started: history, resumable
    feed = OperationFeed()
    following = asyncio.create_task(follow(feed, log, retry_max=0.01))
    await asyncio.wait_for(feed.following.wait(), 5)
    assert feed.resume_point("0") == 0
    watcher = feed.watch(FeedFilter("t1"), after=0)
    assert await take(watcher, 1) == [(1, 1)]
    log.commit(change(2))
    assert await take(watcher, 1) == [(2, 2)]
    log.cut()
    log.commit(change(3))  # committed while nobody listened: read after reconnecting
    assert await take(watcher, 1) == [(3, 3)]
    assert log.listens >= 2
    following.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await following
    await watcher.aclose()
