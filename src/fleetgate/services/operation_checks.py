"""Whether an operation body may be sent to a device: the checks of ``POST
/devicecontrol/operations``, shared by single operations and bulk operations, so that a
device of a bulk operation is refused exactly when a single POST for it would be.

A :class:`Lookups` remembers the file and configuration-repository lookups of one body:
a bulk operation checks the same body for thousands of devices and looks each URL up once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetgate.domain import commands, profiles
from fleetgate.domain.binaries import BinaryFile
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.operations import DeviceTarget
from fleetgate.services.ports import FileResolver, OperationStore


@dataclass(frozen=True, slots=True)
class Checked:
    """An operation body accepted for one device: what its operation is made of."""

    fragment_type: str
    description: str
    fragments: dict[str, Any]
    files: dict[str, BinaryFile]


@dataclass
class Lookups:
    """Lookups already made for one tenant's body (url → file, url → repository entries)."""

    files: dict[str, BinaryFile | None] = field(default_factory=dict)
    dumps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="devicecontrol/Invalid Data")


class OperationChecks:
    def __init__(self, store: OperationStore, files: FileResolver) -> None:
        self._store = store
        self._files = files

    async def check(
        self,
        tenant_id: str,
        device: DeviceTarget,
        body: dict[str, Any],
        lookups: Lookups | None = None,
    ) -> Checked:
        """``body`` for ``device``, or ``ValidationFailed`` saying why not: not a device
        that connects, a command it did not declare, a malformed command, a file that is
        not there or not for it."""
        lookups = lookups if lookups is not None else Lookups()
        if device.serial is None:
            raise _invalid(
                f"Managed object {device.id} is not a device that connects (it has no"
                " c8y_Serial external id)"
            )
        supported = device.fragments.get("c8y_SupportedOperations")
        supported = (
            [s for s in supported if isinstance(s, str)] if isinstance(supported, list) else []
        )
        fragment_type = commands.command_fragment(body, supported)
        command = body[fragment_type]
        commands.check_command(fragment_type, command)
        if fragment_type == commands.DEVICE_PROFILE:
            await self._check_profile(tenant_id, device, body)
        files = await self.files_of(tenant_id, command, lookups)
        await self._check_files(tenant_id, device, fragment_type, command, files, lookups)
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise _invalid("description must be a string")
        fragments = {k: v for k, v in body.items() if k not in commands.OWN_KEYS}
        return Checked(
            fragment_type, description or describe(fragment_type, command, body), fragments, files
        )

    async def _check_profile(
        self, tenant_id: str, device: DeviceTarget, body: dict[str, Any]
    ) -> None:
        """A profile is applied only to a device of its type (the seed: "If a device type
        is provided, the device profile can only be assigned to devices of the specified
        type"); ``profileId`` must name one of the tenant's profiles. A bulk operation
        skips such a device with this reason."""
        profile_id, _ = commands.profile_reference(body)
        profile = await self._store.profile(tenant_id, profile_id)
        if profile is None:
            raise _invalid(
                f"profileId {profile_id} is not a device profile ({profiles.PROFILE_TYPE})"
            )
        reason = profiles.applies_to(profile.name, profile.fragments, device.type)
        if reason is not None:
            raise _invalid(reason)

    async def files_of(
        self, tenant_id: str, command: Any, lookups: Lookups | None = None
    ) -> dict[str, BinaryFile]:
        r"""The binaries the command's ``url``\ s name (url → file); other urls are left out."""
        lookups = lookups if lookups is not None else Lookups()
        files: dict[str, BinaryFile] = {}
        for url in urls(command):
            if url not in lookups.files:
                lookups.files[url] = await self._files.resolve_url(tenant_id, url)
            found = lookups.files[url]
            if found is not None:
                files[url] = found
        return files

    async def _check_files(
        self,
        tenant_id: str,
        device: DeviceTarget,
        fragment_type: str,
        command: Any,
        files: dict[str, BinaryFile],
        lookups: Lookups,
    ) -> None:
        if fragment_type == commands.DOWNLOAD_CONFIG:
            url = command["url"]
            if url not in lookups.dumps:
                lookups.dumps[url] = await self._store.configuration_dumps(tenant_id, url)
            dumps = lookups.dumps[url]
            if not dumps:
                raise _invalid(f"{url} is not a file of the configuration repository")
            reasons = [
                commands.offers_configuration(d, device.type, command.get("type")) for d in dumps
            ]
            if all(reasons):
                raise _invalid(
                    f"This configuration cannot be sent to device {device.id}: {reasons[0]}"
                )
        if fragment_type == commands.UPLOAD_CONFIG:
            declared = device.fragments.get("c8y_SupportedConfigurations")
            if isinstance(declared, list) and command["type"] not in declared:
                raise _invalid(
                    f"Device {device.id} does not support configuration type"
                    f" {command['type']!r} (its c8y_SupportedConfigurations: "
                    f"{', '.join(map(str, declared)) or 'none'})"
                )
        for url in urls(command):
            if "/inventory/binaries/" in url and url not in files:
                raise _invalid(f"No such file: {url}")


def urls(value: Any) -> Iterable[str]:
    """Every ``url`` of a command, at any depth (a profile's items are nested)."""
    if isinstance(value, list):
        for v in value:
            yield from urls(v)
    elif isinstance(value, dict):
        for key, v in value.items():
            if key == "url" and isinstance(v, str):
                yield v
            elif isinstance(v, dict | list):
                yield from urls(v)


def describe(fragment_type: str, command: Any, body: dict[str, Any]) -> str:
    """The description an operation gets when its body has none."""
    if fragment_type == commands.FIRMWARE:
        return f'Update firmware to: "{command["name"]}" (version: {command["version"]})'
    if fragment_type == commands.SOFTWARE_UPDATE:
        return "Apply software changes: " + ", ".join(
            f"{c['action']} {c['name']}" + (f" {c['version']}" if c.get("version") else "")
            for c in command
        )
    if fragment_type == commands.DOWNLOAD_CONFIG:
        return f"Send configuration of type {command.get('type') or '(none)'}"
    if fragment_type == commands.UPLOAD_CONFIG:
        return f"Retrieve {command['type']} configuration snapshot from device"
    if fragment_type == commands.DEVICE_PROFILE:
        return f"Assign device profile {body.get('profileName')} to device"
    return f"Execute {fragment_type}"
