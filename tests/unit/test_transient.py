"""Which database failures are retried (the database was away) and which are not (the
work itself is wrong): the difference between a stall and an answer."""

from __future__ import annotations

import asyncpg
import pytest

from fleetgate.db.transient import is_transient


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.AdminShutdownError("shutting down"),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DiskFullError("disk full"),
        asyncpg.exceptions.SerializationError("could not serialize"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.QueryCanceledError("statement timeout"),
        asyncpg.InterfaceError("connection is closed"),
    ],
)
def test_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.DataError("value out of int64 range"),
        asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.exceptions.InvalidTextRepresentationError("invalid input syntax for type json"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.CheckViolationError("app_user_username_check"),
        asyncpg.exceptions.ProgramLimitExceededError("index row size exceeds"),
        RecursionError(),
        ValueError("bad"),
        TypeError("bug"),
    ],
)
def test_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_the_cause_counts() -> None:
    outer = RuntimeError("wrapped")
    outer.__cause__ = ConnectionResetError()
    assert is_transient(outer)
    context = RuntimeError("while handling")
    context.__context__ = ValueError("bad")
    assert not is_transient(context)
