"""A cancellation that ``asyncio.wait_for`` turned into the awaited future's error."""

from __future__ import annotations

import asyncio

import pytest

from fleetgate.cancellation import raise_if_cancelling


class Refused(Exception):
    pass


async def attempt(future: asyncio.Future[None]) -> str:
    """One connection attempt as aiomqtt makes it, inside a retry loop's ``except``."""
    try:
        await asyncio.wait_for(future, 10)
    except Refused as exc:
        raise_if_cancelling(exc)
        return "retry"
    return "connected"


def cancelled_as_refused() -> asyncio.Task[str]:
    """An attempt cancelled in the loop iteration in which the broker's refusal arrives."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(attempt(future))

    def refuse_and_cancel() -> None:  # the attempt is waiting by now
        task.cancel()
        future.set_exception(Refused("not authorised"))

    asyncio.get_running_loop().call_soon(refuse_and_cancel)
    return task


async def test_a_pending_cancellation_request_is_raised() -> None:
    async def swallowed() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # requested, not yet delivered
        raise_if_cancelling(Refused("not authorised"))

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(swallowed())


async def test_the_check_raises_the_cancellation_wait_for_swallowed() -> None:
    # On 3.11 wait_for hands the refusal here; the check turns it back into the
    # cancellation (the broker test in test_serve.py shows the race is real).
    with pytest.raises(asyncio.CancelledError):
        await cancelled_as_refused()


async def test_an_error_without_a_cancellation_passes_through() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(Refused("not authorised"))
    assert await attempt(future) == "retry"
