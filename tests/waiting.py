"""Waiting for something that happens in another task or process: the one ``eventually``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import pytest

#: Check = a function that says whether the thing happened, plain or async.
Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def eventually(check: Check, what: str, *, timeout: float = 120, every: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds — a
    generous bound on waiting, never a measurement (tests do not assert times)."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what} ({timeout} s)")
