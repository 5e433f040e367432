"""What fleetgate measures, and the text a Prometheus scrape gets.

Names follow Prometheus' conventions (``_total`` counters, ``_seconds`` histograms, the
``fleetgate_`` prefix). Each :class:`ServiceMetrics` has its own registry (tests run
several services in one process); the process's own metrics (CPU, memory, file
descriptors) and Python's garbage collector are registered on it too.

The gauges that describe the whole fleet (devices connected, operations by status and
type) are read from the database at scrape time, by one query each: they are true for
every service instance on that database, not only this one. A database that is away
leaves them at their last values and sets ``fleetgate_database_up`` to 0; the scrape
still answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["FleetStatistics", "PoolUsage", "ServiceMetrics"]

log = logging.getLogger(__name__)

#: Device messages handled together (the device link hands over what has arrived).
BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: Seconds: from a few milliseconds (one row) to the database's command timeout.
LATENCIES = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class FleetStatistics(Protocol):
    """The fleet as the database sees it (db/statistics.py)."""

    async def connected_devices(self) -> int:
        """Devices with a live broker session now."""
        ...

    async def operation_counts(self) -> Sequence[tuple[str, str, int]]:
        """(status, command fragment, how many) of every operation kept."""
        ...


@dataclass(frozen=True, slots=True)
class PoolUsage:
    in_use: int
    idle: int
    max_size: int


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.statuses_applied = Counter(
            "fleetgate_operation_statuses_applied",
            "Operation status reports of devices applied (committed); its rate is the"
            " statuses applied per second",
            registry=registry,
        )
        self.batch_size = Histogram(
            "fleetgate_device_message_batch_size",
            "Device messages applied together in one batch",
            buckets=BATCH_SIZES,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "fleetgate_device_message_batch_seconds",
            "Time to apply and commit one batch of device messages",
            buckets=LATENCIES,
            registry=registry,
        )
        self.rejected = Counter(
            "fleetgate_device_messages_rejected",
            "Device messages refused at the edge (kept as dead letters), by error code",
            ["error"],
            registry=registry,
        )
        self.push_seconds = Histogram(
            "fleetgate_broker_control_push_seconds",
            "Time from a state change to the broker plugin having it (one control push)",
            buckets=LATENCIES,
            registry=registry,
        )
        self.push_failures = Counter(
            "fleetgate_broker_control_push_failures",
            "Control pushes that failed (the broker away: the next resync carries them)",
            registry=registry,
        )
        self.control_refusals = Counter(
            "fleetgate_broker_control_refusals",
            "Control lines the broker plugin refused (each is logged with its reason)",
            registry=registry,
        )
        self.devices_connected = Gauge(
            "fleetgate_devices_connected",
            "Devices with a live broker session (all instances on this database)",
            registry=registry,
        )
        self.operations = Gauge(
            "fleetgate_operations",
            "Operations kept, by status and command fragment (all tenants)",
            ["status", "type"],
            registry=registry,
        )
        self.database_up = Gauge(
            "fleetgate_database_up",
            "1 when the last scrape could read the fleet's gauges from the database",
            registry=registry,
        )
        self.pool_connections = Gauge(
            "fleetgate_db_pool_connections",
            "Connections of this instance's database pool, by state",
            ["state"],
            registry=registry,
        )
        self.pool_max = Gauge(
            "fleetgate_db_pool_max_connections",
            "The most connections this instance's database pool opens",
            registry=registry,
        )
        self.stream_watchers = Gauge(
            "fleetgate_operation_stream_watchers",
            "Clients watching GET /devicecontrol/operations/stream on this instance",
            registry=registry,
        )
        self._fleet: FleetStatistics | None = None
        self._pool: Callable[[], PoolUsage] | None = None
        self._watchers: Callable[[], int] | None = None
        self._operation_labels: set[tuple[str, str]] = set()

    def observe(
        self,
        *,
        fleet: FleetStatistics,
        pool: Callable[[], PoolUsage],
        watchers: Callable[[], int],
    ) -> None:
        """Where the scrape-time gauges are read from (set once the services exist)."""
        self._fleet, self._pool, self._watchers = fleet, pool, watchers

    async def exposition(self) -> tuple[bytes, str]:
        """The text of a scrape and its Content-Type, the gauges read just before."""
        if self._pool is not None:
            usage = self._pool()
            self.pool_connections.labels("in_use").set(usage.in_use)
            self.pool_connections.labels("idle").set(usage.idle)
            self.pool_max.set(usage.max_size)
        if self._watchers is not None:
            self.stream_watchers.set(self._watchers())
        if self._fleet is not None:
            await self._read_fleet(self._fleet)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    async def _read_fleet(self, fleet: FleetStatistics) -> None:
        try:
            connected = await fleet.connected_devices()
            counts = await fleet.operation_counts()
        except Exception as exc:
            # Metrics must answer while the database is away: that is when they matter.
            log.warning("metrics: could not read the fleet from the database: %s", exc)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        self.devices_connected.set(connected)
        seen = set()
        for status, type_, n in counts:
            self.operations.labels(status, type_).set(n)
            seen.add((status, type_))
        for gone in self._operation_labels - seen:
            self.operations.remove(*gone)
        self._operation_labels = seen
