"""Connecting to PostgreSQL, with asyncpg's errors translated at this boundary.

Every wait on the database is bounded (:class:`Timeouts`), and a database that cannot be
reached or does not answer in time is :class:`ServiceUnavailable`, whatever asyncpg
raised: the service pool (:func:`create_pool`) translates at the one place every adapter
passes through, ``pool.acquire()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from fleetgate.domain.errors import ConfigurationError, ServiceUnavailable

log = logging.getLogger(__name__)

#: Seconds a client is told to wait before it tries again (``Retry-After``).
RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long the service waits on PostgreSQL, in seconds. Measured by the client, so
    that they bound a server that is frozen as well as one that is slow."""

    #: Making a new connection (TCP and authentication).
    connect: float = 5.0
    #: Getting a connection of the pool: waiting for a free one, or making one.
    acquire: float = 10.0
    #: Each SQL command. The server stops a statement at the same limit too, so that a
    #: statement the service gave up on does not run on.
    command: float = 10.0


class PooledConnection(asyncpg.Connection):
    """A connection that skips asyncpg's reset round trip when it has nothing to reset.

    asyncpg resets every connection the pool takes back with one more query (advisory
    locks, cursors, ``LISTEN``, settings): a round trip per acquire, 13.5% of the service's
    CPU in the operations benchmark. fleetgate keeps none of that session state on pooled
    connections, except session advisory locks (migrations, the binaries' content locks):
    whoever takes one calls :func:`holds_session_state`, and only such a connection gets
    the full reset. An open transaction is rolled back by asyncpg either way.
    """

    _holds_session_state = False

    def holds_session_state(self) -> None:
        self._holds_session_state = True

    def get_reset_query(self) -> str:
        if not self._holds_session_state:
            return ""
        self._holds_session_state = False
        return str(super().get_reset_query())


def holds_session_state(conn: object) -> None:
    """Mark ``conn`` (a pooled connection, or the pool's proxy of one) for a full reset
    when it goes back to the pool; call it *before* taking session state."""
    mark = getattr(conn, "holds_session_state", None)
    if mark is not None:
        mark()


class BoundedPool(asyncpg.Pool):
    """The service's pool: every acquire is bounded by ``Timeouts.acquire``, and what
    fails inside ``async with pool.acquire()`` because the database is away leaves it as
    :class:`ServiceUnavailable` (``pool.fetch`` and the other shortcuts acquire too).

    A connection whose command timed out is closed at once instead of being handed back:
    on a frozen server, asyncpg's cancellation would wait as long again. The pool makes a
    new connection when one is needed; PostgreSQL coming back needs nothing else.
    """

    def __init__(self, *args: Any, timeouts: Timeouts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts
        #: Whether the last use failed because the database is away (for logging the
        #: change, not every failure).
        self.away = False

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        acquire = _BoundedAcquire(self, None)
        acquire.bound = timeout if timeout is not None else self.timeouts.acquire
        return acquire


class _BoundedAcquire(PoolAcquireContext):
    """The bound of an acquire, armed only when it may have to wait (no idle connection):
    asyncpg's own bound is ``asyncio.wait_for``, a new task and a timer per acquire, and
    the service acquires a dozen times an operation."""

    __slots__ = ("bound",)
    bound: float

    @property
    def _bounded(self) -> BoundedPool:
        assert isinstance(self.pool, BoundedPool)
        return self.pool

    async def __aenter__(self) -> Any:
        try:
            if self._bounded.get_idle_size() > 0:
                # An idle connection is handed over at once (a new one's connect is
                # bounded by the connect timeout): no timer to arm.
                return await super().__aenter__()
            async with asyncio.timeout(self.bound):
                return await super().__aenter__()
        except Exception as exc:
            raise _translated(self._bounded, exc, None, self.bound) from exc

    async def __aexit__(self, *exc_info: object) -> None:
        exc = exc_info[1] if len(exc_info) > 1 else None
        pool, connection = self._bounded, self.connection
        failed = _away(exc, connection) if isinstance(exc, Exception) else None
        if failed is not None and connection is not None and not _closed(connection):
            connection.terminate()
        try:
            await super().__aexit__(*exc_info)
        except Exception as release_failed:
            if exc is None:
                raise _translated(pool, release_failed, None, self.bound) from release_failed
            # The body's own error is the one to report.
        if failed is not None:
            assert isinstance(exc, Exception)
            raise _translated(pool, exc, failed, pool.timeouts.command) from exc
        if exc is None:
            _answered(pool)


def _away(exc: object, connection: Any) -> str | None:
    """Why ``exc`` means "the database is away" (for the log), or None when it does not."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError):
        return f"cannot reach it ({exc})"
    if isinstance(
        exc,
        asyncpg.PostgresConnectionError  # lost connections (class 08)
        | asyncpg.exceptions.OperatorInterventionError  # shutdown, cancelled (57)
        | asyncpg.exceptions.InsufficientResourcesError,  # too many connections (53)
    ):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, asyncpg.InterfaceError) and connection is not None and _closed(connection):
        return f"connection closed ({exc})"
    return None


def _closed(connection: Any) -> bool:
    """Whether ``connection`` (the pool's proxy of one) is closed. A connection that
    closed under a statement has been taken back by the pool already: its proxy refuses
    every call, ``is_closed`` too."""
    if connection is None:
        return True
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        return True


def _translated(
    pool: BoundedPool, exc: Exception, reason: str | None, waited: float | None
) -> Exception:
    """``exc`` as the service's error: :class:`ServiceUnavailable` when the database is
    away (logged when it goes away), else ``exc`` itself. ``waited``: the limit that a
    timeout hit."""
    reason = reason or _away(exc, None)
    if reason is None:
        return exc
    if not pool.away:
        pool.away = True
        log.warning("PostgreSQL is not available (%s); requests get 503 until it answers", reason)
    else:
        log.debug("PostgreSQL still not available: %s", reason)
    if isinstance(exc, TimeoutError) and waited is not None:
        problem = f"The database did not answer within {waited:g} s"
    else:
        problem = "The database cannot be reached"
    return ServiceUnavailable(f"{problem}; try again later.", retry_after=RETRY_AFTER)


def _answered(pool: BoundedPool) -> None:
    if pool.away:
        pool.away = False
        log.info("PostgreSQL answers again")


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, timeouts: Timeouts | None = None
) -> BoundedPool:
    """The service's pool (:class:`BoundedPool`); a database that cannot be reached now is
    a :class:`ConfigurationError`."""
    timeouts = timeouts or Timeouts()
    pool = BoundedPool(
        url,
        timeouts=timeouts,
        min_size=min_size,
        max_size=max_size,
        connection_class=PooledConnection,
        record_class=asyncpg.Record,
        # asyncpg.create_pool's defaults; it cannot make a pool of a subclass.
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        timeout=timeouts.connect,
        command_timeout=timeouts.command,
        server_settings={"statement_timeout": str(int(timeouts.command * 1000))},
    )
    try:
        await pool
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from exc
    return pool


@contextlib.asynccontextmanager
async def unbounded_connection(
    url: str, *, connect_timeout: float = 5.0
) -> AsyncIterator[asyncpg.Connection]:
    """One connection outside the pool, without a command timeout: for the migrations,
    which may rightly run for minutes (an index on a large table)."""
    try:
        conn = await asyncpg.connect(url, timeout=connect_timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        yield conn
    finally:
        await conn.close()


async def ping(pool: BoundedPool, timeout: float) -> None:
    """Raise :class:`ServiceUnavailable` unless the database answers within ``timeout``
    seconds (getting a connection included).

    Bounded by the pool's own timeouts rather than by cancelling it from outside: a
    statement cancelled from outside makes asyncpg wait again for the server to confirm
    the cancellation, which a frozen server never does.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with pool.acquire(timeout=timeout) as conn:
        await conn.fetchval("SELECT 1", timeout=max(deadline - loop.time(), 0.001))


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` through ``admin_url`` unless it exists."""
    try:
        conn = await asyncpg.connect(admin_url, timeout=30)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()
