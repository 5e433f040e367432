"""Which database failures are worth retrying.

A failure is **transient** when the same work may well succeed later without anything
changing in it: PostgreSQL is away, restarting, out of connections or resources, or the
transaction lost a race (serialization failure, deadlock). Everything else — a value the
database refuses, a constraint, a bug — fails the same way every time, and retrying it
would hold back whatever waits behind it for ever.
"""

from __future__ import annotations

import asyncpg

from fleetgate.domain.errors import ServiceUnavailable

_TRANSIENT_SQLSTATE_CLASSES = (
    "08",  # connection exception
    "53",  # insufficient resources (too many connections, disk full, out of memory)
    "57",  # operator intervention (admin shutdown, cannot connect now, query canceled)
    "58",  # system error (I/O)
)
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database was unavailable, not that
    the work was wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ServiceUnavailable):
            return True  # what the service pool makes of all of the below
        if isinstance(current, OSError | TimeoutError):
            return True  # refused, reset, timed out
        if type(current) is asyncpg.InterfaceError:
            # "connection is closed", "pool is closing"; its subclasses (DataError: a value
            # asyncpg cannot encode, such as an integer out of range) are about the work.
            return True
        if isinstance(current, asyncpg.PostgresError):
            state = current.sqlstate or ""
            return state in _TRANSIENT_SQLSTATES or state[:2] in _TRANSIENT_SQLSTATE_CLASSES
        current = current.__cause__ or current.__context__
    return False
