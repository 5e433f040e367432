"""Wrappers that measure at the seams the composition root joins: they pass every call
through unchanged and count or time it. The services know nothing of metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from fleetgate.domain.dead_letters import DeadLetter
from fleetgate.domain.device_messages import DeviceError, StatusReport, SyncRequest
from fleetgate.metrics.registry import ServiceMetrics
from fleetgate.services.device_messages import DeadLetterStore, ReportSink
from fleetgate.services.ports import BrokerPush

T = TypeVar("T")


class TimedPush:
    """A :class:`~fleetgate.services.ports.BrokerPush` whose pushes are timed."""

    def __init__(self, inner: BrokerPush, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def push(self, lines: list[str]) -> None:
        await self._timed(self._inner.push(lines))

    async def resync(self) -> None:
        await self._timed(self._inner.resync())

    async def discard_sessions(self, device_ids: list[str]) -> list[str]:
        return await self._inner.discard_sessions(device_ids)

    async def _timed(self, call: Awaitable[None]) -> None:
        started = time.perf_counter()
        try:
            await call
        except Exception:
            self._metrics.push_failures.inc()
            raise
        self._metrics.push_seconds.observe(time.perf_counter() - started)


class CountedReports:
    """A :class:`~fleetgate.services.device_messages.ReportSink` that counts the status
    reports it applied (those not answered with an error)."""

    def __init__(self, inner: ReportSink, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def on_reports(self, reports: Sequence[StatusReport]) -> list[DeviceError]:
        errors = await self._inner.on_reports(reports)
        self._metrics.statuses_applied.inc(max(0, len(reports) - len(errors)))
        return errors

    async def on_sync(self, requests: Sequence[SyncRequest]) -> None:
        await self._inner.on_sync(requests)


class CountedDeadLetters:
    """A :class:`~fleetgate.services.device_messages.DeadLetterStore` that counts the
    refused device messages by their error code."""

    def __init__(self, inner: DeadLetterStore, metrics: ServiceMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def record(self, letters: Sequence[DeadLetter]) -> None:
        await self._inner.record(letters)
        for letter in letters:
            self._metrics.rejected.labels(letter.error).inc()


def timed_batches(
    handle: Callable[[list[T]], Awaitable[list[T]]], metrics: ServiceMetrics
) -> Callable[[list[T]], Awaitable[list[T]]]:
    """``handle`` of the device link, with each batch's size and time to apply recorded
    (a batch that fails transiently is retried and measured again)."""

    async def timed(batch: list[T]) -> list[T]:
        started = time.perf_counter()
        deferred = await handle(batch)
        metrics.batch_seconds.observe(time.perf_counter() - started)
        metrics.batch_size.observe(len(batch))
        return deferred

    return timed
