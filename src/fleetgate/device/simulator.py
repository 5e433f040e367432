"""``fleetgate simulate``: a fleet of certificate devices built on the device SDK.

Each simulated device ``<prefix>-0001`` … connects with its own certificate (issued by
the simulator's CA, trusted with auto-registration: see :mod:`fleetgate.device.enrolment`),
declares itself, and carries out every operation it gets: EXECUTING, a (jittered) pause,
every file downloaded and verified, a random failure at ``failure_rate``, a configuration
snapshot uploaded for ``c8y_UploadConfigFile``, then SUCCESSFUL — or FAILED with the real
reason (a SHA-256 mismatch …).

As a library (tests, benchmarks): :class:`Simulation` runs until cancelled; its ``ready``
event is set once every device has connected and its inventory was acknowledged; an
observer hears of every acknowledged status; :attr:`Simulation.acknowledged` holds, per
device, the last status the broker acknowledged for each operation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from fleetgate.device.client import BrokerAddress, DeviceClient, ReconnectPolicy
from fleetgate.device.commands import (
    CONFIG_DOWNLOAD,
    CONFIG_UPLOAD,
    DEVICE_PROFILE,
    FIRMWARE,
    SOFTWARE_UPDATE,
    Command,
    FileInfo,
    Status,
)
from fleetgate.device.enrolment import (
    StackInfo,
    ensure_device_certificates,
    ensure_fleet_ca,
    load_stack,
    trust_fleet_ca,
)
from fleetgate.device.errors import DeviceError, OperationFailed
from fleetgate.device.messages import Firmware, Inventory, Software
from fleetgate.device.profiles import ProfileItem, apply_profile
from fleetgate.domain.errors import ConfigurationError
from fleetgate.domain.topics import is_level

__all__ = [
    "INVENTORY",
    "Observer",
    "Simulation",
    "SimulationConfig",
    "SimulationCounts",
    "add_parser",
    "run_simulation",
    "simulate_command",
]

log = logging.getLogger(__name__)

INVENTORY = Inventory(
    type="fleetgate-simulator",
    supported_operations=[
        FIRMWARE,
        SOFTWARE_UPDATE,
        CONFIG_DOWNLOAD,
        CONFIG_UPLOAD,
        DEVICE_PROFILE,
    ],
    firmware=Firmware("sim-fw", "1.0.0"),
    software=[Software("sim-agent", "1.0.0", "apt"), Software("sim-tools", "2.3.1", "apt")],
    supported_configurations=["ssh", "agent"],
)
#: (device id, operation id, status, time.monotonic() after the broker's PUBACK)
Observer = Callable[[str, str, Status, float], None]
#: Waiting for a pooled HTTP connection is normal when thousands of devices download.
_HTTP_TIMEOUT = httpx.Timeout(30.0, pool=None)


@dataclass(frozen=True)
class SimulationConfig:
    stack: StackInfo
    devices: int
    state_dir: Path
    prefix: str = "sim"
    #: Seconds an operation takes (each one uniformly 0.5 to 1.5 times this).
    delay: float = 0.5
    #: Probability that an operation fails with "Simulated failure".
    failure_rate: float = 0.0
    #: TLS handshakes in progress at once (each costs the broker ~2.5 ms of CPU).
    connect_parallel: int = 8
    #: Devices that expect a wrong SHA-256 for every file: their downloads fail the check.
    corrupt_downloads: frozenset[str] = frozenset()
    #: Names of profile items (firmware, software, configuration) that fail to install
    #: on these devices — (device id, item name) — with "Simulated failure".
    failing_items: frozenset[tuple[str, str]] = frozenset()
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise ConfigurationError("simulate at least one device")
        if not is_level(self.prefix):
            raise ConfigurationError(f"the prefix {self.prefix!r} cannot be part of a device id")
        if not 0 <= self.failure_rate <= 1:
            raise ConfigurationError("the failure rate is a probability, from 0 to 1")
        if self.delay < 0 or self.connect_parallel < 1:
            raise ConfigurationError("the delay must be >= 0, the connect parallelism >= 1")

    @property
    def device_ids(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}-{n:04d}" for n in range(1, self.devices + 1))


@dataclass
class SimulationCounts:
    received: int = 0
    succeeded: int = 0
    failed: int = 0


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
        self.counts = SimulationCounts()
        #: device id → operation id → the last status the broker acknowledged.
        self.acknowledged: dict[str, dict[str, Status]] = {}
        self.devices: dict[str, DeviceClient] = {}
        self._observer = observer
        #: What each device declares: INVENTORY, then what its operations installed.
        self._inventories: dict[str, Inventory] = {}
        self._rng = random.Random(config.seed)  # noqa: S311 — simulation, not security

    def connected(self) -> int:
        return sum(device.connected for device in self.devices.values())

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.connected()}/{self.config.devices} connected; operations:"
            f" {c.received} received, {c.succeeded} successful, {c.failed} failed"
        )

    async def run(self) -> None:
        """Enrol, connect and serve every device until cancelled."""
        config = self.config
        ca = await asyncio.to_thread(ensure_fleet_ca, config.state_dir)
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as http:
            if await trust_fleet_ca(config.stack, ca, http):
                log.info(
                    "the simulator's CA is now trusted in tenant %s", config.stack.admin.tenant
                )
            logins = await asyncio.to_thread(
                ensure_device_certificates, config.state_dir, ca, config.device_ids
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
                    on_operation=self._execute,
                    reconnect=config.reconnect,
                    connect_gate=gate,
                    http=http,
                )
            async with asyncio.TaskGroup() as tasks:
                for device in self.devices.values():
                    tasks.create_task(device.run(), name=f"device-{device.device_id}")
                tasks.create_task(self._declare_all())

    async def _declare_all(self) -> None:
        async with asyncio.TaskGroup() as declaring:
            for device in self.devices.values():
                declaring.create_task(device.declare(self._inventory(device.device_id)))
        self.ready.set()

    async def _execute(self, device: DeviceClient, command: Command) -> None:
        self.counts.received += 1
        await self._report(device, command.id, Status.EXECUTING)
        try:
            await asyncio.sleep(self.config.delay * self._rng.uniform(0.5, 1.5))
            if command.device_profile is not None:
                await self._apply_profile(device, command)
                await self._report(device, command.id, Status.SUCCESSFUL)
                return
            for number, file in enumerate(command.files):
                dest = (
                    self.config.state_dir
                    / "downloads"
                    / device.device_id
                    / f"{command.id}-{number}"
                )
                await device.download(self._expected(device.device_id, file), dest)
                dest.unlink()
            if self._rng.random() < self.config.failure_rate:
                raise OperationFailed("Simulated failure")
            if command.config_upload is not None:
                snapshot = _snapshot(device.device_id, command.config_upload.config_type)
                await device.upload(command, snapshot, content_type="text/plain; charset=utf-8")
            await self._installed(device, command)
        except DeviceError as exc:
            await self._report(device, command.id, Status.FAILED, str(exc))
        else:
            await self._report(device, command.id, Status.SUCCESSFUL)

    async def _apply_profile(self, device: DeviceClient, command: Command) -> None:
        """Each step as a real device takes it (downloads verified, the declaration
        updated after each); an item in ``failing_items`` fails at its step."""
        device_id = device.device_id

        async def install(item: ProfileItem, file: Path | None) -> None:
            if (device_id, item.name or "") in self.config.failing_items:
                raise OperationFailed("Simulated failure")

        async def download(file: FileInfo, dest: Path) -> Path:
            return await device.download(self._expected(device_id, file), dest)

        workdir = self.config.state_dir / "downloads" / device_id
        self._inventories[device_id] = await apply_profile(
            device, command, self._inventory(device_id), install, workdir, download=download
        )

    def _inventory(self, device_id: str) -> Inventory:
        return self._inventories.get(device_id, INVENTORY)

    async def _installed(self, device: DeviceClient, command: Command) -> None:
        """Declare what a successful operation changed, as a real device would: its
        declaration is sent again at every reconnect and must not undo the operation."""
        before = self._inventory(device.device_id)
        after = before
        if command.firmware is not None:
            fw = command.firmware
            after = replace(before, firmware=Firmware(fw.name, fw.version, fw.url))
        elif command.software is not None:
            software = {s.name: s for s in before.software or ()}
            for change in command.software:
                if change.action == "delete":
                    software.pop(change.name, None)
                else:
                    software[change.name] = Software(
                        change.name, change.version, change.software_type, change.url
                    )
            after = replace(before, software=list(software.values()))
        if after is not before:
            self._inventories[device.device_id] = after
            await device.declare(after)

    def _expected(self, device_id: str, file: FileInfo) -> FileInfo:
        if device_id not in self.config.corrupt_downloads:
            return file
        wrong = "0" * 64 if file.sha256.lower() != "0" * 64 else "f" * 64
        return file.model_copy(update={"sha256": wrong})

    async def _report(
        self, device: DeviceClient, op_id: str, status: Status, reason: str | None = None
    ) -> None:
        await device.report(op_id, status, reason)
        at = time.monotonic()
        self.acknowledged.setdefault(device.device_id, {})[op_id] = status
        if status is Status.SUCCESSFUL:
            self.counts.succeeded += 1
        elif status is Status.FAILED:
            self.counts.failed += 1
        if self._observer is not None:
            try:
                self._observer(device.device_id, op_id, status, at)
            except Exception:
                log.exception("the simulation's observer failed")


def _snapshot(device_id: str, config_type: str) -> bytes:
    taken = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return (
        f"# {config_type} configuration of {device_id}\n"
        f"# snapshot taken {taken} by the fleetgate simulator\n"
        f"device.id = {device_id}\n"
        f"{config_type}.enabled = true\n"
    ).encode()


async def run_simulation(
    config: SimulationConfig,
    *,
    ready: asyncio.Event | None = None,
    observer: Observer | None = None,
) -> None:
    """Run a :class:`Simulation` of ``config`` until cancelled."""
    await Simulation(config, observer=observer, ready=ready).run()


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` sub-command to ``fleetgate``'s command line."""
    simulate = commands.add_parser(
        "simulate",
        help="simulate certificate devices that carry out operations",
        description="Connect N simulated devices (certificates from a CA the simulator"
        " creates and trusts through the REST API) to a running stack; they declare"
        " themselves and carry out firmware, software and configuration operations."
        " Runs until Ctrl-C or SIGTERM, printing a summary every few seconds.",
    )
    simulate.add_argument(
        "--stack",
        type=Path,
        default=Path(".fleetgate/stack.json"),
        help="stack.json of a running `fleetgate up` (.fleetgate/stack.json)",
    )
    simulate.add_argument("--devices", type=int, default=10, help="how many devices (10)")
    simulate.add_argument("--prefix", default="sim", help="device ids are <prefix>-0001 … (sim)")
    simulate.add_argument(
        "--delay", type=float, default=0.5, help="seconds an operation takes, jittered (0.5)"
    )
    simulate.add_argument(
        "--failure-rate", type=float, default=0.0, help="probability an operation fails (0)"
    )
    simulate.add_argument(
        "--state-dir", type=Path, help="CA and device certificates (<dir of stack.json>/simulator)"
    )
    simulate.add_argument(
        "--connect-parallel", type=int, default=8, help="TLS handshakes at once (8)"
    )
    simulate.add_argument(
        "--summary-interval", type=float, default=5.0, help="seconds between summaries (5)"
    )


async def simulate_command(args: argparse.Namespace) -> None:
    """``fleetgate simulate``: runs until cancelled (SIGINT/SIGTERM)."""
    stack_file: Path = args.stack.resolve()
    config = SimulationConfig(
        stack=load_stack(stack_file),
        devices=args.devices,
        state_dir=args.state_dir or stack_file.parent / "simulator",
        prefix=args.prefix,
        delay=args.delay,
        failure_rate=args.failure_rate,
        connect_parallel=args.connect_parallel,
    )
    simulation = Simulation(config)
    started = time.monotonic()

    async def announce_ready() -> None:
        await simulation.ready.wait()
        elapsed = time.monotonic() - started
        print(f"simulate: all {config.devices} devices declared in {elapsed:.1f} s", flush=True)

    async def print_summaries() -> None:
        while True:
            await asyncio.sleep(args.summary_interval)
            print(f"simulate: {simulation.summary()}", flush=True)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(simulation.run())
        tasks.create_task(announce_ready())
        tasks.create_task(print_summaries())
