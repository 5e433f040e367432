"""The live feed of operation changes: every change committed by any service instance,
fanned out to the watchers of this process (the SSE stream of
``/devicecontrol/operations/stream``, ``fleetgate ops watch``). Bulk operations' changes
(progress, status, pause) travel on it too.

The changes come from the database's change log (:func:`follow`): numbered in commit
order there, woken by LISTEN/NOTIFY, the same numbers on every instance — so an event id
of one instance resumes on another (decision 0018)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.ids import is_ascii_digits
from fleetgate.domain.operations import Operation, Status

log = logging.getLogger(__name__)

#: What the feed carries: an operation as it changed, or a bulk operation's new state.
Change = Operation | BulkOperation
#: Changes in order (position, object) and the position the next read starts after.
ChangeBatch = tuple[list[tuple[int, Change]], int]
#: Changes read per query.
_READ = 1000
#: Seconds between reads when no notification comes (a missed one costs at most this).
_POLL = 1.0


@dataclass(frozen=True, slots=True)
class FeedFilter:
    tenant_id: str
    device_id: int | None = None
    bulk_operation_id: int | None = None
    statuses: frozenset[Status] = frozenset()

    def matches(self, op: Change) -> bool:
        if isinstance(op, BulkOperation):
            # a bulk operation's change, for watchers of all operations or of its own
            return (
                op.tenant_id == self.tenant_id
                and self.device_id is None
                and self.bulk_operation_id in (None, op.id)
            )
        return (
            op.tenant_id == self.tenant_id
            and (self.device_id is None or op.device_id == self.device_id)
            and (self.bulk_operation_id is None or op.bulk_operation_id == self.bulk_operation_id)
            and (not self.statuses or op.status in self.statuses)
        )


class FeedOverflow(Exception):
    """A watcher fell too far behind; it must reconnect (and reload the list)."""


class Wakeups(Protocol):
    async def wait(self, timeout: float) -> None:
        """Until the log has news (or ``timeout``); raises ``ConnectionError`` once the
        news can no longer arrive."""


class ChangeLog(Protocol):
    """The database's log of committed changes (``fleetgate.db.changes``)."""

    def listening(self) -> AbstractAsyncContextManager[Wakeups]: ...

    async def last(self, count: int) -> ChangeBatch:
        """The last ``count`` changes."""

    async def after(self, position: int, limit: int) -> ChangeBatch:
        """Up to ``limit`` changes after ``position``."""


class OperationFeed:
    """Operation changes, fanned out to live watchers (in this process).

    Each watcher has a bounded queue; one that cannot keep up is dropped with
    :class:`FeedOverflow` instead of slowing down the service or growing without bound.
    The last ``history`` changes are kept, so that a watcher that reconnects with the id
    of the last change it saw gets what it missed (SSE's ``Last-Event-ID``). An id is the
    change's position in the database's log: the same on every instance.
    """

    def __init__(self, queue_size: int = 10_000, *, history: int = 10_000) -> None:
        self._queue_size = queue_size
        self._watchers: dict[int, tuple[FeedFilter, asyncio.Queue[tuple[int, Change] | None]]] = {}
        self._next_watcher = 0
        self._sequence = 0
        self._history: deque[tuple[int, Change]] = deque(maxlen=history)
        #: Set once the history is loaded: only then can an id be resumed.
        self.following = asyncio.Event()

    @property
    def history_size(self) -> int:
        return self._history.maxlen or 0

    def deliver(self, changed: Iterable[tuple[int, Change]], position: int) -> None:
        """Hand the watchers the changes read from the log (in order), up to ``position``."""
        for sequence, op in changed:
            if sequence <= self._sequence:
                continue  # read twice (after a reconnect)
            self._history.append((sequence, op))
            for key, (flt, queue) in list(self._watchers.items()):
                if flt.matches(op):
                    self._offer(key, queue, (sequence, op))
        self._sequence = max(self._sequence, position)

    @property
    def position(self) -> int:
        """The position of the last change delivered."""
        return self._sequence

    def _offer(
        self,
        key: int,
        queue: asyncio.Queue[tuple[int, Change] | None],
        item: tuple[int, Change],
    ) -> None:
        if key not in self._watchers:
            return  # dropped already
        if queue.qsize() >= self._queue_size - 1:
            queue.put_nowait(None)  # the overflow marker
            del self._watchers[key]
        else:
            queue.put_nowait(item)

    def event_id(self, sequence: int) -> str:
        """The SSE id of change ``sequence``: its position in the database's log."""
        return str(sequence)

    def resume_point(self, last_event_id: str) -> int | None:
        """The position after which a watcher that last saw ``last_event_id`` continues;
        None when the changes since are not all at hand (older than the history, or not
        an id of ours). An id ahead of this instance (another one has read further) is
        fine: what follows it arrives."""
        number = last_event_id.strip()
        if not self.following.is_set() or not is_ascii_digits(number) or len(number) > 18:
            return None
        after = int(number)
        oldest = self._history[0][0] if self._history else self._sequence + 1
        if after + 1 < oldest and len(self._history) == self._history.maxlen:
            return None
        return after

    async def watch(
        self, flt: FeedFilter, *, after: int | None = None
    ) -> AsyncGenerator[tuple[int, Change]]:
        """(sequence number, operation) of every matching change from now on; with
        ``after`` (see :meth:`resume_point`), first those after that one."""
        queue: asyncio.Queue[tuple[int, Change] | None] = asyncio.Queue()
        key = self._next_watcher
        self._next_watcher += 1
        self._watchers[key] = (flt, queue)
        if after is not None:  # no await between registering and replaying: no gap
            for sequence, op in self._history:
                if sequence > after and flt.matches(op):
                    self._offer(key, queue, (sequence, op))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    raise FeedOverflow("the watcher fell behind by more than its queue")
                if after is not None and item[0] <= after:
                    continue  # seen on the instance the watcher came from
                yield item
        finally:
            self._watchers.pop(key, None)

    @property
    def watchers(self) -> int:
        return len(self._watchers)


async def follow(feed: OperationFeed, changes: ChangeLog, *, retry_max: float = 10.0) -> None:
    """Deliver the log's changes to ``feed`` until cancelled: first the last
    ``history`` ones (so that ids from before this process resume), then each batch
    committed since, woken by the database's notifications. A lost connection is
    reconnected (with a growing, jittered pause); nothing is missed: reading starts after
    the last position delivered, and listening starts before reading."""
    delay = 0.5
    while True:
        try:
            async with changes.listening() as wakeups:
                if not feed.following.is_set():
                    loaded, position = await changes.last(feed.history_size)
                    feed.deliver(loaded, position)
                    feed.following.set()
                delay = 0.5
                while True:
                    before = feed.position
                    batch, position = await changes.after(before, _READ)
                    feed.deliver(batch, position)
                    if position == before:
                        await wakeups.wait(_POLL)
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.warning("the operation feed lost the database (%s); retrying", exc)
        except Exception as exc:  # the database refused: logged, retried
            log.warning("the operation feed could not read the database: %s", exc)
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 — jitter only
        delay = min(delay * 2, retry_max)
