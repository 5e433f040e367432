"""Staged rollouts: what ``fleetgate_Rollout`` on a bulk operation says, and the
scheduler's next step as a pure function of the rollout's state.

A rollout may have

- a **canary**: the first ``size`` devices, or the devices of a group, get their
  operations first; the rest waits until ``successThreshold`` % of them succeeded (a
  canary that can no longer reach it pauses — or cancels — the rollout);
- a **rate**: at most ``perMinute`` operations a minute, times ``factor`` for every
  ``everySuccesses`` devices that succeeded (at most ``maxPerMinute``);
- **abort criteria**: once at least ``minFinished`` devices finished (since the last
  resume), more than ``thresholdPercentage`` % of them failed (``failureType`` FAILED:
  the device said so, TIMED_OUT: the server's timeout, ALL: either) → PAUSE or CANCEL;
- **retries**: a device whose operation failed gets a new one, up to ``max`` times.

:func:`next_step` decides, from a :class:`Snapshot` of the counts, what the scheduler
does now: wait, create (new devices and retries), pause, cancel or complete. The
adapters lock, load, write; nothing here does I/O. Reading and writing the fragment is
:mod:`fleetgate.domain.rollout_fragment`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

FRAGMENT = "fleetgate_Rollout"
#: Operations one step creates at most: a short transaction, whatever the rate.
BATCH = 500
#: How long a scheduler waits before looking again at a rollout with nothing to do.
IDLE = timedelta(seconds=0.5)


class Action(StrEnum):
    PAUSE = "PAUSE"
    CANCEL = "CANCEL"


class FailureType(StrEnum):
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ALL = "ALL"


@dataclass(frozen=True, slots=True)
class Canary:
    size: int | None = None
    group_id: int | None = None
    success_threshold: float = 100.0
    action: Action = Action.PAUSE


@dataclass(frozen=True, slots=True)
class Rate:
    per_minute: float
    factor: float = 1.0
    every_successes: int = 0
    max_per_minute: float | None = None

    def at(self, successes: int) -> float:
        """Operations a minute once ``successes`` devices succeeded."""
        if self.factor == 1.0 or self.every_successes <= 0:
            return self.per_minute
        steps = successes // self.every_successes
        # past the cap the exponent no longer matters (and must not overflow)
        grown = self.per_minute * self.factor ** min(steps, 200)
        return min(grown, self.max_per_minute) if self.max_per_minute else grown


@dataclass(frozen=True, slots=True)
class AbortCriterion:
    min_finished: int
    threshold_percentage: float
    failure_type: FailureType = FailureType.ALL
    action: Action = Action.PAUSE


@dataclass(frozen=True, slots=True)
class Retries:
    max: int
    failure_type: FailureType = FailureType.ALL


@dataclass(frozen=True, slots=True)
class Rollout:
    canary: Canary | None = None
    rate: Rate | None = None
    abort: tuple[AbortCriterion, ...] = ()
    retries: Retries | None = None


# --- the scheduler's decision -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tally:
    """The devices' latest operations by status (``timed_out`` is part of ``failed``)."""

    pending: int = 0
    executing: int = 0
    successful: int = 0
    failed: int = 0
    timed_out: int = 0

    @property
    def finished(self) -> int:
        return self.successful + self.failed

    @property
    def open(self) -> int:
        return self.pending + self.executing

    def failures(self, kind: FailureType) -> int:
        if kind is FailureType.TIMED_OUT:
            return self.timed_out
        if kind is FailureType.FAILED:
            return self.failed - self.timed_out
        return self.failed

    def minus(self, other: Tally) -> Tally:
        return Tally(
            *(max(0, a - b) for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))
        )

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.pending, self.executing, self.successful, self.failed, self.timed_out)


def fold(tally: Tally, deltas: Mapping[str, int]) -> Tally:
    """The tally after its operations' status changes: status → count moved in (or out,
    when negative); TIMED_OUT is a FAILED that the timeout sweep made."""
    timed_out = deltas.get("TIMED_OUT", 0)
    return Tally(
        pending=tally.pending + deltas.get("PENDING", 0),
        executing=tally.executing + deltas.get("EXECUTING", 0),
        successful=tally.successful + deltas.get("SUCCESSFUL", 0),
        failed=tally.failed + deltas.get("FAILED", 0) + timed_out,
        timed_out=tally.timed_out + timed_out,
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the scheduler knows of one bulk operation when it decides (under its lock)."""

    now: datetime
    start_date: datetime
    creation_ramp: float
    rollout: Rollout | None
    paused: bool
    #: Nothing more is created (cancelled or completed): only the counts move.
    closed: bool
    tally: Tally
    #: Targets with no operation yet, in the canary and in the rest.
    waiting_canary: int
    waiting_rest: int
    #: Canary targets, and the canary's latest operations.
    canary_targets: int = 0
    canary: Tally = field(default_factory=Tally)
    canary_passed: bool = False
    #: Failed targets that may be retried (attempts left, failure of the retried kind).
    retryable: int = 0
    next_creation_at: datetime | None = None
    #: The tally when an operator last resumed it (abort criteria count from there).
    baseline: Tally = field(default_factory=Tally)


@dataclass(frozen=True, slots=True)
class Wait:
    until: datetime


@dataclass(frozen=True, slots=True)
class Create:
    """Create ``retries`` retries and ``new`` first operations (canary targets first;
    only canary targets when ``canary_only``), ``interval`` seconds apart (see
    :func:`next_creation_after`)."""

    new: int
    retries: int
    canary_only: bool
    interval: float


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


@dataclass(frozen=True, slots=True)
class Complete:
    """Every target has its operation (and no retry can follow): status COMPLETED."""


Step = Wait | Create | Pause | Cancel | Complete


def interval(snapshot: Snapshot) -> float:
    """Seconds between two creations: the creationRamp, or the rate's, the longer."""
    ramp = snapshot.creation_ramp
    rollout = snapshot.rollout
    if rollout is not None and rollout.rate is not None:
        ramp = max(ramp, 60.0 / rollout.rate.at(snapshot.tally.successful))
    return ramp


def _canary_verdict(s: Snapshot) -> str | bool:
    """True: the canary passed; False: still running; a string: why it failed."""
    canary = s.rollout.canary if s.rollout is not None else None
    if canary is None or s.canary_passed or s.canary_targets == 0:
        return True
    total = s.canary_targets
    needed = math.ceil(total * canary.success_threshold / 100 - 1e-9)
    if s.canary.successful >= needed and s.waiting_canary == 0:
        return True
    most_possible = total - s.canary.failed
    if most_possible < needed:
        return (
            f"Canary failed: {s.canary.failed} of {total} canary devices failed,"
            f" {canary.success_threshold:g}% had to succeed"
        )
    return False


def _abort_reason(s: Snapshot) -> tuple[Action, str] | None:
    if s.rollout is None:
        return None
    since = s.tally.minus(s.baseline)
    for criterion in s.rollout.abort:
        finished = since.finished
        if finished < criterion.min_finished or finished == 0:
            continue
        failures = since.failures(criterion.failure_type)
        share = 100.0 * failures / finished
        if share > criterion.threshold_percentage:
            kind = {"ALL": "failed", "FAILED": "failed", "TIMED_OUT": "timed out"}[
                criterion.failure_type
            ]
            return criterion.action, (
                f"Abort criterion met: {failures} of {finished} finished devices {kind}"
                f" ({share:.1f}% > {criterion.threshold_percentage:g}%)"
            )
    return None


def next_step(s: Snapshot) -> Step:
    """What to do now. Order: nothing before the start date or while paused or closed;
    abort criteria; the canary's verdict; retries and new operations within the rate;
    COMPLETED once nothing more can be created."""
    if s.closed or s.paused:
        return Wait(s.now + IDLE)
    if s.now < s.start_date:
        return Wait(s.start_date)
    aborted = _abort_reason(s)
    if aborted is not None:
        action, reason = aborted
        return Pause(reason) if action is Action.PAUSE else Cancel(reason)
    verdict = _canary_verdict(s)
    if isinstance(verdict, str):
        assert s.rollout is not None
        assert s.rollout.canary is not None
        return Pause(verdict) if s.rollout.canary.action is Action.PAUSE else Cancel(verdict)
    canary_only = verdict is False
    waiting = s.waiting_canary + (0 if canary_only else s.waiting_rest)
    retries_possible = s.rollout is not None and s.rollout.retries is not None
    if waiting == 0 and s.retryable == 0:
        if canary_only or (retries_possible and s.tally.open > 0):
            return Wait(s.now + IDLE)  # the canary (or a retry's reason) may yet come
        return Complete()
    if s.next_creation_at is not None and s.now < s.next_creation_at:
        return Wait(s.next_creation_at)
    gap = interval(s)
    budget = BATCH if gap <= 0 else max(1, min(BATCH, _due(s, gap)))
    retries = min(s.retryable, budget)
    new = min(waiting, budget - retries)
    if new == 0 and retries == 0:
        return Wait(s.now + IDLE)
    return Create(new=new, retries=retries, canary_only=canary_only, interval=gap)


#: How far behind its rate a rollout may catch up at once (a rollout that waited long,
#: paused or with no scheduler running, is not made up for in a burst).
CATCH_UP = timedelta(seconds=1)


def _start(s: Snapshot) -> datetime:
    if s.next_creation_at is None:
        return s.now
    return max(s.next_creation_at, s.now - CATCH_UP)


def _due(s: Snapshot, gap: float) -> int:
    """Creations due by now at one per ``gap`` seconds."""
    return 1 + int((s.now - _start(s)).total_seconds() // gap)


def next_creation_after(s: Snapshot, created: int, gap: float) -> datetime:
    """When the creation after the ``created`` ones made now may happen."""
    return _start(s) + timedelta(seconds=gap * created)
