"""What devices send on their topics, read once at the edge into typed messages.

Every message that arrives on ``fg/d/<id>/…`` (or, from a gateway about one of its
children, on ``fg/d/<gateway>/c/<child>/…``) becomes exactly one of:

- a :class:`StatusReport` (``op/status``), a :class:`SyncRequest` (``op/sync``), a
  :class:`Declaration` (``inventory``) or, for a child only, a :class:`ConnectivityReport`
  (``connection``): checked here against everything the database would refuse, so that
  applying it can only fail when the database is away. Each names the device it is about
  (``device_id``: the child, for a child's message) and the ``gateway`` that sent it
  (None when the device speaks for itself);
- a :class:`Rejection`: why it can never be applied. The device is told on its ``error``
  topic, and the message is kept as a dead letter for operators.

Limits (docs/protocol.md, "Limits"): a payload is a UTF-8 JSON object of at most
:data:`MAX_PAYLOAD` bytes for its leaf, nested at most :data:`MAX_DEPTH` levels, with no
``NaN``/``Infinity``, no NUL character and no lone surrogate anywhere; an operation id is
a decimal integer from 1 to 2^63-1; a failure reason has at most :data:`MAX_REASON`
characters; a name or type at most :data:`MAX_TEXT`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleetgate.domain import repositories
from fleetgate.domain.binaries import IS_BINARY
from fleetgate.domain.devices import RESERVED_KEYS, is_device_id, plain_fields
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.json_input import JsonLimits, parse_json
from fleetgate.domain.operations import Status, parse_status
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic

#: Largest payload per leaf, in bytes.
MAX_PAYLOAD = {
    DeviceLeaf.INVENTORY: 256 * 1024,
    DeviceLeaf.OP_STATUS: 16 * 1024,
    DeviceLeaf.OP_SYNC: 4 * 1024,
    DeviceLeaf.CONNECTION: 4 * 1024,
}
MAX_DEPTH = 32
MAX_REASON = 10_000
MAX_TEXT = 1_000

#: Fragments fleetgate sets on a device's managed object: a declaration may not hold
#: them. (The REST API refuses ``c8y_IsBinary`` the same way: one rule, two paths.)
SERVER_FRAGMENTS = frozenset(
    {
        "c8y_IsDevice",
        "c8y_Connection",
        "c8y_Availability",
        "fleetgate_CertificateAuthority",
        IS_BINARY,
        "c8y_IsDeviceGroup",
        "c8y_IsDeviceSubgroup",
        "fleetgate_Connection",
        "fleetgate_Gateway",
        "fleetgate_Lifecycle",
    }
)
#: Every top-level key a declaration may not hold: the object's read-only keys and
#: ``owner``, and the server's fragments.
DECLARATION_RESERVED = (RESERVED_KEYS - {"name", "type"}) | SERVER_FRAGMENTS
#: Types that make a managed object something else than a device (a repository entry,
#: a group): a device cannot give itself one.
RESERVED_TYPES = frozenset(
    {
        repositories.FIRMWARE,
        repositories.FIRMWARE_BINARY,
        repositories.SOFTWARE,
        repositories.SOFTWARE_BINARY,
        repositories.CONFIGURATION,
        "c8y_DeviceGroup",
        "c8y_DeviceSubgroup",
    }
)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message as the device link received it, before it is read."""

    topic: str
    payload: bytes
    #: How often it was handed back already (a declaration waiting for its registration).
    deferrals: int = 0


@dataclass(frozen=True, slots=True)
class StatusReport:
    """``op/status``: the device moved one of its operations."""

    device_id: str
    operation_id: int
    status: Status
    failure_reason: str | None = None
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """``op/sync``: send me my open operations (a gateway's own: and its children's)."""

    device_id: str
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class Declaration:
    """``inventory``: what the device says it is. ``plain`` holds ``name`` and ``type``
    when given (a string, or None to clear); ``fragments`` the rest (None removes)."""

    device_id: str
    plain: dict[str, str | None] = field(default_factory=dict)
    fragments: dict[str, Any] = field(default_factory=dict)
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectivityReport:
    """``connection`` (children only): the gateway says whether it reaches its child."""

    device_id: str
    gateway: str
    connected: bool
    reason: str | None = None


DeviceMessage = StatusReport | SyncRequest | Declaration | ConnectivityReport


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that can never be applied, and why (``error`` is the code the device
    receives: ``<domain>/badRequest``)."""

    device_id: str
    topic: str
    error: str
    reason: str
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceError:
    """What fleetgate answers on ``fg/d/<id>/error`` about one message of the device
    (on ``fg/d/<gateway>/c/<id>/error`` about one of a child, sent by its gateway)."""

    device_id: str
    error: str
    message: str
    topic: str
    operation_id: int | None = None
    gateway: str | None = None

    @property
    def reply_topic(self) -> str:
        return str(DeviceTopic(self.device_id, DeviceLeaf.ERROR, self.gateway))

    def body(self) -> dict[str, str]:
        body = {"error": self.error, "message": self.message, "topic": self.topic}
        if self.operation_id is not None:
            body["id"] = str(self.operation_id)
        return body

    @classmethod
    def of(cls, rejection: Rejection) -> DeviceError:
        return cls(
            rejection.device_id,
            rejection.error,
            rejection.reason,
            rejection.topic,
            gateway=rejection.gateway,
        )


def _error_code(leaf: DeviceLeaf) -> str:
    if leaf is DeviceLeaf.INVENTORY:
        return "inventory/badRequest"
    if leaf is DeviceLeaf.CONNECTION:
        return "devices/badRequest"
    return "operations/badRequest"


def parse_device_message(topic: str, payload: bytes) -> DeviceMessage | Rejection | None:
    """The message on ``topic``, its rejection, or None when ``topic`` is not a device's
    topic to fleetgate (never raises)."""
    parsed = DeviceTopic.parse(topic)
    if parsed is None or parsed.leaf not in MAX_PAYLOAD:
        return None
    device_id, leaf, gateway = parsed.device_id, parsed.leaf, parsed.gateway
    if gateway is not None and not is_device_id(device_id):
        # No such child can exist: the gateway hears it on its own error topic.
        return Rejection(
            gateway,
            topic,
            _error_code(leaf),
            f"{device_id[:200]!r} cannot be a child's id: a device id is 1 to 128 printable"
            " ASCII characters without a space or any of / + # $ :",
        )
    try:
        body = parse_json(
            payload,
            JsonLimits(max_bytes=MAX_PAYLOAD[leaf], max_depth=MAX_DEPTH),
        )
        if not isinstance(body, dict):
            raise ValidationFailed("the payload must be a JSON object")
        if leaf is DeviceLeaf.OP_STATUS:
            return _status_report(device_id, body, gateway)
        if leaf is DeviceLeaf.OP_SYNC:
            return SyncRequest(device_id, gateway)
        if leaf is DeviceLeaf.CONNECTION:
            assert gateway is not None  # DeviceTopic.parse: children only
            return _connectivity(device_id, gateway, body)
        return _declaration(device_id, body, gateway)
    except ValidationFailed as exc:
        return Rejection(device_id, topic, _error_code(leaf), exc.message, gateway)


def operation_id(value: object) -> int:
    """An operation id as devices write it: a decimal string (as the REST API shows ids)
    or an integer, from 1 to 2^63-1 (ids' one rule, :func:`fleetgate.domain.ids.parse_id`)."""
    try:
        return parse_id(value, "operation")
    except ValidationFailed as exc:
        raise ValidationFailed(f'"id": {exc.message}') from None


def _status_report(device_id: str, body: dict[str, Any], gateway: str | None) -> StatusReport:
    op_id = operation_id(body.get("id"))
    status = parse_status(body.get("status"))
    reason = body.get("failureReason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed('"failureReason" must be a string')
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationFailed(f'"failureReason" is longer than {MAX_REASON} characters')
    return StatusReport(device_id, op_id, status, reason or None, gateway)


def _connectivity(device_id: str, gateway: str, body: dict[str, Any]) -> ConnectivityReport:
    status = body.get("status")
    if status not in ("CONNECTED", "DISCONNECTED"):
        raise ValidationFailed('"status" must be "CONNECTED" or "DISCONNECTED"')
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValidationFailed('"reason" must be a string')
    if reason is not None and len(reason) > MAX_TEXT:
        raise ValidationFailed(f'"reason" is longer than {MAX_TEXT} characters')
    return ConnectivityReport(device_id, gateway, status == "CONNECTED", reason or None)


def _declaration(device_id: str, body: dict[str, Any], gateway: str | None) -> Declaration:
    reserved = sorted(k for k in body if k in DECLARATION_RESERVED)
    if reserved:
        raise ValidationFailed(
            f"{', '.join(reserved)} cannot be declared by a device: fleetgate sets"
            f" {'it' if len(reserved) == 1 else 'them'}"
        )
    plain = plain_fields(body, ("name", "type"))
    for key, value in plain.items():
        if value is not None and len(value) > MAX_TEXT:
            raise ValidationFailed(f"{key} is longer than {MAX_TEXT} characters")
    if plain.get("type") in RESERVED_TYPES:
        raise ValidationFailed(
            f"type {plain['type']} is for repository entries and groups, not for devices"
        )
    fragments = {k: v for k, v in body.items() if k not in plain}
    supported = fragments.get("c8y_SupportedOperations")
    if supported is not None and not (
        isinstance(supported, list) and all(isinstance(s, str) for s in supported)
    ):
        raise ValidationFailed("c8y_SupportedOperations must be a list of strings")
    return Declaration(device_id, plain, fragments, gateway)
