"""Applying a device profile (``c8y_DeviceProfile``) on the device, step by step, as
Cumulocity's devices do (docs/protocol.md, "Device profiles"):

1. the device declares ``c8y_Profile {profileName, profileId, profileExecuted: false}``;
2. firmware: download (verified), install, declare the new ``c8y_Firmware``;
3. software, in the profile's order: download, install or remove each package, then
   declare the new ``c8y_SoftwareList``;
4. each configuration file: download, apply, declare ``c8y_Configuration_<type>``;
5. declare ``c8y_Profile`` with ``profileExecuted: true``.

The handler that calls :func:`apply_profile` reports EXECUTING before and SUCCESSFUL
after (returning does that); a step that fails raises :class:`OperationFailed` whose
reason names the step and the item: ``software 'agent' 2.1: SHA-256 mismatch: …``. The
declarations go through ``declare``, so the device's declaration after a reconnect is
what it has installed, profile included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from fleetgate.device.commands import (
    Command,
    ConfigDownload,
    FileInfo,
    FirmwareUpdate,
    SoftwareChange,
)
from fleetgate.device.errors import BadCommand, OperationFailed
from fleetgate.device.messages import Firmware, Inventory, Software
from fleetgate.domain.profiles import STATE, applied_state

__all__ = ["Install", "ProfileDevice", "ProfileItem", "apply_profile", "label"]

log = logging.getLogger(__name__)

ProfileItem = FirmwareUpdate | SoftwareChange | ConfigDownload
#: Installs (or removes, or applies) one item, from the downloaded file (None when the
#: item names no file of fleetgate: a URL elsewhere, or a software removal). Raising
#: fails the profile at that item.
Install = Callable[[ProfileItem, Path | None], Awaitable[None]]


class ProfileDevice(Protocol):
    """What applying a profile needs of the device (a ``DeviceClient``)."""

    async def declare(self, inventory: Inventory) -> None: ...

    async def download(self, file: FileInfo, dest: Path) -> Path: ...


def label(item: ProfileItem) -> str:
    """How a failure names the item: ``firmware 'fw' 2.0``, ``software 'agent' 2.1``,
    ``configuration 'ssh config'`` (the service's ``Item.label``)."""
    if isinstance(item, FirmwareUpdate):
        return f"firmware {item.name!r} {item.version}"
    if isinstance(item, SoftwareChange):
        version = f" {item.version}" if item.version else ""
        return f"software {item.name!r}{version}"
    return f"configuration {(item.name or item.config_type)!r}"


async def apply_profile(
    device: ProfileDevice,
    command: Command,
    inventory: Inventory,
    install: Install,
    workdir: Path,
    *,
    download: Callable[[FileInfo, Path], Awaitable[Path]] | None = None,
) -> Inventory:
    """Apply the profile ``command`` carries on top of ``inventory`` (what the device
    declares now); returns the declaration it ends with. ``download`` replaces the
    device's own (a simulator's corrupted one, say); files land in ``workdir``."""
    profile = command.device_profile
    if profile is None or not command.profile_id or not command.profile_name:
        raise BadCommand(
            f"Operation {command.id} is not a device profile with profileId and profileName",
            operation_id=command.id,
        )
    fetch = download or device.download
    state = {"profileId": command.profile_id, "profileName": command.profile_name}

    async def declare(inv: Inventory, **fragments: Any) -> Inventory:
        inv = replace(inv, fragments={**inv.fragments, **fragments})
        await device.declare(inv)
        return inv

    async def step(number: int, item: ProfileItem) -> None:
        path = None
        try:
            if item.file is not None:
                path = await fetch(item.file, workdir / f"{command.id}-{number}")
            await install(item, path)
        except Exception as exc:
            log.info("profile %s: %s failed: %s", command.profile_name, label(item), exc)
            raise OperationFailed(f"{label(item)}: {exc}") from exc
        finally:
            if path is not None:
                path.unlink(missing_ok=True)

    executed = applied_state(state["profileId"], state["profileName"], executed=False)
    inv = await declare(inventory, **{STATE: executed})
    number = 0
    if profile.firmware is not None:
        fw = profile.firmware
        await step(number, fw)
        number += 1
        inv = await declare(replace(inv, firmware=Firmware(fw.name, fw.version, fw.url)))
    if profile.software:
        software = {s.name: s for s in inv.software or ()}
        for change in profile.software:
            await step(number, change)
            number += 1
            if change.action == "delete":
                software.pop(change.name, None)
            else:
                software[change.name] = Software(
                    change.name, change.version, change.software_type, change.url
                )
        inv = await declare(replace(inv, software=list(software.values())))
    for config in profile.configuration:
        await step(number, config)
        number += 1
        applied = {"name": config.name or config.config_type, "url": config.url}
        inv = await declare(inv, **{f"c8y_Configuration_{config.config_type}": applied})
    done = applied_state(state["profileId"], state["profileName"], executed=True)
    return await declare(inv, **{STATE: done})
