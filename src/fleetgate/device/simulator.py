"""``fleetgate simulate``: a fleet of certificate devices and gateways built on the SDK.

Each simulated device ``<prefix>-0001`` … and each gateway ``<prefix>-gw-0001`` …
connects with its own certificate (issued by the simulator's CA, trusted with
auto-registration: see :mod:`fleetgate.device.enrolment`) and declares itself; each
gateway also declares its children ``<prefix>-gw-0001-c-0001`` … (registered through it).
All of them — devices, gateways and children — carry out every operation they get as
:mod:`fleetgate.device.simulated` says.

As a library (tests, benchmarks): :class:`Simulation` runs until cancelled; its ``ready``
event is set once every device and gateway has connected and every declaration (the
children's too) was acknowledged; an observer hears of every acknowledged status;
:attr:`Simulation.acknowledged` holds, per device or child, the last status the broker
acknowledged for each operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fleetgate.device.client import BrokerAddress, DeviceClient, ReconnectPolicy
from fleetgate.device.commands import Status
from fleetgate.device.enrolment import (
    StackInfo,
    ensure_device_certificates,
    ensure_fleet_ca,
    trust_fleet_ca,
)
from fleetgate.device.gateway import GatewayClient
from fleetgate.device.messages import Inventory
from fleetgate.device.simulated import (
    CHILD_INVENTORY,
    GATEWAY_INVENTORY,
    INVENTORY,
    Observer,
    SimulatedWork,
    WorkCounts,
)
from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.topics import is_level

__all__ = [
    "INVENTORY",
    "Observer",
    "Simulation",
    "SimulationConfig",
    "SimulationCounts",
    "numbered",
    "run_simulation",
]

log = logging.getLogger(__name__)

#: Waiting for a pooled HTTP connection is normal when thousands of devices download.
_HTTP_TIMEOUT = httpx.Timeout(30.0, pool=None)
#: Downloads and uploads at once of the devices (the pool of their one HTTP client), and
#: of each gateway's children (each gateway has a client of its own).
_TRANSFERS = 100
_GATEWAY_TRANSFERS = 4
SimulationCounts = WorkCounts


@dataclass(frozen=True)
class SimulationConfig:
    stack: StackInfo
    #: Plain devices (``<prefix>-0001`` …).
    devices: int
    state_dir: Path
    prefix: str = "sim"
    #: Gateways (``<prefix>-gw-0001`` …), each with ``children`` children.
    gateways: int = 0
    children: int = 0
    #: Seconds an operation takes (each one uniformly 0.5 to 1.5 times this).
    delay: float = 0.5
    #: Probability that an operation fails with "Simulated failure".
    failure_rate: float = 0.0
    #: TLS handshakes in progress at once (each costs the broker ~2.5 ms of CPU).
    connect_parallel: int = 8
    #: Devices (or children) that expect a wrong SHA-256 for every file: their downloads
    #: fail the check.
    corrupt_downloads: frozenset[str] = frozenset()
    #: Names of profile items (firmware, software, configuration) that fail to install
    #: on these devices — (device id, item name) — with "Simulated failure".
    failing_items: frozenset[tuple[str, str]] = frozenset()
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    seed: int | None = None

    def __post_init__(self) -> None:
        if min(self.devices, self.gateways, self.children) < 0:
            raise ConfigurationError("devices, gateways and children cannot be negative")
        if self.devices + self.gateways < 1:
            raise ConfigurationError("simulate at least one device or gateway")
        if bool(self.gateways) != bool(self.children):
            raise ConfigurationError("gateways need children, and children need gateways")
        if not is_level(self.prefix):
            raise ConfigurationError(f"the prefix {self.prefix!r} cannot be part of a device id")
        if not 0 <= self.failure_rate <= 1:
            raise ConfigurationError("the failure rate is a probability, from 0 to 1")
        if self.delay < 0 or self.connect_parallel < 1:
            raise ConfigurationError("the delay must be >= 0, the connect parallelism >= 1")

    @property
    def device_ids(self) -> tuple[str, ...]:
        return numbered(self.prefix, self.devices)

    @property
    def gateway_ids(self) -> tuple[str, ...]:
        return numbered(f"{self.prefix}-gw", self.gateways)

    def child_ids(self, gateway_id: str) -> tuple[str, ...]:
        return numbered(f"{gateway_id}-c", self.children)


def numbered(stem: str, count: int) -> tuple[str, ...]:
    """``<stem>-0001`` … ``<stem>-<count>`` (at least four digits): the simulator's ids."""
    return tuple(f"{stem}-{n:04d}" for n in range(1, count + 1))


class Simulation:
    def __init__(
        self,
        config: SimulationConfig,
        *,
        observer: Observer | None = None,
        ready: asyncio.Event | None = None,
    ) -> None:
        self.config = config
        self.ready = ready or asyncio.Event()
        self.devices: dict[str, DeviceClient] = {}
        self.gateways: dict[str, GatewayClient] = {}
        self.work = SimulatedWork(
            downloads=config.state_dir / "downloads",
            delay=config.delay,
            failure_rate=config.failure_rate,
            corrupt_downloads=config.corrupt_downloads,
            failing_items=config.failing_items,
            rng=random.Random(config.seed),  # noqa: S311 — simulation, not security
            transfers=_TRANSFERS,
            observer=observer,
        )

    @property
    def counts(self) -> WorkCounts:
        return self.work.counts

    @property
    def acknowledged(self) -> dict[str, dict[str, Status]]:
        """Device or child id → operation id → the last status the broker acknowledged."""
        return self.work.acknowledged

    def connected(self) -> int:
        clients = [*self.devices.values(), *self.gateways.values()]
        return sum(client.connected for client in clients)

    def summary(self) -> str:
        c, config = self.counts, self.config
        children = (
            f" ({config.gateways} gateways of {config.children} children)"
            if config.gateways
            else ""
        )
        return (
            f"{self.connected()}/{config.devices + config.gateways} connected{children};"
            f" operations: {c.received} received, {c.succeeded} successful, {c.failed} failed"
        )

    async def run(self) -> None:
        """Enrol, connect and serve every device and gateway until cancelled."""
        config = self.config
        ca = await asyncio.to_thread(ensure_fleet_ca, config.state_dir)
        async with contextlib.AsyncExitStack() as clients:
            http = await clients.enter_async_context(_http_client(_TRANSFERS))
            if await trust_fleet_ca(config.stack, ca, http):
                log.info(
                    "the simulator's CA is now trusted in tenant %s", config.stack.admin.tenant
                )
            logins = await asyncio.to_thread(
                ensure_device_certificates,
                config.state_dir,
                ca,
                config.device_ids + config.gateway_ids,
            )
            broker = BrokerAddress(
                config.stack.mqtt_host, config.stack.mqtt_cert_port, config.stack.ca_file
            )
            gate = asyncio.Semaphore(config.connect_parallel)
            for device_id in config.device_ids:
                self.devices[device_id] = DeviceClient(
                    device_id,
                    broker,
                    logins[device_id],
                    on_operation=self.work.execute,
                    reconnect=config.reconnect,
                    connect_gate=gate,
                    http=http,
                )
            for gateway_id in config.gateway_ids:
                # A gateway's own uplink: a small pool of its own (an HTTP client's costs
                # per request grow with its pool), as many connections as transfers.
                uplink = await clients.enter_async_context(_http_client(_GATEWAY_TRANSFERS))
                self.gateways[gateway_id] = GatewayClient(
                    gateway_id,
                    broker,
                    logins[gateway_id],
                    on_operation=self.work.execute,
                    on_child_operation=self.work.execute,
                    reconnect=config.reconnect,
                    connect_gate=gate,
                    http=uplink,
                    transfers=_GATEWAY_TRANSFERS,
                )
            async with asyncio.TaskGroup() as tasks:
                for client in [*self.devices.values(), *self.gateways.values()]:
                    tasks.create_task(client.run(), name=f"device-{client.device_id}")
                tasks.create_task(self._declare_all())

    async def _declare_all(self) -> None:
        inventories = self.work.inventories
        async with asyncio.TaskGroup() as declaring:
            for device in self.devices.values():
                inventory = inventories.setdefault(device.device_id, INVENTORY)
                declaring.create_task(device.declare(inventory))
            for gateway in self.gateways.values():
                inventory = inventories.setdefault(gateway.device_id, GATEWAY_INVENTORY)
                children = {
                    child_id: inventories.setdefault(child_id, CHILD_INVENTORY)
                    for child_id in self.config.child_ids(gateway.device_id)
                }
                declaring.create_task(self._declare_gateway(gateway, inventory, children))
        self.ready.set()

    @staticmethod
    async def _declare_gateway(
        gateway: GatewayClient, inventory: Inventory, children: dict[str, Inventory]
    ) -> None:
        await gateway.declare(inventory)  # the gateway first: its children hang below it
        await gateway.declare_children(children)


def _http_client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=_HTTP_TIMEOUT, limits=limits)


async def run_simulation(
    config: SimulationConfig,
    *,
    ready: asyncio.Event | None = None,
    observer: Observer | None = None,
) -> None:
    """Run a :class:`Simulation` of ``config`` until cancelled."""
    await Simulation(config, observer=observer, ready=ready).run()
