"""Operations: one command for one device, and how its status may move.

The status moves only forward, by this table (Cumulocity's statuses)::

    PENDING ──► EXECUTING ──► SUCCESSFUL
       │            └───────► FAILED
       └──► SUCCESSFUL | FAILED

A status equal to the current one is a duplicate (at-least-once delivery makes them
normal) and changes nothing; any other move — backwards, or out of a final status — is
illegal. Devices and operators go through the same table.

The command fragments fleetgate knows are checked here too, before an operation exists:
what a device would receive must be well-formed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain.errors import ValidationFailed


class Status(StrEnum):
    PENDING = "PENDING"
    EXECUTING = "EXECUTING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"


OPEN: frozenset[Status] = frozenset({Status.PENDING, Status.EXECUTING})
FINAL: frozenset[Status] = frozenset({Status.SUCCESSFUL, Status.FAILED})

#: status → the statuses it may move to.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.EXECUTING, Status.SUCCESSFUL, Status.FAILED}),
    Status.EXECUTING: frozenset({Status.SUCCESSFUL, Status.FAILED}),
    Status.SUCCESSFUL: frozenset(),
    Status.FAILED: frozenset(),
}

NO_DEVICE_REASON = "The device gave no reason"


class Move(StrEnum):
    APPLY = "apply"
    DUPLICATE = "duplicate"
    ILLEGAL = "illegal"


def move(current: Status, new: Status) -> Move:
    """What reporting ``new`` does to an operation that is ``current``."""
    if new == current:
        return Move.DUPLICATE
    return Move.APPLY if new in TRANSITIONS[current] else Move.ILLEGAL


def illegal_message(operation_id: int, current: Status, new: Status) -> str:
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing: it is final"
    return f"Operation {operation_id} is {current}; it cannot move to {new} (allowed: {allowed})"


def parse_status(value: object) -> Status:
    if isinstance(value, str):
        try:
            return Status(value)
        except ValueError:
            pass
    raise ValidationFailed(
        f"status must be one of {', '.join(Status)}, not {value!r}",
        code="devicecontrol/Invalid Data",
    )


@dataclass(frozen=True, slots=True)
class Operation:
    id: int
    tenant_id: str
    device_id: int
    serial: str
    device_name: str | None
    fragment_type: str
    status: Status
    failure_reason: str | None
    description: str | None
    fragments: dict[str, Any]
    bulk_operation_id: int | None
    creation_time: datetime
    status_time: datetime

    @property
    def command(self) -> Any:
        return self.fragments.get(self.fragment_type)


# --- command fragments ----------------------------------------------------------------

FIRMWARE = "c8y_Firmware"
SOFTWARE_UPDATE = "c8y_SoftwareUpdate"
DOWNLOAD_CONFIG = "c8y_DownloadConfigFile"
UPLOAD_CONFIG = "c8y_UploadConfigFile"
KNOWN_COMMANDS = (FIRMWARE, SOFTWARE_UPDATE, DOWNLOAD_CONFIG, UPLOAD_CONFIG)

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
