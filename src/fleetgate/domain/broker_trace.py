"""What the broker plugin tells of a traced client, as pure text (docs/decisions/0016).

The service names the traced client ids with ``trace <client id> <0|1>`` control lines
(:func:`fleetgate.domain.broker_control.trace`); for those only, the plugin publishes one
event per message on :data:`TRACE_TOPIC` (readable by the service account only)::

    connect <client id> <username or -> <accepted 0|1> <reason or ->
    disconnect <client id> <reason>
    kick <client id> <reason>
    publish <client id> <in|out> <allowed 0|1> <qos> <retain 0|1> <size> <topic> <preview>
    subscribe <client id> <allowed 0|1> <filter>

Fields are percent-encoded as in control lines. ``preview`` is the payload's first
:data:`PREVIEW_BYTES` bytes, any bytes, percent-encoded; an empty payload is ``-`` (a
payload that is exactly ``-`` is written ``%2D``). ``in`` is a PUBLISH from the client,
``out`` a delivery to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleetgate.domain.broker_control import decode_field, encode_field, percent_decode

__all__ = [
    "PREVIEW_BYTES",
    "TRACE_TOPIC",
    "BrokerTraceEvent",
    "ConnectAttempt",
    "Disconnect",
    "Kick",
    "Publish",
    "Subscribe",
    "decode_bytes",
    "encode_bytes",
    "encode_trace_event",
    "parse_trace_event",
]

TRACE_TOPIC = "fleetgate/v1/trace"
#: Payload bytes a ``publish`` event shows (FG_TRACE_PREVIEW in broker/fleetgate.h).
PREVIEW_BYTES = 64

_ABSENT = "-"


@dataclass(frozen=True, slots=True)
class ConnectAttempt:
    """A CONNECT the plugin decided; ``reason`` is why it was refused (None: accepted)."""

    client_id: str
    username: str | None
    reason: str | None

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass(frozen=True, slots=True)
class Disconnect:
    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Kick:
    """The plugin threw the live session out, for ``reason``."""

    client_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Publish:
    client_id: str
    direction: Literal["in", "out"]
    allowed: bool
    qos: int
    retain: bool
    size: int
    topic: str
    preview: bytes


@dataclass(frozen=True, slots=True)
class Subscribe:
    client_id: str
    allowed: bool
    topic_filter: str


BrokerTraceEvent = ConnectAttempt | Disconnect | Kick | Publish | Subscribe


def encode_bytes(data: bytes) -> str:
    """Percent-encode raw bytes into one field (``-`` when empty)."""
    if not data:
        return _ABSENT
    if data == b"-":
        return "%2D"
    return "".join(chr(b) if 0x20 < b < 0x7F and b != 0x25 else f"%{b:02X}" for b in data)


def decode_bytes(field: str) -> bytes:
    """Inverse of :func:`encode_bytes`; raises ValueError on a malformed escape."""
    if field == _ABSENT:
        return b""
    if not field.isascii():  # the plugin escapes every byte outside printable ASCII
        raise ValueError(f"a byte field must be ASCII: {field!r}")
    return percent_decode(field)


def _optional(field: str) -> str | None:
    return None if field == _ABSENT else decode_field(field)


def _flag(field: str, line: str) -> bool:
    if field not in ("0", "1"):
        raise ValueError(f"bad flag {field!r} in trace event {line!r}")
    return field == "1"


def _number(field: str, line: str) -> int:
    if not (field.isascii() and field.isdigit()):
        raise ValueError(f"bad number {field!r} in trace event {line!r}")
    return int(field)


def parse_trace_event(payload: bytes) -> BrokerTraceEvent:
    """Parse one event from :data:`TRACE_TOPIC`; raises ValueError on anything else."""
    try:
        line = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"trace event is not ASCII: {payload[:100]!r}") from exc
    verb, *parts = line.split(" ")
    if not all(parts):
        raise ValueError(f"empty field in trace event {line!r}")
    shapes = {"connect": 4, "disconnect": 2, "kick": 2, "publish": 8, "subscribe": 3}
    if shapes.get(verb) != len(parts):
        raise ValueError(f"unexpected trace event {line[:200]!r}")
    client_id = decode_field(parts[0])
    if verb == "connect":
        accepted = _flag(parts[2], line)
        reason = _optional(parts[3])
        if accepted != (reason is None):
            raise ValueError(f"an accepted connect has no reason, a refused one has: {line!r}")
        return ConnectAttempt(client_id, _optional(parts[1]), reason)
    if verb == "disconnect":
        return Disconnect(client_id, decode_field(parts[1]))
    if verb == "kick":
        return Kick(client_id, decode_field(parts[1]))
    if verb == "subscribe":
        return Subscribe(client_id, _flag(parts[1], line), decode_field(parts[2]))
    direction = parts[1]
    if direction not in ("in", "out"):
        raise ValueError(f"bad direction in trace event {line!r}")
    return Publish(
        client_id,
        "in" if direction == "in" else "out",
        _flag(parts[2], line),
        _number(parts[3], line),
        _flag(parts[4], line),
        _number(parts[5], line),
        decode_field(parts[6]),
        decode_bytes(parts[7]),
    )


def _bit(value: bool) -> str:
    return "1" if value else "0"


def encode_trace_event(event: BrokerTraceEvent) -> bytes:
    """The payload the plugin publishes for ``event`` (for tests and fakes)."""
    cid = encode_field(event.client_id)
    if isinstance(event, ConnectAttempt):
        fields = [
            "connect",
            cid,
            _ABSENT if event.username is None else encode_field(event.username),
            _bit(event.accepted),
            _ABSENT if event.reason is None else encode_field(event.reason),
        ]
    elif isinstance(event, Disconnect):
        fields = ["disconnect", cid, encode_field(event.reason)]
    elif isinstance(event, Kick):
        fields = ["kick", cid, encode_field(event.reason)]
    elif isinstance(event, Subscribe):
        fields = ["subscribe", cid, _bit(event.allowed), encode_field(event.topic_filter)]
    else:
        fields = [
            "publish",
            cid,
            event.direction,
            _bit(event.allowed),
            str(event.qos),
            _bit(event.retain),
            str(event.size),
            encode_field(event.topic),
            encode_bytes(event.preview),
        ]
    return " ".join(fields).encode("ascii")
