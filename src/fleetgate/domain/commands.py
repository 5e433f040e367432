"""The commands operations carry: the fragments fleetgate knows (Cumulocity's), how they
are checked before an operation exists, and what their success changes in the device
record.

Devices receive what an operator created; a malformed known fragment is refused when the
operation is created, not when a device fails on it. Other fragments the device declared
(``c8y_Restart`` …) are the device's business and pass as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleetgate.domain import profiles, signing
from fleetgate.domain.binaries import BinaryFile
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id

if TYPE_CHECKING:
    from fleetgate.domain.operations import Operation


FIRMWARE = "c8y_Firmware"
SOFTWARE_UPDATE = "c8y_SoftwareUpdate"
DOWNLOAD_CONFIG = "c8y_DownloadConfigFile"
UPLOAD_CONFIG = "c8y_UploadConfigFile"
#: Applying a device profile (:mod:`fleetgate.domain.profiles`).
DEVICE_PROFILE = profiles.CONTENT
KNOWN_COMMANDS = (FIRMWARE, SOFTWARE_UPDATE, DOWNLOAD_CONFIG, UPLOAD_CONFIG, DEVICE_PROFILE)

#: Body keys that are the operation's own (fleetgate sets or derives them), never a
#: command or an extra fragment.
OWN_KEYS = frozenset(
    {"id", "self", "deviceId", "deviceName", "status", "failureReason", "description",
     "creationTime", "statusTime", "bulkOperationId", "deviceExternalIDs"}
)  # fmt: skip


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="devicecontrol/Invalid Data")


def _text(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> None:
    value = obj.get(key)
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{where}.{key} must be a non-empty string")


def check_command(fragment_type: str, value: Any) -> None:
    """Refuse a malformed known command fragment (others are the device's business)."""
    where = fragment_type
    if fragment_type == FIRMWARE:
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object with name, version and url")
        for key in ("name", "version", "url"):
            _text(value, key, where)
    elif fragment_type == SOFTWARE_UPDATE:
        if not isinstance(value, list) or not value:
            raise _invalid(f"{where} must be a non-empty list of software changes")
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise _invalid(f"{at} must be an object")
            _text(item, "name", at)
            if item.get("action") not in ("install", "delete"):
                raise _invalid(f'{at}.action must be "install" or "delete"')
            _text(item, "version", at, required=item["action"] == "install")
            _text(item, "url", at, required=item["action"] == "install")
    elif fragment_type == DOWNLOAD_CONFIG:
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object with url (and type)")
        _text(value, "url", where)
        _text(value, "type", where, required=False)
    elif fragment_type == UPLOAD_CONFIG:
        if not isinstance(value, dict):
            raise _invalid(f"{where} must be an object with the configuration type")
        _text(value, "type", where)
    elif fragment_type == DEVICE_PROFILE:
        profiles.read_content(value, where, code="devicecontrol/Invalid Data")


def profile_reference(body: dict[str, Any]) -> tuple[int, str]:
    """(profileId, profileName) of an operation applying a device profile: both are
    required, as in Cumulocity; the id must name a profile (checked by the caller)."""
    try:
        profile_id = parse_id(body.get("profileId"), "device profile")
    except ValidationFailed as exc:
        raise _invalid(f"profileId: {exc.message}") from None
    name = body.get("profileName")
    if not isinstance(name, str) or not name.strip():
        raise _invalid("profileName must be the name of the device profile applied")
    return profile_id, name


def command_fragment(body: dict[str, Any], supported: list[str]) -> str:
    """The fragment of an operation body that is its command.

    It must be one the device declared in ``c8y_SupportedOperations``; exactly one such
    fragment may be in the body.
    """
    candidates = [k for k, v in body.items() if k not in OWN_KEYS and isinstance(v, dict | list)]
    commands = [k for k in candidates if k in supported]
    if len(commands) > 1:
        raise _invalid(f"An operation carries one command; this one has {', '.join(commands)}")
    if commands:
        return commands[0]
    if not candidates:
        raise _invalid("The operation has no command fragment (c8y_Firmware, c8y_Restart …)")
    declared = ", ".join(supported) if supported else "none"
    raise _invalid(
        f"The device does not support {', '.join(candidates)}"
        f" (its c8y_SupportedOperations: {declared})"
    )


def software_list_after(current: Any, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The device's c8y_SoftwareList once ``changes`` (c8y_SoftwareUpdate) are applied."""
    by_name: dict[str, dict[str, Any]] = {}
    for item in current if isinstance(current, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            by_name[item["name"]] = item
    for change in changes:
        name = change["name"]
        if change["action"] == "delete":
            by_name.pop(name, None)
        else:
            entry = {"name": name, "version": change.get("version"), "url": change.get("url")}
            if change.get("softwareType"):
                entry["softwareType"] = change["softwareType"]
            by_name[name] = entry
    return list(by_name.values())


def configuration_fragment(config_type: str | None) -> str:
    """The device fragment that records the configuration applied for ``config_type``."""
    return f"c8y_Configuration_{config_type}" if config_type else "c8y_Configuration"


def offers_configuration(
    dump: dict[str, Any], device_type: str | None, config_type: str | None
) -> str | None:
    """Why a configuration repository entry cannot be sent to such a device, or None.

    Seed rule: only files with a matching configuration type (or none set), and of the
    device's type (or none set).
    """
    dump_config = dump.get("configurationType") or None
    if dump_config is not None and config_type is not None and dump_config != config_type:
        return f"it is for configuration type {dump_config!r}, not {config_type!r}"
    dump_device = dump.get("deviceType") or None
    if dump_device is not None and dump_device != device_type:
        return f"it is for device type {dump_device!r}, not {device_type!r}"
    return None


# --- what success changes in the device record ------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """What a successful operation's effects need to know of its device."""

    name: str | None
    type: str | None
    fragments: dict[str, Any]


#: The type of configuration repository entries.
CONFIGURATION_ENTRY_TYPE = "c8y_ConfigurationDump"


@dataclass(frozen=True, slots=True)
class ConfigurationEntry:
    """A configuration repository entry (:data:`CONFIGURATION_ENTRY_TYPE`) to make."""

    name: str
    fragments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SuccessEffects:
    """What an operation's success changes: ``fragments`` merged into the device's managed
    object; for a configuration snapshot, first a repository ``entry``, whose id
    :meth:`with_entry_id` writes into the device's record of it."""

    fragments: dict[str, Any]
    entry: ConfigurationEntry | None = None

    def with_entry_id(self, entry_id: int) -> dict[str, Any]:
        return {
            key: {**value, "snapshotId": str(entry_id)}
            if isinstance(value, dict) and "snapshotId" in value
            else value
            for key, value in self.fragments.items()
        }


def success_effects(
    op: Operation, device: DeviceRecord, snapshot_url: str | None, now: datetime
) -> SuccessEffects:
    """The device-record changes of ``op`` becoming SUCCESSFUL (the seed's rules):
    firmware and software as installed, the configuration applied, a snapshot turned into
    a repository entry under the device's type and the configuration type."""
    command = op.command
    stamp = now.isoformat()
    if op.fragment_type == FIRMWARE:
        return SuccessEffects({FIRMWARE: {k: command[k] for k in ("name", "version", "url")}})
    if op.fragment_type == SOFTWARE_UPDATE:
        current = device.fragments.get("c8y_SoftwareList")
        return SuccessEffects({"c8y_SoftwareList": software_list_after(current, command)})
    if op.fragment_type == DOWNLOAD_CONFIG:
        applied = {
            "name": command.get("name"),
            "url": command["url"],
            "time": stamp,
            "operationId": str(op.id),
        }
        return SuccessEffects({configuration_fragment(command.get("type")): applied})
    if op.fragment_type == DEVICE_PROFILE:
        return SuccessEffects(_profile_effects(op, device, stamp))
    if op.fragment_type == UPLOAD_CONFIG:
        config_type = command.get("type")
        name = f"{device.name or op.serial} {config_type} {now.strftime('%Y-%m-%d %H:%M:%S')}"
        entry = ConfigurationEntry(
            name,
            {
                "url": snapshot_url,
                "deviceType": device.type,
                "configurationType": config_type,
                "description": f"Snapshot of {config_type} from device {op.serial}"
                f" (operation {op.id})",
                "c8y_Global": {},
            },
        )
        shown = {"url": snapshot_url, "name": name, "time": stamp, "snapshotId": None}
        return SuccessEffects({configuration_fragment(config_type): shown}, entry)
    return SuccessEffects({})


def _profile_effects(op: Operation, device: DeviceRecord, stamp: str) -> dict[str, Any]:
    """A profile applied: its firmware, software and configurations as installed (the
    seed: "the device objects … are updated accordingly with the new profile
    information"), and :data:`~fleetgate.domain.profiles.STATE` executed."""
    command = op.command if isinstance(op.command, dict) else {}
    content = profiles.read_content(command)
    changes: dict[str, Any] = {}
    fw = content.firmware
    if fw is not None:
        changes[FIRMWARE] = {"name": fw.name, "version": fw.version, "url": fw.url}
    software = command.get("software")
    if isinstance(software, list) and software:
        steps = [{**s, "action": s.get("action", "install")} for s in software]
        current = device.fragments.get("c8y_SoftwareList")
        changes["c8y_SoftwareList"] = software_list_after(current, steps)
    for item in content.configuration:
        changes[configuration_fragment(item.config_type)] = {
            "name": item.name,
            "url": item.url,
            "time": stamp,
            "operationId": str(op.id),
        }
    profile_id = str(op.fragments.get("profileId", ""))
    profile_name = str(op.fragments.get("profileName", ""))
    changes[profiles.STATE] = profiles.applied_state(profile_id, profile_name, executed=True)
    return changes


# --- what a device receives --------------------------------------------------------------


def device_command(
    op: Operation, files: dict[str, BinaryFile], secret: bytes, base_url: str, expires: int
) -> dict[str, Any]:
    """The command of ``op`` as its device receives it on ``op/cmd`` (docs/protocol.md,
    "Commands"): beside every ``url`` that names one of ``files``, a ``file`` with a URL
    signed for this device until ``expires``, the SHA-256 and the size; for a snapshot
    request, where to upload it."""

    def signed(method: str, path: str) -> str:
        return signing.sign(secret, base_url, method, path, op.serial, expires).url

    def with_files(value: Any) -> Any:
        if isinstance(value, list):
            return [with_files(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: with_files(v) for k, v in value.items()}
        found = files.get(value["url"]) if isinstance(value.get("url"), str) else None
        if found is not None:
            url = signed("GET", signing.download_path(found.id))
            out["file"] = {"url": url, "sha256": found.sha256, "size": found.length}
        return out

    command: dict[str, Any] = {
        "id": str(op.id),
        "type": op.fragment_type,
        "description": op.description,
        "payload": with_files(op.command),
    }
    if op.fragment_type == UPLOAD_CONFIG:
        url = signed("PUT", signing.snapshot_path(op.id))
        command["upload"] = {"url": url, "method": "PUT"}
    if op.fragment_type == DEVICE_PROFILE:
        # What the device records in c8y_Profile while and after it applies the profile.
        command["profileId"] = str(op.fragments.get("profileId", ""))
        command["profileName"] = str(op.fragments.get("profileName", ""))
    return command
