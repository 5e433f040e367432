"""Dead letters: device messages that could not be applied, kept for operators.

A device whose message is refused is told why on its ``error`` topic; operators find the
message itself here (device, topic, payload, reason), because a device that does not
listen to its ``error`` topic would otherwise fail in silence. Each device id keeps its
newest dead letters only (docs/protocol.md, "Bad messages").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A device message that could not be applied, as it arrived."""

    device_id: str
    topic: str
    payload: bytes
    error: str
    reason: str
    #: The gateway that sent it, about its child ``device_id``: the letter is the
    #: gateway's tenant's, whoever holds the child's id.
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A dead letter as kept: with the tenant and device that held its device id then
    (None when none did), the payload's first bytes and its whole size."""

    id: int
    tenant_id: str | None
    managed_object_id: int | None
    device_id: str
    topic: str
    payload: bytes
    payload_size: int
    error: str
    reason: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    managed_object_id: int | None = None
    device_id: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
