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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetgate.domain.commands import UPLOAD_CONFIG
from fleetgate.domain.errors import ValidationFailed


class Status(StrEnum):
    """An operation's status (Cumulocity's); it only moves forward, the last two are final.
    The device SDK uses this very enum."""

    PENDING = "PENDING"
    EXECUTING = "EXECUTING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (Status.SUCCESSFUL, Status.FAILED)


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
    #: The device id of the gateway its device is a child of now (None: no gateway): its
    #: command goes to ``fg/d/<gateway>/c/<serial>/op/cmd``.
    gateway: str | None = None
    #: Its device, or that device's gateway, is disabled (decision 0012): the command is
    #: not dispatched; the operation stays PENDING until the device is enabled.
    held: bool = False

    @property
    def command(self) -> Any:
        return self.fragments.get(self.fragment_type)


@dataclass(frozen=True, slots=True)
class OperationFilter:
    """What an operator's list of operations is narrowed to."""

    device_id: int | None = None
    statuses: tuple[Status, ...] = ()
    fragment_type: str | None = None
    bulk_operation_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeviceTarget:
    """What creating an operation needs to know about its device."""

    id: int
    serial: str | None
    type: str | None
    fragments: dict[str, Any] = field(default_factory=dict)


# --- status reports: the decision --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """A status a device (or an operator) reported for an operation."""

    operation_id: int
    status: Status
    failure_reason: str | None = None
    #: The device that reported it (None: an operator, who may move any of the tenant's).
    serial: str | None = None
    tenant_id: str | None = None
    #: The gateway that carried a device's report about its child (None: the device
    #: reported for itself).
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class OperationState:
    """What deciding a report needs to know of its operation (read under its row lock)."""

    id: int
    tenant_id: str
    serial: str
    status: Status
    fragment_type: str
    has_snapshot: bool
    #: Its device still holds the device id it was made for, in its tenant (decision 0006).
    bound: bool
    #: The device id of its device's gateway now (None: its device has no gateway).
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What one report does: ``move`` None when there is no such operation for its
    reporter; for :attr:`Move.APPLY`, the ``status`` (and ``failure_reason``) it lands in."""

    report: Report
    move: Move | None
    current: Status | None = None
    status: Status | None = None
    failure_reason: str | None = None


#: Why a configuration snapshot request that reports success without its upload fails.
NO_SNAPSHOT_REASON = "The device reported SUCCESSFUL without uploading the snapshot"


def _reporter_may_move(state: OperationState, report: Report) -> bool:
    """A device moves only its own operations while it holds their device id, and only
    by the way it is reached now: a child's through its gateway, another device's by
    itself; an operator only its tenant's. Anything else finds nothing (and learns
    nothing)."""
    if report.serial is not None and (
        report.serial != state.serial or not state.bound or report.gateway != state.gateway
    ):
        return False
    return report.tenant_id is None or report.tenant_id == state.tenant_id


def _landing(state: OperationState, report: Report) -> tuple[Status, str | None]:
    """Where an applied report lands, and why when that is FAILED (a reason belongs to
    FAILED only)."""
    if report.status is Status.FAILED:
        return Status.FAILED, report.failure_reason or NO_DEVICE_REASON
    if (
        report.status is Status.SUCCESSFUL
        and state.fragment_type == UPLOAD_CONFIG
        and not state.has_snapshot
    ):
        return Status.FAILED, NO_SNAPSHOT_REASON
    return report.status, None


def decide(states: Mapping[int, OperationState], reports: Sequence[Report]) -> list[Decision]:
    """Decide ``reports`` in order against the operations they name (``states``, by id).
    A batch may move one operation more than once (EXECUTING, then SUCCESSFUL): each
    report is decided against where the ones before it left the operation."""
    now = {op_id: state.status for op_id, state in states.items()}
    decisions: list[Decision] = []
    for report in reports:
        state = states.get(report.operation_id)
        if state is None or not _reporter_may_move(state, report):
            decisions.append(Decision(report, None))
            continue
        before = now[state.id]
        verdict = move(before, report.status)
        if verdict is not Move.APPLY:
            decisions.append(Decision(report, verdict, before))
            continue
        landed, why = _landing(state, report)
        now[state.id] = landed
        decisions.append(Decision(report, Move.APPLY, before, landed, why))
    return decisions


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decided report and, when it moved the operation, the operation as it left it."""

    decision: Decision
    operation: Operation | None = None

    @property
    def report(self) -> Report:
        return self.decision.report

    @property
    def move(self) -> Move | None:
        return self.decision.move

    @property
    def current(self) -> Status | None:
        return self.decision.current


def final_moves(decisions: Sequence[Decision]) -> dict[int, tuple[Status, str | None]]:
    """Operation id → the status (and reason) it ends in after ``decisions``; only the
    operations that moved."""
    final: dict[int, tuple[Status, str | None]] = {}
    for decision in decisions:
        if decision.move is Move.APPLY and decision.status is not None:
            final[decision.report.operation_id] = (decision.status, decision.failure_reason)
    return final
