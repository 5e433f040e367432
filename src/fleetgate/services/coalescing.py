"""Concurrent requests share round trips to PostgreSQL without seeing anything older.

Reads: concurrent reads of the same row share one query — one that started after each
caller asked (:class:`SharedReads`). Writes: small writes of many requests made while one
is in flight go together in the next statement (:class:`GroupedWrites`).

The REST API's hot reads are the same few rows again and again: the operator's user row on
every authenticated request, the firmware binary every POST checks and every device
downloads. Under load many such reads of one key are in flight at once, each a round trip
to PostgreSQL (most of the service's CPU per request is in those round trips, see
bench/README.md). :class:`SharedReads` lets them share one query without ever answering
from the past:

- no read of a key in flight: the caller's starts now;
- one in flight: it started *before* the caller asked, so the caller may not use it (a
  change committed in between — a disabled user, a deleted file — must be seen); the caller
  joins the *next* read of that key, which starts as soon as the current one ends and is
  shared by everyone who asked meanwhile.

So every caller gets a result read after it asked — what a query of its own would give it —
at most one read of a key is in flight, and at most one waits: under load a key costs one
round trip per round trip's time instead of one per request. Nothing is kept once read.

:class:`GroupedWrites` is the same for writes whose items a statement can take as a list
(``UPDATE … WHERE id = ANY($1)``): the first item is written at once; items added while
a write is in flight go together in the next one; each caller returns once its own item
is written (or gets that write's error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class SharedReads(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        #: The read of each key in flight.
        self._running: dict[K, asyncio.Future[V]] = {}
        #: For each key read now: the result of the next read, for those who asked since.
        self._queued: dict[K, asyncio.Future[V]] = {}
        #: Reads made so far (for tests and the curious).
        self.reads = 0

    async def get(self, key: K) -> V:
        """``read(key)``, made after this call began (shared with callers alike)."""
        if key not in self._running:
            shared = self._start(key, None)
        elif key in self._queued:
            shared = self._queued[key]
        else:
            shared = self._queued[key] = asyncio.get_running_loop().create_future()
        # A caller that is cancelled leaves the read to the others.
        return await asyncio.shield(shared)

    def _start(self, key: K, into: asyncio.Future[V] | None) -> asyncio.Future[V]:
        self.reads += 1
        running = asyncio.ensure_future(self._read(key))
        self._running[key] = running
        running.add_done_callback(lambda done: self._finished(key, done, into))
        return running

    def _finished(self, key: K, done: asyncio.Future[V], into: asyncio.Future[V] | None) -> None:
        del self._running[key]
        _pass_on(done, into)
        queued = self._queued.pop(key, None)
        if queued is not None:
            self._start(key, queued)


class GroupedWrites(Generic[T]):
    def __init__(self, write: Callable[[Sequence[T]], Awaitable[object]]) -> None:
        self._write = write
        self._running: asyncio.Future[object] | None = None
        #: Items waiting for the write in flight to end, and their shared result.
        self._queued: list[T] = []
        self._next: asyncio.Future[object] | None = None
        #: Writes made so far (for tests and the curious).
        self.writes = 0

    async def add(self, item: T) -> None:
        """Write ``item`` (with whatever others are waiting); returns once written."""
        if self._running is None:
            shared = self._start([item], None)
        else:
            self._queued.append(item)
            if self._next is None:
                self._next = asyncio.get_running_loop().create_future()
            shared = self._next
        await asyncio.shield(shared)

    def _start(self, items: list[T], into: asyncio.Future[object] | None) -> asyncio.Future[object]:
        self.writes += 1
        running = asyncio.ensure_future(self._write(items))
        self._running = running
        running.add_done_callback(lambda done: self._finished(done, into))
        return running

    def _finished(self, done: asyncio.Future[object], into: asyncio.Future[object] | None) -> None:
        self._running = None
        _pass_on(done, into)
        if self._next is not None:
            items, self._queued = self._queued, []
            queued, self._next = self._next, None
            self._start(items, queued)


def _pass_on(done: asyncio.Future[V], into: asyncio.Future[V] | None) -> None:
    """``done``'s outcome into ``into`` (the waiters of a queued run)."""
    if into is not None and not into.done():
        if done.cancelled():
            into.cancel()
        elif (error := done.exception()) is not None:
            into.set_exception(error)
        else:
            into.set_result(done.result())
    elif not done.cancelled():
        done.exception()  # its callers have it; no "never retrieved" warning if none is left
