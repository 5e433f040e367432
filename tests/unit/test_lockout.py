"""The lockout rule: N failures within the window lock for M; what resets the count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleetgate.domain.lockout import NO_FAILURES, LockoutPolicy, LoginFailures, after_failure

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=3, window=timedelta(minutes=10), lock_for=timedelta(minutes=5))


def fail(times: int, *, every: timedelta = timedelta(seconds=1)) -> LoginFailures:
    failures = NO_FAILURES
    for i in range(times):
        failures = after_failure(failures, T0 + i * every, POLICY)
    return failures


def test_the_nth_failure_within_the_window_locks_for_the_lock_time() -> None:
    assert not fail(2).locked(T0 + timedelta(seconds=2))
    locked = fail(3)
    assert locked.locked_until == T0 + timedelta(seconds=2) + POLICY.lock_for
    assert locked.locked(T0 + timedelta(minutes=5))
    assert not locked.locked(T0 + timedelta(minutes=5, seconds=2))


def test_failures_further_apart_than_the_window_never_lock() -> None:
    failures = fail(10, every=timedelta(minutes=10))
    assert failures.count == 1
    assert failures.locked_until is None


def test_failures_while_locked_are_not_counted_and_do_not_extend_the_lock() -> None:
    locked = fail(3)
    assert after_failure(locked, T0 + timedelta(minutes=1), POLICY) == locked


def test_after_the_lock_ends_a_failure_starts_a_new_count() -> None:
    locked = fail(3)
    later = locked.locked_until + timedelta(seconds=1)  # type: ignore[operator]
    again = after_failure(locked, later, POLICY)
    assert again == LoginFailures(1, later, None)


def test_the_default_policy_is_five_failures_in_fifteen_minutes_for_fifteen_minutes() -> None:
    policy = LockoutPolicy()
    assert (policy.max_failures, policy.window, policy.lock_for) == (
        5,
        timedelta(minutes=15),
        timedelta(minutes=15),
    )
