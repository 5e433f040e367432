"""Tracing on fakes (docs/decisions/0016): starting tells the broker, only running traces
record, a trace ends at its expiry even before the sweep, the sweep tells the broker once
whichever instance runs it, and the service's outcomes are noted for traced devices only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from fleetgate.domain import broker_control as control
from fleetgate.domain import broker_trace as bt
from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.traces import MAX_ENTRIES, EntryKind, Trace, TraceEntry
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.traces import Tracing

from fakes import (
    FakeChildren,
    FakeDeadLetters,
    FakeOperations,
    RecordingBroker,
    RecordingPublisher,
    unavailable,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Kept:
    id: int
    at: datetime
    entry: TraceEntry


class InMemoryTraces:
    """The TraceStore, with the database's rules: entries only while a trace runs, the
    newest MAX_ENTRIES kept, an expired trace deleted once."""

    def __init__(self, clock: Clock, devices: dict[int, str]) -> None:
        self.clock = clock
        self.devices = devices
        self.traces: dict[int, Trace] = {}
        self.kept: list[Kept] = []

    async def device_of(self, tenant_id: str, object_id: int) -> str | None:
        return self.devices.get(object_id)

    async def start(
        self, tenant_id: str, object_id: int, device_id: str, by: str, duration: timedelta
    ) -> Trace:
        now = self.clock()
        trace = Trace(tenant_id, object_id, device_id, by, now, now + duration)
        self.traces[object_id] = trace
        return trace

    def _running(self) -> list[Trace]:
        return [t for t in self.traces.values() if t.running(self.clock())]

    async def get(self, tenant_id: str, object_id: int) -> Trace | None:
        trace = self.traces.get(object_id)
        return trace if trace is not None and trace.running(self.clock()) else None

    async def stop(self, tenant_id: str, object_id: int) -> Trace | None:
        trace = self.traces.pop(object_id, None)
        if trace is not None:
            self.kept = [k for k in self.kept if k.entry.device_id != trace.device_id]
        return trace

    async def running(self) -> dict[str, datetime]:
        return {t.device_id: t.expires_at for t in self._running()}

    async def expire(self) -> list[str]:
        ended = [t for t in self.traces.values() if not t.running(self.clock())]
        for trace in ended:
            await self.stop(trace.tenant_id, trace.managed_object_id)
        return [t.device_id for t in ended]

    async def record(self, entries: Sequence[TraceEntry]) -> None:
        running = {t.device_id for t in self._running()}
        for entry in entries:
            if entry.device_id in running:
                self.kept.append(Kept(len(self.kept) + 1, self.clock(), entry))
        for device_id in running:
            mine = [k for k in self.kept if k.entry.device_id == device_id]
            for old in mine[: max(0, len(mine) - MAX_ENTRIES)]:
                self.kept.remove(old)

    async def entries(
        self, device_id: str, *, after: int = 0, limit: int = MAX_ENTRIES
    ) -> list[Kept]:
        mine = [k for k in self.kept if k.entry.device_id == device_id and k.id > after]
        return sorted(mine, key=lambda k: k.id, reverse=True)[:limit]


def make() -> tuple[Tracing, InMemoryTraces, RecordingBroker, Clock]:
    clock = Clock()
    store = InMemoryTraces(clock, {7: "dev-7", 8: "dev-8"})
    broker = RecordingBroker()
    return Tracing(store, broker, is_transient=unavailable, clock=clock), store, broker, clock


async def test_starting_a_trace_tells_the_broker_and_records_from_then_on() -> None:
    tracing, _, broker, _ = make()
    trace = await tracing.start("t1", 7, "admin", 60)
    assert trace.expires_at - trace.started_at == timedelta(seconds=60)
    assert broker.lines == [control.trace("dev-7", True)]
    assert tracing.is_traced("dev-7")
    assert not tracing.is_traced("dev-8")
    await tracing.on_broker_events([bt.ConnectAttempt("dev-7", None, "wrong password")])
    kept = await tracing.entries(trace)
    assert [k.entry.summary for k in kept] == [
        "CONNECT refused: wrong password",
        "service: traceStarted",
    ]
    assert await tracing.broker_state() == [control.trace("dev-7", True)]


async def test_a_refused_start_changes_nothing() -> None:
    tracing, store, broker, _ = make()
    with pytest.raises(ValidationFailed):
        await tracing.start("t1", 7, "admin", 3 * 24 * 3600 + 1)
    with pytest.raises(NotFound):
        await tracing.start("t1", 99, "admin", 60)
    assert broker.lines == []
    assert store.traces == {}


async def test_a_trace_ends_at_its_expiry_even_before_the_sweep() -> None:
    tracing, store, broker, clock = make()
    trace = await tracing.start("t1", 7, "admin", 60)
    clock.now = trace.expires_at
    assert not tracing.is_traced("dev-7")
    await tracing.note([TraceEntry("dev-7", EntryKind.SERVICE, "late")])
    assert [k.entry.summary for k in store.kept] == ["service: traceStarted"]
    with pytest.raises(NotFound):
        await tracing.get("t1", 7)
    # The sweep deletes it and tells the broker; a second instance finds nothing to end.
    other = Tracing(store, broker, is_transient=unavailable, clock=clock)
    assert await tracing.sweep() == ["dev-7"]
    assert await other.sweep() == []
    assert broker.lines[-1:] == [control.trace("dev-7", False)]
    assert broker.lines.count(control.trace("dev-7", False)) == 1
    assert store.kept == []


async def test_stopping_tells_the_broker_and_a_second_stop_is_not_found() -> None:
    tracing, _, broker, _ = make()
    await tracing.start("t1", 8, "admin", 60)
    await tracing.stop("t1", 8)
    assert broker.lines[-1] == control.trace("dev-8", False)
    assert not tracing.is_traced("dev-8")
    with pytest.raises(NotFound, match="No trace runs"):
        await tracing.stop("t1", 8)


async def test_the_record_keeps_only_the_newest_entries() -> None:
    tracing, _, _, _ = make()
    trace = await tracing.start("t1", 7, "admin", 60)
    events = [bt.Disconnect("dev-7", f"reason {n}") for n in range(MAX_ENTRIES + 50)]
    await tracing.on_broker_events(events)
    kept = await tracing.entries(trace)
    assert len(kept) == MAX_ENTRIES
    assert kept[0].entry.summary == f"disconnected: reason {MAX_ENTRIES + 49}"


async def test_device_messages_note_outcomes_of_traced_devices_only() -> None:
    tracing, store, _, _ = make()
    await tracing.start("t1", 7, "admin", 60)
    store.kept.clear()
    letters, replies = FakeDeadLetters(), RecordingPublisher()

    async def declare(declaration: object, last_try: bool) -> bool:
        return True

    messages = DeviceMessages(
        FakeOperations(),
        declare,
        letters,
        replies,
        children=FakeChildren(),
        is_transient=unavailable,
        tracer=tracing,
    )
    batch = [
        Incoming("fg/d/dev-7/inventory", json.dumps({"name": "seven"}).encode()),
        Incoming("fg/d/dev-7/inventory", b"not json"),
        Incoming("fg/d/dev-8/inventory", b"not json"),
        Incoming("fg/d/dev-8/inventory", json.dumps({"name": "eight"}).encode()),
    ]
    assert await messages.handle(batch) == []
    noted = [(k.entry.device_id, k.entry.detail["outcome"]) for k in store.kept]
    assert sorted(noted) == [("dev-7", "applied"), ("dev-7", "refused")]
    refused = next(k.entry for k in store.kept if k.entry.detail["outcome"] == "refused")
    assert refused.detail["error"] == "inventory/badRequest"
    assert refused.detail["reason"]
    assert len(letters.letters) == 2  # both refusals are dead letters, traced or not
