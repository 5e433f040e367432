"""Bulk operations (Cumulocity's ``/devicecontrol/bulkoperations``): one operation
prototype for the devices of a group, or again for the devices whose operation failed
in an earlier bulk operation (``failedParentId``).

``status`` says how far creation went — ACTIVE (nothing created yet), IN_PROGRESS,
COMPLETED (every device has its operation), DELETED (cancelled) — and ``generalStatus``
what an operator wants to know, derived from it and the progress (:func:`general_status`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain import rollouts
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.inventory_query import Query, QueryError, parse_query
from fleetgate.domain.operations import Operation
from fleetgate.domain.rollout_fragment import parse_rollout
from fleetgate.domain.rollouts import Rollout, Tally

#: What fleetgate shows of a bulk operation's rollout state (read-only).
STATE_FRAGMENT = "fleetgate_RolloutStatus"
#: Narrows a bulk operation's group: ``{"query": "<inventory query>"}`` — only the
#: group's devices that pass it are targets (e.g. those that have not applied a profile).
TARGETS_FRAGMENT = "fleetgate_Targets"
#: On a retry operation: which operation of the same bulk operation it retries.
RETRY_FRAGMENT = "fleetgate_Retry"
#: Longest creationRamp accepted (a day between two operations).
MAX_RAMP = 86_400.0


class BulkStatus(StrEnum):
    ACTIVE = "ACTIVE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    DELETED = "DELETED"


class GeneralStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    EXECUTING = "EXECUTING"
    EXECUTING_WITH_ERRORS = "EXECUTING_WITH_ERRORS"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class TargetState(StrEnum):
    WAITING = "WAITING"
    CREATED = "CREATED"
    SKIPPED = "SKIPPED"
    CANCELED = "CANCELED"


@dataclass(frozen=True, slots=True)
class BulkOperation:
    id: int
    tenant_id: str
    group_id: int | None
    failed_parent_id: int | None
    start_date: datetime
    creation_ramp: float
    prototype: dict[str, Any]
    note: str | None
    rollout: Rollout | None
    status: BulkStatus
    paused_reason: str | None
    cancel_reason: str | None
    targets: int
    created: int
    skipped: int
    retried: int
    tally: Tally
    creation_time: datetime
    last_updated: datetime
    canary_passed: bool = False
    #: The inventory query that narrowed the group (``fleetgate_Targets.query``).
    target_query: str | None = None

    @property
    def waiting(self) -> int:
        return max(0, self.targets - self.created - self.skipped)


def general_status(bulk: BulkOperation, now: datetime) -> GeneralStatus:
    """Cumulocity's generalStatus: SCHEDULED before anything was created, then EXECUTING
    (…_WITH_ERRORS once a device failed) until every operation finished, then
    SUCCESSFUL or FAILED; CANCELED when it was cancelled before anything was created."""
    t = bulk.tally
    failed = t.failed > 0 or bulk.skipped > 0
    if bulk.status is BulkStatus.DELETED and bulk.created == 0:
        return GeneralStatus.CANCELED
    if bulk.status is BulkStatus.ACTIVE and bulk.created == 0:
        return GeneralStatus.SCHEDULED if now < bulk.start_date else GeneralStatus.EXECUTING
    if bulk.status in (BulkStatus.COMPLETED, BulkStatus.DELETED) and t.open == 0:
        if bulk.status is BulkStatus.DELETED:
            return GeneralStatus.CANCELED
        return GeneralStatus.FAILED if failed else GeneralStatus.SUCCESSFUL
    return GeneralStatus.EXECUTING_WITH_ERRORS if failed else GeneralStatus.EXECUTING


def rollout_state(bulk: BulkOperation) -> str:
    """RUNNING, PAUSED, CANCELED or DONE: whether creation goes on."""
    if bulk.status is BulkStatus.DELETED:
        return "CANCELED"
    if bulk.status is BulkStatus.COMPLETED:
        return "DONE"
    return "PAUSED" if bulk.paused_reason is not None else "RUNNING"


# --- requests ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewBulkOperation:
    """A POST's body, checked (the prototype is checked per device when it is created)."""

    start_date: datetime
    creation_ramp: float
    prototype: dict[str, Any]
    group_id: int | None = None
    failed_parent_id: int | None = None
    note: str | None = None
    rollout: Rollout | None = None
    #: ``fleetgate_Targets.query`` as given, and read (only with ``group_id``).
    target_query: str | None = None
    where: Query | None = None


@dataclass(frozen=True, slots=True)
class BulkChanges:
    """What a PUT changes (None: unchanged)."""

    start_date: datetime | None = None
    creation_ramp: float | None = None
    prototype: dict[str, Any] | None = None
    note: str | None = None
    rollout: Rollout | None = None
    rollout_given: bool = False

    def applied_to(self, bulk: BulkOperation) -> NewBulkOperation:
        return NewBulkOperation(
            start_date=self.start_date or bulk.start_date,
            creation_ramp=(
                self.creation_ramp if self.creation_ramp is not None else bulk.creation_ramp
            ),
            prototype=self.prototype if self.prototype is not None else bulk.prototype,
            group_id=bulk.group_id,
            failed_parent_id=bulk.failed_parent_id,
            note=self.note if self.note is not None else bulk.note,
            rollout=self.rollout if self.rollout_given else bulk.rollout,
            target_query=bulk.target_query,
        )


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="devicecontrol/Invalid Data")


#: Keys a POST may carry; the read-only ones (id, status …) are ignored as Cumulocity does.
_READ_ONLY = frozenset(
    {"id", "self", "status", "generalStatus", "progress", STATE_FRAGMENT, "creationTime"}
)
_WRITABLE = frozenset(
    {"groupId", "failedParentId", "startDate", "creationRamp", "operationPrototype", "note",
     rollouts.FRAGMENT, TARGETS_FRAGMENT}
)  # fmt: skip


def _check_keys(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - _WRITABLE - _READ_ONLY)
    if unknown:
        raise _invalid(
            f"Unknown fields {', '.join(unknown)} (a bulk operation has"
            f" {', '.join(sorted(_WRITABLE))})"
        )


def parse_date(value: Any, name: str = "startDate") -> datetime:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be an ISO 8601 date/time with a time zone")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(f"{name} must be an ISO 8601 date/time, not {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise _invalid(f"{name} must carry a time zone (…Z or …+01:00)")
    return parsed


def parse_ramp(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= MAX_RAMP:
        raise _invalid(
            f"creationRamp must be a number of seconds from 0 to {MAX_RAMP:g}, not {value!r}"
        )
    return float(value)


def parse_prototype(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise _invalid("operationPrototype must be an operation: an object with its command")
    if "deviceId" in value and value["deviceId"] is not None:
        # Cumulocity's clients send a deviceId in the prototype; each operation has its own.
        value = {k: v for k, v in value.items() if k != "deviceId"}
    return {k: v for k, v in value.items() if k not in ("id", "self", "status", "bulkOperationId")}


def _note(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _invalid("note must be a string")


def parse_targets(value: Any) -> tuple[str, Query]:
    """``fleetgate_Targets``: ``{"query": "<inventory query>"}`` — the text and the query
    read from it, or a 422 naming the position of what is wrong."""
    if not isinstance(value, dict) or set(value) != {"query"}:
        raise _invalid(f'{TARGETS_FRAGMENT} must be {{"query": "<inventory query>"}}')
    text = value["query"]
    if not isinstance(text, str):
        raise _invalid(f"{TARGETS_FRAGMENT}.query must be a string (an inventory query)")
    try:
        return text, parse_query(text)
    except QueryError as exc:
        raise _invalid(f"{TARGETS_FRAGMENT}.{exc.message}") from None


def parse_new(body: dict[str, Any]) -> NewBulkOperation:
    """A POST: ``groupId`` or ``failedParentId`` (never both), ``startDate``,
    ``creationRamp`` and ``operationPrototype`` (mandatory, as in Cumulocity), ``note``,
    and fleetgate's optional ``fleetgate_Rollout`` and ``fleetgate_Targets`` (with
    ``groupId`` only)."""
    _check_keys(body)
    group, parent = body.get("groupId"), body.get("failedParentId")
    if group is not None and parent is not None:
        raise _invalid("Give groupId or failedParentId, not both")
    if group is None and parent is None:
        raise _invalid("groupId (or failedParentId, to retry the failed devices) is missing")
    for key in ("startDate", "creationRamp", "operationPrototype"):
        if body.get(key) is None:
            raise _invalid(f"{key} is mandatory")
    rollout = body.get(rollouts.FRAGMENT)
    text: str | None = None
    where: Query | None = None
    if body.get(TARGETS_FRAGMENT) is not None:
        if group is None:
            raise _invalid(
                f"{TARGETS_FRAGMENT} narrows a group: it needs groupId (failedParentId"
                " takes exactly the failed devices)"
            )
        text, where = parse_targets(body[TARGETS_FRAGMENT])
    return NewBulkOperation(
        start_date=parse_date(body["startDate"]),
        creation_ramp=parse_ramp(body["creationRamp"]),
        prototype=parse_prototype(body["operationPrototype"]),
        group_id=parse_id(group, "group") if group is not None else None,
        failed_parent_id=parse_id(parent, "bulk operation") if parent is not None else None,
        note=_note(body.get("note")),
        rollout=parse_rollout(rollout) if rollout is not None else None,
        target_query=text,
        where=where,
    )


def parse_changes(body: dict[str, Any], bulk: BulkOperation) -> BulkChanges:
    """A PUT: the target (groupId, failedParentId) cannot change."""
    _check_keys(body)
    for key, current in (("groupId", bulk.group_id), ("failedParentId", bulk.failed_parent_id)):
        if key in body and body[key] is not None and str(body[key]) != str(current):
            raise _invalid(f"{key} of a bulk operation cannot be changed")
    targets = body.get(TARGETS_FRAGMENT)
    if targets is not None:
        given = parse_targets(targets)[0]
        if given != bulk.target_query:
            raise _invalid(
                f"{TARGETS_FRAGMENT} of a bulk operation cannot be changed (its devices were"
                " fixed when it was created)"
            )
    rollout_given = rollouts.FRAGMENT in body
    raw_rollout = body.get(rollouts.FRAGMENT)
    return BulkChanges(
        start_date=parse_date(body["startDate"]) if body.get("startDate") is not None else None,
        creation_ramp=(
            parse_ramp(body["creationRamp"]) if body.get("creationRamp") is not None else None
        ),
        prototype=(
            parse_prototype(body["operationPrototype"])
            if body.get("operationPrototype") is not None
            else None
        ),
        note=_note(body.get("note")),
        rollout=parse_rollout(raw_rollout) if raw_rollout is not None else None,
        rollout_given=rollout_given,
    )


@dataclass(frozen=True, slots=True)
class BulkFilter:
    statuses: tuple[BulkStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class Target:
    """One device of a bulk operation, as an operator sees it."""

    device_id: int
    position: int
    canary: bool
    state: TargetState
    attempts: int
    operation_id: int | None
    reason: str | None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A device's operation of a bulk operation, checked as a single POST would be."""

    device_id: int
    serial: str
    fragment_type: str
    description: str
    fragments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A device its operation cannot be made for, and why (the 422 a single POST gets)."""

    device_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one scheduler step did to one bulk operation (for the log and the stream)."""

    bulk: BulkOperation
    created: list[Operation] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    changed: bool = False
