"""Message tracing of one device (docs/decisions/0016): the duration rule, what a trace
record holds, and how each thing the broker or the service did becomes one entry.

A trace runs from its start for at most :data:`MAX_DURATION` (3 days: EnOS's limit); it
ends by itself at its expiry or when an operator stops it. While it runs, every entry is
kept, the newest :data:`MAX_ENTRIES` per device only. Entries are built here, from the
plugin's events (:mod:`fleetgate.domain.broker_trace`) and from what the service did with
a device's message; they are plain values with a one-line ``summary`` for terminals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from fleetgate.domain.broker_trace import (
    BrokerTraceEvent,
    ConnectAttempt,
    Disconnect,
    Kick,
    Subscribe,
)
from fleetgate.domain.errors import ValidationFailed

__all__ = [
    "MAX_DURATION",
    "MAX_ENTRIES",
    "MIN_DURATION",
    "PREVIEW_CHARS",
    "EntryKind",
    "Trace",
    "TraceEntry",
    "entry_of_broker_event",
    "keep_newest",
    "preview_text",
    "service_entry",
    "trace_duration",
]

MAX_DURATION = timedelta(days=3)
MIN_DURATION = timedelta(seconds=1)
#: Entries kept per traced device; older ones are dropped as new ones come.
MAX_ENTRIES = 1000
#: Characters of a payload shown in an entry.
PREVIEW_CHARS = 200
#: Longest text (topic, reason) an entry keeps of one field.
MAX_FIELD_CHARS = 1000


class EntryKind(StrEnum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    KICK = "kick"
    PUBLISH_IN = "publishIn"
    PUBLISH_OUT = "publishOut"
    SUBSCRIBE = "subscribe"
    #: What the service did with a message (applied, refused, deferred) or sent
    #: (an operation dispatched).
    SERVICE = "service"


def trace_duration(value: object) -> timedelta:
    """The duration of a new trace from the request's ``durationSeconds``: a whole number
    of seconds from 1 to 3 days (259,200). Anything else is a ValidationFailed saying so."""
    limit = int(MAX_DURATION.total_seconds())
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(
            f"durationSeconds must be a whole number of seconds from 1 to {limit} (3 days)"
        )
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise ValidationFailed(f"durationSeconds must be a whole number of seconds, not {value}")
    seconds = int(value)
    if seconds > limit:
        raise ValidationFailed(
            f"durationSeconds {seconds} is longer than a trace may run: at most {limit} (3 days)"
        )
    if seconds < 1:
        raise ValidationFailed(f"durationSeconds must be at least 1, not {seconds}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace of one device: who started it, when, until when."""

    tenant_id: str
    managed_object_id: int
    device_id: str
    started_by: str
    started_at: datetime
    expires_at: datetime

    def running(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One thing that happened to a traced device. ``detail`` holds the kind's own fields
    (JSON-ready); ``summary`` says it in one line."""

    device_id: str
    kind: EntryKind
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def preview_text(payload: bytes) -> str:
    """A payload's beginning as text: bytes that are not UTF-8 and control characters
    written out (``\\x00``), so that any payload shows safely; at most PREVIEW_CHARS."""
    text = payload[: PREVIEW_CHARS * 4].decode("utf-8", "backslashreplace")
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return shown[:PREVIEW_CHARS]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"


def entry_of_broker_event(event: BrokerTraceEvent) -> TraceEntry:
    """The entry for one plugin event."""
    cid = event.client_id
    if isinstance(event, ConnectAttempt):
        detail: dict[str, Any] = {"accepted": event.accepted}
        if event.username is not None:
            detail["username"] = _clip(event.username)
        if event.reason is None:
            return TraceEntry(cid, EntryKind.CONNECT, "CONNECT accepted", detail)
        detail["reason"] = _clip(event.reason)
        return TraceEntry(cid, EntryKind.CONNECT, f"CONNECT refused: {_clip(event.reason)}", detail)
    if isinstance(event, Disconnect):
        reason = _clip(event.reason)
        return TraceEntry(cid, EntryKind.DISCONNECT, f"disconnected: {reason}", {"reason": reason})
    if isinstance(event, Kick):
        reason = _clip(event.reason)
        return TraceEntry(cid, EntryKind.KICK, f"kicked: {reason}", {"reason": reason})
    if isinstance(event, Subscribe):
        verdict = "allowed" if event.allowed else "denied"
        topic = _clip(event.topic_filter)
        return TraceEntry(
            cid,
            EntryKind.SUBSCRIBE,
            f"SUBSCRIBE {topic} {verdict}",
            {"topic": topic, "allowed": event.allowed},
        )
    topic = _clip(event.topic)
    incoming = event.direction == "in"
    kind = EntryKind.PUBLISH_IN if incoming else EntryKind.PUBLISH_OUT
    what = "PUBLISH in" if incoming else "delivered out"
    verdict = "" if event.allowed else " (denied by the broker)"
    return TraceEntry(
        cid,
        kind,
        f"{what} {topic} ({event.size} bytes, QoS {event.qos}){verdict}",
        {
            "topic": topic,
            "allowed": event.allowed,
            "qos": event.qos,
            "retain": event.retain,
            "size": event.size,
            "payloadPreview": preview_text(event.preview),
            "payloadTruncated": event.size > len(event.preview),
        },
    )


def service_entry(
    device_id: str, outcome: str, topic: str | None, reason: str | None = None, **extra: Any
) -> TraceEntry:
    """What the service did: ``outcome`` is ``applied``, ``refused``, ``deferred``,
    ``operationDispatched`` or ``traceStarted``; ``topic`` the message's (None: none);
    ``reason`` says why (refusals)."""
    detail: dict[str, Any] = {"outcome": outcome, **extra}
    summary = f"service: {outcome}"
    if topic is not None:
        detail["topic"] = _clip(topic)
        summary += f" {_clip(topic)}"
    if reason is not None:
        detail["reason"] = _clip(reason)
        summary += f": {_clip(reason)}"
    return TraceEntry(device_id, EntryKind.SERVICE, summary, detail)


def keep_newest(ids: list[int], limit: int = MAX_ENTRIES) -> list[int]:
    """Of a device's entry ids, those to delete so that the newest ``limit`` stay (ids
    grow with time). The database does the same in SQL; this is its specification."""
    return sorted(ids)[: max(0, len(ids) - limit)]
