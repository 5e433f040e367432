"""Keeping the embedded stack's servers running: a server that dies under ``fleetgate up``
is started again, after a pause that doubles, a bounded number of times in a row.

The service rides it out by itself: its pool makes new connections when PostgreSQL is
back (requests get 503 meanwhile), the broker bridge and the device link reconnect to
mosquitto, and the bridge pushes the plugin's state again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import NoReturn, Protocol

from fleetgate.domain.errors import ConfigurationError

log = logging.getLogger(__name__)


class Server(Protocol):
    """A child process that can be waited for and started again."""

    async def start(self) -> None:
        """Start it and return once it serves; raises ConfigurationError when it cannot."""

    async def wait(self) -> int | None:
        """Wait until it exits; its exit status."""

    def last_output(self) -> str:
        """The end of its log, for the error when it cannot be kept running."""


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """``attempts`` restarts in a row at most, the first after ``first_delay`` seconds,
    each pause twice the last up to ``max_delay``; a server that ran ``stable_after``
    seconds starts a new row."""

    attempts: int = 5
    first_delay: float = 0.5
    max_delay: float = 10.0
    stable_after: float = 60.0

    def delay(self, attempt: int) -> float | None:
        """The pause before restart number ``attempt`` of a row (from 1); None: give up."""
        if attempt > self.attempts:
            return None
        return min(self.first_delay * 2.0 ** (attempt - 1), self.max_delay)


async def keep_running(name: str, server: Server, policy: RestartPolicy) -> NoReturn:
    """Restart ``server`` (already started) whenever it exits; raise ConfigurationError,
    with the end of its log, once ``policy`` gives up. Returns only by cancellation."""
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        started = loop.time()
        status = await server.wait()
        if loop.time() - started >= policy.stable_after:
            attempt = 0
        log.error("%s exited unexpectedly (status %s)", name, status)
        while True:
            attempt += 1
            delay = policy.delay(attempt)
            if delay is None:
                raise ConfigurationError(
                    f"{name} exited and did not stay up after {policy.attempts} restarts;"
                    f" last output:\n{server.last_output()}"
                )
            log.warning(
                "restarting %s in %.1f s (attempt %d of %d)", name, delay, attempt, policy.attempts
            )
            await asyncio.sleep(delay)
            try:
                await server.start()
            except ConfigurationError as exc:
                log.warning("%s did not start again: %s", name, exc)
                continue
            log.info("%s is running again", name)
            break
