"""Locking an account after repeated failed logins.

A user who fails :attr:`LockoutPolicy.max_failures` times within
:attr:`LockoutPolicy.window` of the first counted failure is locked for
:attr:`LockoutPolicy.lock_for`. While locked, a login is refused before any password is
hashed, so guessing costs the service no scrypt work; a success, the lock's end after
the window, or an administrator (``PUT {"enabled": true}``) clears the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)


DEFAULT_POLICY = LockoutPolicy()


@dataclass(frozen=True, slots=True)
class LoginFailures:
    """The failed logins counted against a user (as stored with the user)."""

    count: int = 0
    first_at: datetime | None = None
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


NO_FAILURES = LoginFailures()


def after_failure(
    failures: LoginFailures, now: datetime, policy: LockoutPolicy = DEFAULT_POLICY
) -> LoginFailures:
    """The count after one more failed login at ``now``: a failure outside the window (or
    after an expired lock) starts a new count; the ``max_failures``-th locks."""
    if failures.locked(now):
        return failures  # not counted: a locked login is refused before any check
    first_at = failures.first_at
    if first_at is None or now - first_at >= policy.window or failures.locked_until:
        count, first_at = 1, now
    else:
        count = failures.count + 1
    locked_until = now + policy.lock_for if count >= policy.max_failures else None
    return LoginFailures(count, first_at, locked_until)
