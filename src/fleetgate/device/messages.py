"""What a device sends (inventory, status; a gateway: its children's connectivity) and the
error reports it receives, as bytes.

No I/O here: the client publishes what these functions build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleetgate.device.commands import Status
from fleetgate.domain.device_messages import (
    DECLARATION_RESERVED,
    MAX_PAYLOAD,
    MAX_REASON,
    MAX_TEXT,
    RESERVED_TYPES,
)
from fleetgate.domain.topics import DeviceLeaf

__all__ = [
    "RESERVED_FRAGMENTS",
    "Connectivity",
    "ErrorReport",
    "Firmware",
    "Inventory",
    "Software",
    "encode_connectivity",
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
    """The ``op/status`` payload; ``failureReason`` only with FAILED, made storable and cut
    to what fleetgate accepts (a longer one would have the whole report refused)."""
    body = {"id": op_id, "status": status.value}
    if status is Status.FAILED and failure_reason is not None:
        return _with_text(body, "failureReason", failure_reason, MAX_REASON, DeviceLeaf.OP_STATUS)
    return _encode(body)


class Connectivity(StrEnum):
    """Whether a gateway reaches one of its children (its ``connection`` topic)."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


def encode_connectivity(status: Connectivity, reason: str | None = None) -> bytes:
    """The ``connection`` payload of a child; the reason made storable and cut to what
    fleetgate accepts (a longer one would have the whole report refused)."""
    body = {"status": status.value}
    if reason:
        return _with_text(body, "reason", reason, MAX_TEXT, DeviceLeaf.CONNECTION)
    return _encode(body)


#: What PostgreSQL cannot store in text: NUL, and UTF-16 surrogates (in a Python string,
#: never a valid pair).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _encode(body: dict[str, str]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _with_text(
    body: dict[str, str], key: str, text: str, max_chars: int, leaf: DeviceLeaf
) -> bytes:
    """``body`` with ``text`` under ``key``: unstorable characters replaced by U+FFFD,
    at most ``max_chars`` characters, and the whole payload within the leaf's size limit
    (shortened with an ellipsis as needed)."""
    text = _UNSTORABLE.sub("\ufffd", text)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    while True:
        payload = _encode({**body, key: text})
        excess = len(payload) - MAX_PAYLOAD[leaf]
        if excess <= 0:
            return payload
        text = text[: max(0, len(text) - excess - 3)] + "…"  # a character is ≥ 1 byte


@dataclass(frozen=True)
class ErrorReport:
    """What fleetgate said on ``fg/d/<id>/error`` about a message of the device — or, for
    a gateway, on ``fg/d/<gateway>/c/<child>/error`` about a message about ``child``."""

    error: str
    message: str
    topic: str | None = None
    operation_id: str | None = None
    #: The gateway's child the report is about; None: the device (gateway) itself.
    child: str | None = None

    def __str__(self) -> str:
        about = f" (operation {self.operation_id})" if self.operation_id else ""
        child = f" about child {self.child}" if self.child else ""
        return f"{self.error}{child}: {self.message}{about}"


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
