"""Server-Sent Events of the operation feed: a watcher's place in the feed and the response
that gives it back however the stream ends (the REST stream and the console's use both)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from fleetgate.services.operation_feed import Change


class Subscription:
    """A watcher's place in the feed. The next change is always awaited in a task of its
    own, so that waiting can time out for a keep-alive without ending the feed's
    generator (a timeout that cancelled ``anext`` itself would end it)."""

    def __init__(self, changes: AsyncGenerator[tuple[int, Change]]) -> None:
        self._changes = changes
        self._next = asyncio.ensure_future(anext(changes))
        self._closing: asyncio.Future[None] | None = None

    async def next(self, timeout: float) -> tuple[int, Change] | None:
        """The next change, or None when none came within ``timeout`` seconds; raises
        :class:`FeedOverflow` when the watcher fell behind."""
        done, _ = await asyncio.wait({self._next}, timeout=timeout)
        if not done:
            return None
        change = self._next.result()
        self._next = asyncio.ensure_future(anext(self._changes))
        return change

    def close(self) -> None:
        """Give the place back, without waiting.

        The generator is ended by whoever runs it: a pending ``anext`` is cancelled, and
        the cancellation ends the generator inside that task (its ``finally``
        unsubscribes). Closing it from here instead, while that task still runs it, is
        what failed with "aclose(): asynchronous generator is already running" at every
        disconnect. Nothing here awaits: the request of a client that left is being
        cancelled, and an await would be interrupted.
        """
        if not self._next.done():
            self._next.cancel()
        elif not self._next.cancelled() and self._next.exception() is None:
            # A change was taken but not sent: the generator waits at its yield.
            self._closing = asyncio.ensure_future(self._changes.aclose())


class EventStream(StreamingResponse):
    """The SSE response; it gives its subscription back however it ends: the stream is
    over, the client left, or the request was cancelled before the first event."""

    def __init__(self, events: AsyncIterator[bytes], subscription: Subscription) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._subscription.close()
