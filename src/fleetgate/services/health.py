"""Is the service alive, and is it ready to serve requests? What Kubernetes' liveness and
readiness probes ask (``docs/api.md``, "Health").

Liveness is only "the process answers": a database or broker that is away must not get
the service restarted, since a restart cannot bring them back (and every instance would
restart at once). Readiness is "requests can succeed now": the database answers within a
short time, and both broker connections are up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from fleetgate.domain.errors import ServiceUnavailable

#: Raises :class:`ServiceUnavailable` when the database does not answer within the time
#: it was made with (it bounds itself: see ``fleetgate.db.pool.ping``).
DatabaseProbe = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    up: bool
    #: Why it is down (empty when up): plain words, no addresses or library errors, since
    #: the health endpoints need no credentials.
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.up for check in self.checks)


class Health:
    """Readiness from the database and from each named connection's "is it up" flag.

    ``database_timeout``: how long ``database`` waits, for the words of a failed check.
    """

    def __init__(
        self,
        database: DatabaseProbe,
        connections: Mapping[str, Callable[[], bool]],
        *,
        database_timeout: float,
    ) -> None:
        self._database = database
        self._connections = dict(connections)
        self._database_timeout = database_timeout

    async def readiness(self) -> Readiness:
        """Ask the database and read the connections' flags."""
        try:
            await self._database()
            database = Check("database", True)
        except ServiceUnavailable:
            problem = f"does not answer (waited at most {self._database_timeout:g} s)"
            database = Check("database", False, problem)
        connections = (
            Check(name, True) if is_up() else Check(name, False, "not connected")
            for name, is_up in self._connections.items()
        )
        return Readiness((database, *connections))
