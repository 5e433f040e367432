"""What a simulated device does with an operation — a certificate device, a gateway, or a
gateway's child alike (each is a :class:`~fleetgate.device.operations.Device`).

It reports EXECUTING, waits a (jittered) delay, downloads every file of the command over
its signed URL and verifies it (into memory: a simulated device installs nothing), fails
at random at ``failure_rate``, uploads a configuration snapshot for
``c8y_UploadConfigFile``, declares what a successful operation installed (so that the
declaration sent again at every reconnect does not undo it), then reports SUCCESSFUL — or
FAILED with the real reason (a SHA-256 mismatch …).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

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
from fleetgate.device.errors import DeviceError, OperationFailed
from fleetgate.device.gateway import ChildDevice
from fleetgate.device.messages import Firmware, Inventory, Software
from fleetgate.device.operations import Device
from fleetgate.device.profiles import ProfileItem, apply_profile

__all__ = [
    "CHILD_INVENTORY",
    "GATEWAY_INVENTORY",
    "INVENTORY",
    "Observer",
    "SimulatedWork",
    "WorkCounts",
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
GATEWAY_INVENTORY = replace(INVENTORY, type="fleetgate-simulator-gateway")
CHILD_INVENTORY = replace(
    INVENTORY,
    type="fleetgate-simulator-child",
    firmware=Firmware("sim-child-fw", "1.0.0"),
    software=[Software("sim-plc-runtime", "1.0.0")],
)
#: (device id, operation id, status, time.monotonic() after the broker's PUBACK)
Observer = Callable[[str, str, Status, float], None]


@dataclass
class WorkCounts:
    received: int = 0
    succeeded: int = 0
    failed: int = 0


class SimulatedWork:
    """Carries out the operations of simulated devices (see the module docstring).

    ``inventories`` holds what each device declared first (by id); what its operations
    install is declared on top. ``acknowledged`` holds, per device, the last status the
    broker acknowledged for each operation.
    """

    def __init__(
        self,
        *,
        downloads: Path,
        delay: float,
        failure_rate: float,
        corrupt_downloads: frozenset[str],
        failing_items: frozenset[tuple[str, str]],
        rng: random.Random,
        transfers: int,
        observer: Observer | None = None,
    ) -> None:
        self.counts = WorkCounts()
        self.acknowledged: dict[str, dict[str, Status]] = {}
        self.inventories: dict[str, Inventory] = {}
        self._downloads = downloads  # a profile's files, each deleted once installed
        self._delay = delay
        self._failure_rate = failure_rate
        self._corrupt = corrupt_downloads
        self._failing_items = failing_items
        self._rng = rng
        self._observer = observer
        self._transfers = asyncio.Semaphore(transfers)

    async def execute(self, device: Device, command: Command) -> None:
        """The handler of every simulated device (and child)."""
        self.counts.received += 1
        await self._report(device, command.id, Status.EXECUTING)
        try:
            if self._delay:
                await asyncio.sleep(self._delay * self._rng.uniform(0.5, 1.5))
            if command.device_profile is not None:
                await self._apply_profile(device, command)
                await self._report(device, command.id, Status.SUCCESSFUL)
                return
            for file in command.files:
                async with self._transfer(device):
                    await device.fetch(self._expected(device.device_id, file))
            if self._rng.random() < self._failure_rate:
                raise OperationFailed("Simulated failure")
            if command.config_upload is not None:
                snapshot = _snapshot(device.device_id, command.config_upload.config_type)
                async with self._transfer(device):
                    await device.upload(command, snapshot, content_type="text/plain; charset=utf-8")
            await self._installed(device, command)
        except DeviceError as exc:
            await self._report(device, command.id, Status.FAILED, str(exc))
        else:
            await self._report(device, command.id, Status.SUCCESSFUL)

    async def _apply_profile(self, device: Device, command: Command) -> None:
        """Each step as a real device takes it (downloads verified, the declaration
        updated after each); an item in ``failing_items`` fails at its step."""
        device_id = device.device_id

        async def install(item: ProfileItem, file: Path | None) -> None:
            if (device_id, item.name or "") in self._failing_items:
                raise OperationFailed("Simulated failure")

        async def download(file: FileInfo, dest: Path) -> Path:
            async with self._transfer(device):
                return await device.download(self._expected(device_id, file), dest)

        workdir = self._downloads / device_id
        self.inventories[device_id] = await apply_profile(
            device, command, self.inventories[device_id], install, workdir, download=download
        )

    async def _installed(self, device: Device, command: Command) -> None:
        """Declare what a successful operation changed, as a real device would: its
        declaration is sent again at every reconnect and must not undo the operation."""
        before = self.inventories[device.device_id]
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
            self.inventories[device.device_id] = after
            await device.declare(after)

    def _transfer(self, device: Device) -> contextlib.AbstractAsyncContextManager[Any]:
        """Every device shares one HTTP client: requests beyond its pool would wait in a
        queue that costs more with every request in it, so devices wait here instead. A
        gateway bounds its children's transfers itself (``GatewayClient.transfers``)."""
        if isinstance(device, ChildDevice):
            return contextlib.nullcontext()
        return self._transfers

    def _expected(self, device_id: str, file: FileInfo) -> FileInfo:
        if device_id not in self._corrupt:
            return file
        wrong = "0" * 64 if file.sha256.lower() != "0" * 64 else "f" * 64
        return file.model_copy(update={"sha256": wrong})

    async def _report(
        self, device: Device, op_id: str, status: Status, reason: str | None = None
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
