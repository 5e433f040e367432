"""What a device sends (inventory, status) and the error reports it receives, as bytes.

No I/O here: the client publishes what these functions build.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetgate.device.commands import Status
from fleetgate.domain.device_messages import DECLARATION_RESERVED, MAX_REASON, RESERVED_TYPES

__all__ = [
    "RESERVED_FRAGMENTS",
    "ErrorReport",
    "Firmware",
    "Inventory",
    "Software",
    "encode_status",
    "parse_error_report",
]

#: Keys of the managed object that belong to fleetgate, not to the device: the service
#: refuses a declaration that holds one (the same set, from the same place).
RESERVED_FRAGMENTS = DECLARATION_RESERVED


@dataclass(frozen=True)
class Firmware:
    name: str
    version: str
    url: str | None = None

    def fragment(self) -> dict[str, str]:
        body = {"name": self.name, "version": self.version}
        if self.url is not None:
            body["url"] = self.url
        return body


@dataclass(frozen=True)
class Software:
    name: str
    version: str
    software_type: str | None = None
    url: str | None = None

    def fragment(self) -> dict[str, str]:
        body = {"name": self.name, "version": self.version}
        if self.software_type is not None:
            body["softwareType"] = self.software_type
        if self.url is not None:
            body["url"] = self.url
        return body


@dataclass(frozen=True)
class Inventory:
    """What a device declares about itself (``fg/d/<id>/inventory``).

    Every field is optional; what is None is left as it is in fleetgate. ``fragments``
    carries any other fragment (``{"c8y_Hardware": {...}}``; ``None`` removes one); the
    typed fields win over a fragment of the same name.
    """

    type: str | None = None
    name: str | None = None
    supported_operations: Sequence[str] | None = None
    firmware: Firmware | None = None
    software: Sequence[Software] | None = None
    supported_configurations: Sequence[str] | None = None
    fragments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reserved = RESERVED_FRAGMENTS & set(self.fragments)
        if reserved:
            raise ValueError(f"fragments reserved to fleetgate: {', '.join(sorted(reserved))}")
        if self.type in RESERVED_TYPES:
            raise ValueError(f"type {self.type} is for repository entries and groups")

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.fragments)
        typed: dict[str, Any] = {
            "type": self.type,
            "name": self.name,
            "c8y_SupportedOperations": _listed(self.supported_operations),
            "c8y_Firmware": self.firmware.fragment() if self.firmware else None,
            "c8y_SoftwareList": (
                None if self.software is None else [s.fragment() for s in self.software]
            ),
            "c8y_SupportedConfigurations": _listed(self.supported_configurations),
        }
        body.update({key: value for key, value in typed.items() if value is not None})
        return body

    def encode(self) -> bytes:
        return json.dumps(self.payload(), separators=(",", ":")).encode()


def _listed(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else list(values)


def encode_status(op_id: str, status: Status, failure_reason: str | None = None) -> bytes:
    """The ``op/status`` payload; ``failureReason`` only with FAILED, cut to the length
    fleetgate accepts (a longer one would have the whole report refused)."""
    body = {"id": op_id, "status": status.value}
    if status is Status.FAILED and failure_reason is not None:
        if len(failure_reason) > MAX_REASON:
            failure_reason = failure_reason[: MAX_REASON - 1] + "…"
        body["failureReason"] = failure_reason
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ErrorReport:
    """What fleetgate said on ``fg/d/<id>/error`` about a message of the device."""

    error: str
    message: str
    topic: str | None = None
    operation_id: str | None = None

    def __str__(self) -> str:
        about = f" (operation {self.operation_id})" if self.operation_id else ""
        return f"{self.error}: {self.message}{about}"


def parse_error_report(data: bytes) -> ErrorReport:
    """Never fails: an unreadable report is kept as text under ``device/unreadableError``."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raw = None
    if not isinstance(raw, dict):
        return ErrorReport("device/unreadableError", data[:500].decode("utf-8", "replace"))

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    return ErrorReport(
        error=text("error") or "general/unknown",
        message=text("message") or "",
        topic=text("topic"),
        operation_id=text("id"),
    )
