"""Message tracing (docs/decisions/0016): start, watch and stop the trace of one device.

While a device's trace runs, the broker plugin reports what it does with that client
(connect attempts with the decision and reason, disconnects, kicks, publishes in and out,
subscriptions) and the service adds what it did with each of the device's messages
(applied, refused and why, deferred) and what it sent (operations dispatched). Everything
goes into the device's bounded record in PostgreSQL, kept until the trace expires or is
stopped.

Untraced devices cost nothing: the plugin reports only the client ids it was told to
trace (``trace <client id> 1``), and the service looks a device up in an in-memory set
before it writes anything. The set is this instance's copy of the running traces: changed
at once by a start or stop here, reloaded from the database every few seconds (what
another instance started or stopped), and checked against each trace's expiry on every
look-up, so an expired trace records nothing even before the sweep deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

from fleetgate.domain import broker_control as control
from fleetgate.domain.broker_trace import BrokerTraceEvent
from fleetgate.domain.errors import NotFound
from fleetgate.domain.traces import (
    MAX_ENTRIES,
    Trace,
    TraceEntry,
    entry_of_broker_event,
    service_entry,
    trace_duration,
)
from fleetgate.services.ports import BrokerPush, TransientCheck

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class StoredTraceEntry(Protocol):
    id: int
    at: datetime
    entry: TraceEntry


class TraceStore(Protocol):
    async def device_of(self, tenant_id: str, object_id: int) -> str | None: ...

    async def start(
        self, tenant_id: str, object_id: int, device_id: str, by: str, duration: timedelta
    ) -> Trace: ...

    async def get(self, tenant_id: str, object_id: int) -> Trace | None: ...

    async def stop(self, tenant_id: str, object_id: int) -> Trace | None: ...

    async def running(self) -> dict[str, datetime]: ...

    async def expire(self) -> list[str]: ...

    async def record(self, entries: Sequence[TraceEntry]) -> None: ...

    async def entries(
        self, device_id: str, *, after: int = 0, limit: int = MAX_ENTRIES
    ) -> Sequence[StoredTraceEntry]: ...


def _no_device(object_id: int) -> NotFound:
    return NotFound(
        f"Finding device data from database failed : No managedObject for id '{object_id}'"
        " that connects (no c8y_Serial)!",
        code="inventory/Not Found",
    )


def _no_trace(object_id: int) -> NotFound:
    return NotFound(f"No trace runs for device {object_id}", code="devicecontrol/Not Found")


class Tracing:
    def __init__(
        self,
        store: TraceStore,
        broker: BrokerPush,
        *,
        is_transient: TransientCheck,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._broker = broker
        self._is_transient = is_transient
        self._clock = clock
        #: device id → expiry of the traces this instance knows to run.
        self._running: dict[str, datetime] = {}

    # --- what operators do ----------------------------------------------------------------

    async def start(self, tenant_id: str, object_id: int, by: str, duration: object) -> Trace:
        """Start (or restart from now) the trace of the tenant's device ``object_id`` for
        ``duration`` seconds (1 s to 3 days, else ValidationFailed)."""
        length = trace_duration(duration)
        device_id = await self._store.device_of(tenant_id, object_id)
        if device_id is None:
            raise _no_device(object_id)
        trace = await self._store.start(tenant_id, object_id, device_id, by, length)
        self._running[device_id] = trace.expires_at
        await self._broker.push([control.trace(device_id, True)])
        await self._store.record(
            [
                service_entry(
                    device_id,
                    "traceStarted",
                    None,
                    None,
                    startedBy=by,
                    durationSeconds=int(length.total_seconds()),
                )
            ]
        )
        return trace

    async def stop(self, tenant_id: str, object_id: int) -> Trace:
        trace = await self._store.stop(tenant_id, object_id)
        if trace is None:
            raise _no_trace(object_id)
        self._running.pop(trace.device_id, None)
        await self._broker.push([control.trace(trace.device_id, False)])
        return trace

    async def get(self, tenant_id: str, object_id: int) -> Trace:
        trace = await self._store.get(tenant_id, object_id)
        if trace is None:
            if await self._store.device_of(tenant_id, object_id) is None:
                raise _no_device(object_id)
            raise _no_trace(object_id)
        return trace

    async def entries(
        self, trace: Trace, *, after: int = 0, limit: int = MAX_ENTRIES
    ) -> Sequence[StoredTraceEntry]:
        """The trace's kept entries after ``after``, newest first."""
        return await self._store.entries(trace.device_id, after=after, limit=limit)

    # --- what the broker and the service report -------------------------------------------

    def is_traced(self, device_id: str) -> bool:
        expiry = self._running.get(device_id)
        return expiry is not None and self._clock() < expiry

    async def on_broker_events(self, events: Sequence[BrokerTraceEvent]) -> None:
        """Keep what the plugin reported (only traced clients are reported; the store drops
        what arrives after a trace ended)."""
        await self._store.record([entry_of_broker_event(e) for e in events])

    async def note(self, entries: Sequence[TraceEntry]) -> None:
        """Keep what the service did, for the devices that are traced. Never raises:
        tracing must not break (or repeat) the work it watches; a lost entry is logged."""
        kept = [e for e in entries if self.is_traced(e.device_id)]
        if not kept:
            return
        try:
            await self._store.record(kept)
        except Exception as exc:
            if self._is_transient(exc):
                log.warning("could not keep %d trace entries: %s", len(kept), exc)
            else:
                log.exception("could not keep %d trace entries", len(kept))

    async def broker_state(self) -> list[str]:
        """The plugin's traced set, for the full state push."""
        self._running = await self._store.running()
        return [control.trace(device_id, True) for device_id in sorted(self._running)]

    # --- keeping the set true -------------------------------------------------------------

    async def sweep(self) -> list[str]:
        """End the traces whose time is up (here or on any instance: whoever deletes the row
        tells the broker), then reload the running set. The device ids this call ended."""
        ended = await self._store.expire()
        if ended:
            log.info("traces ended by expiry: %s", ", ".join(ended))
            await self._broker.push([control.trace(d, False) for d in ended])
        await self.refresh()
        return ended

    async def refresh(self) -> None:
        """Reload the running traces (what other instances started and stopped)."""
        self._running = await self._store.running()

    async def run(self, sweep_interval: float, refresh_interval: float) -> None:
        """Sweep every ``sweep_interval`` and refresh every ``refresh_interval`` seconds, for
        ever; a database that is away is waited out."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + sweep_interval
                    await self.sweep()
                else:
                    await self.refresh()
            except Exception as exc:
                if not self._is_transient(exc):
                    log.exception("the trace sweep failed")
                else:
                    log.warning("the trace sweep could not reach the database: %s", exc)
            await asyncio.sleep(min(refresh_interval, max(0.0, next_sweep - loop.time())))
