"""The rollout state machine, simulated against next_step: whatever the rollout and the
devices do, never more first operations than targets, never two for one device and
attempt, retries within their bound, abort thresholds respected, progress monotone."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.domain import rollouts
from fleetgate.domain.rollouts import (
    AbortCriterion,
    Action,
    Canary,
    Cancel,
    Complete,
    Create,
    Pause,
    Rate,
    Retries,
    Rollout,
    Snapshot,
    Tally,
    Wait,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)

rollout_strategy = st.builds(
    Rollout,
    canary=st.none() | st.builds(Canary, size=st.integers(1, 5),
                                 success_threshold=st.sampled_from([50.0, 100.0])),
    rate=st.none() | st.builds(Rate, per_minute=st.sampled_from([30.0, 600.0]),
                               factor=st.sampled_from([1.0, 2.0]),
                               every_successes=st.integers(0, 3)),
    abort=st.lists(st.builds(AbortCriterion, min_finished=st.integers(1, 10),
                             threshold_percentage=st.sampled_from([0.0, 10.0, 50.0]),
                             action=st.sampled_from(list(Action))), max_size=2).map(tuple),
    retries=st.none() | st.builds(Retries, max=st.integers(0, 2)),
)  # fmt: skip


@dataclass
class Device:
    canary: bool
    attempts: list[str] = field(default_factory=list)  # statuses of its operations


@dataclass
class World:
    rollout: Rollout
    devices: list[Device]
    fail: set[int]
    now: datetime = T0
    next_at: datetime | None = None
    paused: str | None = None
    closed: bool = False
    baseline: Tally = field(default_factory=Tally)
    canary_passed: bool = False

    def tally(self) -> Tally:
        latest = [d.attempts[-1] for d in self.devices if d.attempts]
        return Tally(
            pending=latest.count("PENDING"),
            successful=latest.count("SUCCESSFUL"),
            failed=latest.count("FAILED"),
        )

    def snapshot(self) -> Snapshot:
        canary = [d for d in self.devices if d.canary]
        latest = [d.attempts[-1] for d in canary if d.attempts]
        retries = self.rollout.retries
        retryable = sum(
            1 for d in self.devices
            if retries and d.attempts and d.attempts[-1] == "FAILED"
            and len(d.attempts) <= retries.max
        )  # fmt: skip
        return Snapshot(
            now=self.now, start_date=T0, creation_ramp=0, rollout=self.rollout,
            paused=self.paused is not None, closed=self.closed, tally=self.tally(),
            waiting_canary=sum(1 for d in canary if not d.attempts),
            waiting_rest=sum(1 for d in self.devices if not d.canary and not d.attempts),
            canary_targets=len(canary),
            canary=Tally(successful=latest.count("SUCCESSFUL"), failed=latest.count("FAILED")),
            canary_passed=self.canary_passed, retryable=retryable, next_creation_at=self.next_at,
            baseline=self.baseline,
        )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    rollout=rollout_strategy,
    n=st.integers(1, 25),
    fail_share=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_the_rollout_never_oversends_and_respects_its_thresholds(
    rollout: Rollout, n: int, fail_share: float, seed: int
) -> None:
    rng = random.Random(seed)
    size = rollout.canary.size if rollout.canary and rollout.canary.size else 0
    devices = [Device(canary=i < size) for i in range(n)]
    world = World(rollout, devices, {i for i in range(n) if rng.random() < fail_share})
    created_total = 0
    for _ in range(400):
        s = world.snapshot()
        before = world.tally()
        step = rollouts.next_step(s)
        if isinstance(step, Create):
            assert not world.paused
            assert not world.closed
            retry = [d for d in devices if d.attempts and d.attempts[-1] == "FAILED"
                     and rollout.retries and len(d.attempts) <= rollout.retries.max]  # fmt: skip
            new = [d for d in devices if not d.attempts and (d.canary or not step.canary_only)]
            new.sort(key=lambda d: not d.canary)
            for d in retry[: step.retries] + new[: step.new]:
                d.attempts.append("PENDING")
                created_total += 1
            world.next_at = rollouts.next_creation_after(s, step.new + step.retries, step.interval)
        elif isinstance(step, Pause):
            world.paused = step.reason
        elif isinstance(step, Cancel | Complete):
            world.closed = True
        else:
            assert isinstance(step, Wait)
        # the devices finish some operations
        for i, d in enumerate(devices):
            if d.attempts and d.attempts[-1] == "PENDING" and rng.random() < 0.5:
                d.attempts[-1] = "FAILED" if i in world.fail else "SUCCESSFUL"
        after = world.tally()
        # monotone: finished operations stay finished (a retry moves one back to open)
        assert after.successful >= before.successful
        # the operator resumes now and then
        if world.paused and rng.random() < 0.3:
            world.paused = None
            world.baseline = world.tally()
            world.canary_passed = world.canary_passed or True
        world.now += timedelta(seconds=rng.choice([0.0, 0.5, 2.0, 30.0]))
        # never more first operations than targets, never more attempts than allowed
        allowed = 1 + (rollout.retries.max if rollout.retries else 0)
        assert all(len(d.attempts) <= allowed for d in devices)
    assert created_total <= n * (1 + (rollout.retries.max if rollout.retries else 0))


@settings(max_examples=200, deadline=None)
@given(
    criterion=st.builds(AbortCriterion, min_finished=st.integers(1, 20),
                        threshold_percentage=st.floats(0, 100)),
    successful=st.integers(0, 50),
    failed=st.integers(0, 50),
)  # fmt: skip
def test_an_abort_threshold_stops_exactly_above_it(
    criterion: AbortCriterion, successful: int, failed: int
) -> None:
    s = Snapshot(
        now=T0, start_date=T0, creation_ramp=0, rollout=Rollout(abort=(criterion,)),
        paused=False, closed=False, tally=Tally(successful=successful, failed=failed),
        waiting_canary=0, waiting_rest=10,
    )  # fmt: skip
    finished = successful + failed
    over = (
        finished >= criterion.min_finished
        and finished > 0
        and (100 * failed / finished > criterion.threshold_percentage)
    )
    assert isinstance(rollouts.next_step(s), Pause) == over
