"""Shared reads and grouped writes: fewer round trips, never an answer older than the ask."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.services.coalescing import GroupedWrites, SharedReads


class Row:
    """A value that changes, read by a query that takes as long as the test lets it."""

    def __init__(self) -> None:
        self.value = 0
        self.gates: list[asyncio.Event] = []
        self.fail: Exception | None = None

    async def read(self, key: str) -> tuple[str, int]:
        gate = asyncio.Event()
        self.gates.append(gate)
        started = self.value  # what the query sees: the state when it began
        failure = self.fail
        await gate.wait()
        if failure is not None:
            raise failure
        return key, started

    def finish_one(self) -> None:
        self.gates.pop(0).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_caller_never_gets_a_read_that_began_before_it_asked() -> None:
    row = Row()
    reads = SharedReads(row.read)
    first = asyncio.create_task(reads.get("k"))
    await settle()
    row.value = 1  # committed while the first read is in flight
    later = [asyncio.create_task(reads.get("k")) for _ in range(3)]
    await settle()
    assert len(row.gates) == 1  # the later ones wait for the next read …
    row.finish_one()
    assert await first == ("k", 0)
    await settle()
    assert len(row.gates) == 1  # … which they share, and which began after they asked
    row.finish_one()
    assert [await t for t in later] == [("k", 1)] * 3
    assert reads.reads == 2


async def test_different_keys_are_read_apart() -> None:
    row = Row()
    reads = SharedReads(row.read)
    tasks = [asyncio.create_task(reads.get(k)) for k in ("a", "b", "a")]
    await settle()
    assert len(row.gates) == 2  # "a" and "b" at once; the second "a" waits for the next
    row.finish_one()
    row.finish_one()
    await settle()
    row.finish_one()
    assert [await t for t in tasks] == [("a", 0), ("b", 0), ("a", 0)]
    assert reads.reads == 3


async def test_an_error_reaches_every_caller_of_that_read_only() -> None:
    row = Row()
    reads = SharedReads(row.read)
    row.fail = ConnectionError("database away")
    first = asyncio.create_task(reads.get("k"))
    await settle()
    row.fail = None
    queued = [asyncio.create_task(reads.get("k")) for _ in range(2)]
    await settle()
    row.finish_one()
    with pytest.raises(ConnectionError):
        await first
    await settle()
    row.finish_one()
    assert [await t for t in queued] == [("k", 0)] * 2
    # The first caller's read fails; the second's, begun after it, does not:
    row.fail = ConnectionError("again")
    both = [asyncio.create_task(reads.get("k")) for _ in range(2)]
    await settle()
    row.fail = None
    row.finish_one()
    await settle()
    row.finish_one()
    results = await asyncio.gather(*both, return_exceptions=True)
    assert isinstance(results[0], ConnectionError)
    assert results[1] == ("k", 0)  # it joined the next read, begun after the failure's


async def test_a_cancelled_caller_leaves_the_read_to_the_others() -> None:
    row = Row()
    reads = SharedReads(row.read)
    first = asyncio.create_task(reads.get("k"))
    await settle()
    queued = [asyncio.create_task(reads.get("k")) for _ in range(2)]
    await settle()
    first.cancel()
    queued[0].cancel()
    await settle()
    row.finish_one()
    await settle()
    row.finish_one()
    assert await queued[1] == ("k", 0)
    assert first.cancelled()
    assert queued[0].cancelled()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["ask", "change", "finish"]), max_size=40))
def test_every_answer_is_at_least_as_new_as_the_ask(steps: list[str]) -> None:
    async def run() -> None:
        row = Row()
        reads = SharedReads(row.read)
        asked: list[tuple[int, asyncio.Task[tuple[str, int]]]] = []
        for step in steps:
            if step == "ask":
                asked.append((row.value, asyncio.create_task(reads.get("k"))))
            elif step == "change":
                row.value += 1
            elif row.gates:
                row.finish_one()
            await settle()
        while row.gates:
            row.finish_one()
            await settle()
        for value_when_asked, task in asked:
            _, seen = await task
            assert seen >= value_when_asked
        assert reads.reads <= len(asked)

    asyncio.run(run())


class Log:
    def __init__(self) -> None:
        self.written: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.fail: Exception | None = None

    async def write(self, items: Sequence[int]) -> None:
        gate = asyncio.Event()
        self.gates.append(gate)
        failure = self.fail
        await gate.wait()
        if failure is not None:
            raise failure
        self.written.append(list(items))


async def test_items_added_while_a_write_is_in_flight_go_together_in_the_next() -> None:
    log = Log()
    writes = GroupedWrites(log.write)
    first = asyncio.create_task(writes.add(1))
    await settle()
    rest = [asyncio.create_task(writes.add(i)) for i in (2, 3, 4)]
    await settle()
    assert len(log.gates) == 1
    log.gates.pop(0).set()
    await first
    assert log.written == [[1]]
    assert not any(t.done() for t in rest)  # not written yet: not returned yet
    await settle()
    log.gates.pop(0).set()
    await asyncio.gather(*rest)
    assert log.written == [[1], [2, 3, 4]]
    assert writes.writes == 2


async def test_a_failed_write_fails_its_own_callers_only() -> None:
    log = Log()
    writes = GroupedWrites(log.write)
    log.fail = ConnectionError("database away")
    first = asyncio.create_task(writes.add(1))
    await settle()
    log.fail = None
    second = asyncio.create_task(writes.add(2))
    await settle()
    log.gates.pop(0).set()
    with pytest.raises(ConnectionError):
        await first
    await settle()
    log.gates.pop(0).set()
    await second
    assert log.written == [[2]]
