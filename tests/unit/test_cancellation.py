"""A cancellation that ``asyncio.wait_for`` turned into the awaited future's error."""

from __future__ import annotations

import asyncio

import pytest

from fleetgate.mqtt.cancellation import raise_if_cancelling


class Refused(Exception):
    pass


async def attempt(future: asyncio.Future[None], *, keep_cancellation: bool) -> str:
    """One connection attempt as aiomqtt makes it, inside a retry loop's ``except``."""
    try:
        await asyncio.wait_for(future, 10)
    except Refused as exc:
        if keep_cancellation:
            raise_if_cancelling(exc)
        return "retry"
    return "connected"


def cancelled_as_refused(*, keep_cancellation: bool) -> asyncio.Task[str]:
    """An attempt cancelled in the loop iteration in which the broker's refusal arrives."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(attempt(future, keep_cancellation=keep_cancellation))

    def refuse_and_cancel() -> None:  # the attempt is waiting by now
        task.cancel()
        future.set_exception(Refused("not authorised"))

    asyncio.get_running_loop().call_soon(refuse_and_cancel)
    return task


async def test_without_the_check_wait_for_hands_the_error_instead_of_the_cancellation() -> None:
    # The race itself, so that the next test is known to exercise it on this Python.
    task = cancelled_as_refused(keep_cancellation=False)
    outcome = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome[0], asyncio.CancelledError):
        pytest.skip("this Python's wait_for keeps the cancellation")
    assert outcome == ["retry"]  # the retry loop would go on for ever


async def test_the_check_raises_the_cancellation_again() -> None:
    with pytest.raises(asyncio.CancelledError):
        await cancelled_as_refused(keep_cancellation=True)


async def test_an_error_without_a_cancellation_passes_through() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(Refused("not authorised"))
    assert await attempt(future, keep_cancellation=True) == "retry"
