"""Restarting a server that died, with a small fake server (real PostgreSQL and mosquitto
are killed in tests/e2e/test_up_failures.py)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from fleetgate.domain.errors import ConfigurationError
from fleetgate.stack.supervision import RestartPolicy, keep_running

FAST = RestartPolicy(attempts=3, first_delay=0.001, max_delay=0.004, stable_after=3600)
WAIT = 30.0  # a generous bound for waiting, never an assertion about time


class FakeServer:
    """Dies when told; its next ``refusals`` starts fail."""

    def __init__(self, refusals: int = 0) -> None:
        self.refusals = refusals
        self.starts = 0
        self.started = asyncio.Event()
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def die_and_restart(self) -> None:
        """Die, and return once it has been started again."""
        self.started.clear()
        self._exit.set_result(-9)
        await asyncio.wait_for(self.started.wait(), WAIT)

    async def start(self) -> None:
        self.starts += 1
        if self.refusals:
            self.refusals -= 1
            raise ConfigurationError("port 1 is already in use")
        self._exit = asyncio.get_running_loop().create_future()
        self.started.set()

    async def wait(self) -> int | None:
        return await asyncio.shield(self._exit)

    def last_output(self) -> str:
        return "FATAL: the last words"


def test_the_pause_doubles_up_to_its_maximum_then_gives_up() -> None:
    policy = RestartPolicy(attempts=5, first_delay=0.5, max_delay=4.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, None]


async def stop(keeper: asyncio.Task[object]) -> None:
    assert not keeper.done()
    keeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keeper


async def test_a_server_that_dies_is_started_again() -> None:
    server = FakeServer(refusals=2)  # two failed starts, the third succeeds
    keeper = asyncio.create_task(keep_running("fake", server, FAST))
    await server.die_and_restart()
    assert server.starts == 3
    await stop(keeper)


async def test_it_gives_up_after_the_attempts_of_a_row_with_the_last_output() -> None:
    server = FakeServer(refusals=1)
    keeper = asyncio.create_task(keep_running("fake", server, FAST))
    await server.die_and_restart()  # attempt 1 refused, attempt 2 starts it
    # It died again before running long enough: the row goes on, one attempt is left.
    server.refusals = 5
    server._exit.set_result(-9)
    with pytest.raises(ConfigurationError, match="after 3 restarts") as raised:
        await asyncio.wait_for(keeper, WAIT)
    assert "FATAL: the last words" in str(raised.value)
    assert server.starts == 3


async def test_a_server_that_ran_long_enough_starts_a_new_row() -> None:
    server = FakeServer()
    policy = dataclasses.replace(FAST, attempts=1, stable_after=0)
    keeper = asyncio.create_task(keep_running("fake", server, policy))
    for _ in range(3):  # more deaths than attempts, each after a "long" run
        await server.die_and_restart()
    await stop(keeper)
