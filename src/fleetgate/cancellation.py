"""Keeping a cancellation that aiomqtt turned into an ``MqttError``.

aiomqtt waits for its CONNACK with ``asyncio.wait_for``, which in Python 3.11 returns the
awaited future's outcome when that future completes in the same loop iteration as the
cancellation: a task cancelled just as the broker refused it gets ``MqttError`` instead
of ``CancelledError``. A retry loop catching ``MqttError`` would then swallow the
cancellation and retry for ever (CI found `fleetgate serve` ignoring SIGTERM that way).
The cancellation request is still counted on the task, so it can be recovered.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling(cause: BaseException) -> None:
    """Raise ``CancelledError`` (from ``cause``) when the current task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause
