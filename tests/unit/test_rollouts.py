"""The rollout's decisions (domain/rollouts) and reading fleetgate_Rollout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from fleetgate.domain import rollouts
from fleetgate.domain.bulk_operations import (
    BulkOperation,
    BulkStatus,
    GeneralStatus,
    general_status,
    parse_new,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.rollout_fragment import parse_rollout, rollout_json
from fleetgate.domain.rollouts import (
    AbortCriterion,
    Action,
    Canary,
    Cancel,
    Complete,
    Create,
    FailureType,
    Pause,
    Rate,
    Retries,
    Rollout,
    Snapshot,
    Tally,
    Wait,
    next_step,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def snap(**kw: object) -> Snapshot:
    base = Snapshot(
        now=T0, start_date=T0, creation_ramp=0, rollout=None, paused=False, closed=False,
        tally=Tally(), waiting_canary=0, waiting_rest=10,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_without_a_rollout_everything_is_created_in_one_batch() -> None:
    assert next_step(snap()) == Create(new=10, retries=0, canary_only=False, interval=0)
    assert next_step(snap(waiting_rest=10_000)) == Create(500, 0, False, 0)


def test_nothing_before_the_start_date_nor_while_paused_or_closed() -> None:
    later = T0 + timedelta(hours=1)
    assert next_step(snap(start_date=later)) == Wait(later)
    assert isinstance(next_step(snap(paused=True)), Wait)
    assert isinstance(next_step(snap(closed=True)), Wait)


def test_complete_once_every_target_has_its_operation() -> None:
    assert next_step(snap(waiting_rest=0, tally=Tally(pending=3))) == Complete()


def test_the_creation_ramp_spaces_creations() -> None:
    s = snap(creation_ramp=2, next_creation_at=T0 + timedelta(seconds=1))
    assert next_step(s) == Wait(T0 + timedelta(seconds=1))
    due = snap(creation_ramp=2, next_creation_at=T0)
    assert next_step(due) == Create(1, 0, False, 2)
    assert rollouts.next_creation_after(due, 1, 2) == T0 + timedelta(seconds=2)


def test_a_rate_grows_with_successes() -> None:
    rate = Rate(per_minute=60, factor=2, every_successes=10, max_per_minute=300)
    assert rate.at(0) == 60
    assert rate.at(10) == 120
    assert rate.at(25) == 240
    assert rate.at(10_000) == 300
    s = snap(rollout=Rollout(rate=rate), tally=Tally(successful=10))
    assert rollouts.interval(s) == 0.5


def test_a_long_pause_is_not_made_up_for_in_a_burst() -> None:
    s = snap(creation_ramp=0.1, next_creation_at=T0 - timedelta(hours=1))
    step = next_step(s)
    assert isinstance(step, Create)
    assert step.new <= 11


def test_the_canary_goes_first_and_must_succeed() -> None:
    rollout = Rollout(canary=Canary(size=2, success_threshold=100))
    s = snap(rollout=rollout, canary_targets=2, waiting_canary=2, waiting_rest=8)
    assert next_step(s) == Create(2, 0, True, 0)
    running = replace(s, waiting_canary=0, canary=Tally(pending=2))
    assert isinstance(next_step(running), Wait)
    failed = replace(running, canary=Tally(pending=1, failed=1))
    step = next_step(failed)
    assert isinstance(step, Pause)
    assert step.reason.startswith("Canary failed: 1 of 2")
    passed = replace(running, canary=Tally(successful=2))
    assert next_step(passed) == Create(8, 0, False, 0)


def test_a_canary_threshold_below_100_tolerates_failures_and_may_cancel() -> None:
    rollout = Rollout(canary=Canary(size=10, success_threshold=80, action=Action.CANCEL))
    s = snap(rollout=rollout, canary_targets=10, waiting_canary=0, waiting_rest=90)
    assert isinstance(next_step(replace(s, canary=Tally(successful=8, failed=2))), Create)
    assert isinstance(next_step(replace(s, canary=Tally(successful=5, failed=3))), Cancel)


def test_abort_criteria_count_from_the_last_resume() -> None:
    criterion = AbortCriterion(min_finished=10, threshold_percentage=10)
    s = snap(rollout=Rollout(abort=(criterion,)), tally=Tally(successful=8, failed=1))
    assert isinstance(next_step(s), Create)  # only 9 finished
    s = replace(s, tally=Tally(successful=8, failed=2))
    step = next_step(s)
    assert isinstance(step, Pause)
    assert "2 of 10 finished devices failed (20.0% > 10%)" in step.reason
    assert isinstance(next_step(replace(s, baseline=s.tally)), Create)  # resumed


def test_abort_by_timeouts_only() -> None:
    criterion = AbortCriterion(1, 0, FailureType.TIMED_OUT, Action.CANCEL)
    s = snap(rollout=Rollout(abort=(criterion,)), tally=Tally(successful=5, failed=3))
    assert isinstance(next_step(s), Create)
    assert isinstance(next_step(replace(s, tally=Tally(failed=1, timed_out=1))), Cancel)


def test_retries_come_first_and_wait_for_open_operations() -> None:
    rollout = Rollout(retries=Retries(max=2))
    s = snap(rollout=rollout, retryable=3, waiting_rest=5)
    assert next_step(s) == Create(5, 3, False, 0)
    s = snap(rollout=rollout, waiting_rest=0, tally=Tally(pending=1))
    assert isinstance(next_step(s), Wait)  # it may fail and be retried
    assert next_step(replace(s, tally=Tally(successful=1))) == Complete()


def test_fold_moves_counts_between_statuses() -> None:
    t = rollouts.fold(Tally(), {"PENDING": 3})
    t = rollouts.fold(t, {"PENDING": -2, "EXECUTING": 1, "TIMED_OUT": 1})
    assert t == Tally(pending=1, executing=1, failed=1, timed_out=1)


def test_the_rollout_fragment_is_read_strictly_and_shown_with_its_defaults() -> None:
    rollout = parse_rollout(
        {
            "canary": {"size": 5},
            "rate": {"perMinute": 50, "factor": 2, "everySuccesses": 1000},
            "abort": [{"minFinished": 10, "thresholdPercentage": 5, "failureType": "TIMED_OUT"}],
            "retries": {"max": 2},
        }
    )
    assert rollout.canary == Canary(size=5)
    assert rollout_json(rollout)["abort"][0]["action"] == "PAUSE"
    assert parse_rollout(rollout_json(rollout)) == rollout
    for bad, words in [
        ([], "must be an object"),
        ({"speed": 1}, "unknown keys speed"),
        ({"canary": {"size": 1, "groupId": "4"}}, "not both"),
        ({"rate": {"perMinute": "fast"}}, "rate.perMinute"),
        ({"abort": [{"thresholdPercentage": 101}]}, "abort[0].thresholdPercentage"),
        ({"abort": [{"thresholdPercentage": 5, "action": "STOP"}]}, "PAUSE, CANCEL"),
        ({"retries": {"max": 11}}, "retries.max"),
        ({"rate": {"perMinute": float("nan")}}, "rate.perMinute"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            parse_rollout(bad)
        assert words in refused.value.message


def _bulk(**kw: object) -> BulkOperation:
    base = BulkOperation(
        id=1, tenant_id="t", group_id=1, failed_parent_id=None, start_date=T0,
        creation_ramp=0, prototype={}, note=None, rollout=None, status=BulkStatus.ACTIVE,
        paused_reason=None, cancel_reason=None, targets=3, created=0, skipped=0, retried=0,
        tally=Tally(), creation_time=T0, last_updated=T0,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_general_status_follows_cumulocity() -> None:
    assert general_status(_bulk(), T0 - timedelta(1)) is GeneralStatus.SCHEDULED
    running = _bulk(status=BulkStatus.IN_PROGRESS, created=2, tally=Tally(pending=2))
    assert general_status(running, T0) is GeneralStatus.EXECUTING
    errors = replace(running, tally=Tally(pending=1, failed=1))
    assert general_status(errors, T0) is GeneralStatus.EXECUTING_WITH_ERRORS
    done = _bulk(status=BulkStatus.COMPLETED, created=3, tally=Tally(successful=3))
    assert general_status(done, T0) is GeneralStatus.SUCCESSFUL
    assert (
        general_status(replace(done, tally=Tally(successful=2, failed=1)), T0)
        is GeneralStatus.FAILED
    )
    assert general_status(_bulk(status=BulkStatus.DELETED), T0) is GeneralStatus.CANCELED


def test_a_post_needs_one_target_and_the_mandatory_fields() -> None:
    body = {"groupId": "4", "startDate": "2030-01-01T00:00:00Z", "creationRamp": 1.5,
            "operationPrototype": {"deviceId": "9", "c8y_Restart": {}}}  # fmt: skip
    new = parse_new(body)
    assert new.group_id == 4
    assert new.prototype == {"c8y_Restart": {}}  # each operation gets its own deviceId
    with pytest.raises(ValidationFailed, match="not both"):
        parse_new({**body, "failedParentId": "3"})
    with pytest.raises(ValidationFailed, match="Unknown fields"):
        parse_new({**body, "groupID": "3"})
    with pytest.raises(ValidationFailed, match="time zone"):
        parse_new({**body, "startDate": "2030-01-01T00:00:00"})
