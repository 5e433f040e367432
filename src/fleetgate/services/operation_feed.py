"""The live feed of operation changes: every change, fanned out to the watchers of this
process (the SSE stream of ``/devicecontrol/operations/stream``, ``fleetgate ops watch``).
Bulk operations' changes (progress, status, pause) travel on it too."""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

from fleetgate.domain.bulk_operations import BulkOperation
from fleetgate.domain.ids import is_ascii_digits
from fleetgate.domain.operations import Operation, Status

#: What the feed carries: an operation as it changed, or a bulk operation's new state.
Change = Operation | BulkOperation


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


class OperationFeed:
    """Operation changes, fanned out to live watchers (in this process).

    Each watcher has a bounded queue; one that cannot keep up is dropped with
    :class:`FeedOverflow` instead of slowing down the service or growing without bound.
    The last ``history`` changes are kept, so that a watcher that reconnects with the id
    of the last change it saw gets what it missed (SSE's ``Last-Event-ID``). Ids carry
    this feed's *epoch*, made at start: an id of an earlier process cannot be resumed.
    """

    def __init__(self, queue_size: int = 10_000, *, history: int = 10_000) -> None:
        self._queue_size = queue_size
        self._watchers: dict[int, tuple[FeedFilter, asyncio.Queue[tuple[int, Change] | None]]] = {}
        self._next_watcher = 0
        self._sequence = 0
        self._history: deque[tuple[int, Change]] = deque(maxlen=history)
        self.epoch = secrets.token_hex(4)

    def publish(self, changed: Iterable[Change]) -> None:
        for op in changed:
            self._sequence += 1
            self._history.append((self._sequence, op))
            for key, (flt, queue) in list(self._watchers.items()):
                if flt.matches(op):
                    self._offer(key, queue, (self._sequence, op))

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
        """The SSE id of change ``sequence``."""
        return f"{self.epoch}-{sequence}"

    def resume_point(self, last_event_id: str) -> int | None:
        """The sequence number after which a watcher that last saw ``last_event_id``
        continues; None when the changes since are not all at hand (another process's
        id, one older than the history, or not an id of ours)."""
        epoch, _, number = last_event_id.strip().rpartition("-")
        if epoch != self.epoch or not is_ascii_digits(number):
            return None
        after = int(number)
        oldest = self._history[0][0] if self._history else self._sequence + 1
        if after > self._sequence or after + 1 < oldest:
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
                yield item
        finally:
            self._watchers.pop(key, None)

    @property
    def watchers(self) -> int:
        return len(self._watchers)
