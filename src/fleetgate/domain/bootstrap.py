"""Bootstrap: new device requests and who may move them where.

::

    operator registers            device asks               operator accepts
    ──────────────────► WAITING_FOR_CONNECTION ──► PENDING_ACCEPTANCE ──► ACCEPTED
                                                                            │ device asks
                                                                            ▼
                                                           credentials issued once,
                                                           request deleted

The transitions are data (``_OPERATOR_MOVES``, :func:`device_asks`); an illegal move
is a :class:`ValidationFailed` naming the move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from fleetgate.domain.devices import check_device_id
from fleetgate.domain.errors import ValidationFailed


class RequestStatus(StrEnum):
    WAITING_FOR_CONNECTION = "WAITING_FOR_CONNECTION"
    PENDING_ACCEPTANCE = "PENDING_ACCEPTANCE"
    ACCEPTED = "ACCEPTED"


W, P, A = (
    RequestStatus.WAITING_FOR_CONNECTION,
    RequestStatus.PENDING_ACCEPTANCE,
    RequestStatus.ACCEPTED,
)

#: What an operator may do with PUT: (from, to) → allowed, or the reason it is not.
_OPERATOR_MOVES: dict[tuple[RequestStatus, RequestStatus], str | None] = {
    (W, W): None,
    (P, P): None,
    (A, A): None,
    (P, A): None,
    (W, A): "the device has not asked for its credentials yet",
    (W, P): "only the device moves a request to PENDING_ACCEPTANCE, by asking",
    (P, W): "a request cannot go back to WAITING_FOR_CONNECTION",
    (A, W): "an accepted request cannot go back",
    (A, P): "an accepted request cannot go back",
}


def check_request_id(value: object) -> str:
    """A new device request id: a device id."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed("id is required and must be a string")
    return check_device_id(value)


def parse_status(value: object) -> RequestStatus:
    try:
        return RequestStatus(str(value))
    except ValueError:
        names = ", ".join(s.value for s in RequestStatus)
        raise ValidationFailed(f"status must be one of {names}, not {value!r}") from None


def operator_moves(current: RequestStatus, wanted: RequestStatus) -> RequestStatus:
    """The status after an operator's PUT; ValidationFailed (422) for an illegal move."""
    reason = _OPERATOR_MOVES[(current, wanted)]
    if reason is not None:
        raise ValidationFailed(f"illegal move {current.value} → {wanted.value}: {reason}")
    return wanted


class Answer(Enum):
    """What a device asking for its credentials is told."""

    NO_REQUEST = "no request"
    PENDING = "pending"
    ISSUE = "issue"


def device_asks(current: RequestStatus | None) -> tuple[Answer, RequestStatus | None]:
    """The answer to a device asking, and the request's status afterwards."""
    if current is None:
        return Answer.NO_REQUEST, None
    if current is A:
        return Answer.ISSUE, None  # issued once: the request is gone afterwards
    return Answer.PENDING, P


@dataclass
class RateLimit:
    """At most ``burst`` asks per device, refilled at one every ``interval`` seconds.

    In memory, per service instance: a device spraying requests at one instance is
    slowed there; the limit protects the database, not a secret.
    """

    interval: float = 2.0
    burst: int = 3
    clock: Callable[[], float] = time.monotonic
    max_devices: int = 100_000
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, key: str) -> float:
        """0 when allowed now (and counted), else the seconds to wait."""
        now = self.clock()
        tokens, since = self._tokens.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - since) / self.interval)
        if tokens < 1:
            return (1 - tokens) * self.interval
        if len(self._tokens) >= self.max_devices and key not in self._tokens:
            self._forget_full()
        self._tokens[key] = (tokens - 1, now)
        return 0.0

    def _forget_full(self) -> None:
        now = self.clock()
        full = [
            k for k, (t, s) in self._tokens.items() if t + (now - s) / self.interval >= self.burst
        ]
        for key in full or list(self._tokens)[: len(self._tokens) // 2]:
            del self._tokens[key]


@dataclass(frozen=True, slots=True)
class NewDeviceRequest:
    tenant_id: str
    id: str
    status: RequestStatus
