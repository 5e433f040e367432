"""Reconnect delays: random, never above the cap, and the cap grows to the maximum."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.device import ReconnectPolicy


@given(
    initial=st.floats(0.01, 10),
    factor=st.floats(1, 100),
    attempt=st.integers(0, 10_000),
    seed=st.integers(),
)
def test_delays_stay_under_the_growing_cap(
    initial: float, factor: float, attempt: int, seed: int
) -> None:
    policy = ReconnectPolicy(initial=initial, maximum=initial * factor)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0 <= delay <= min(policy.maximum, initial * 2 ** min(attempt, 62))


def test_a_fleet_spreads_out() -> None:
    rng = random.Random(1)
    policy = ReconnectPolicy(initial=1, maximum=60)
    delays = sorted(policy.delay(5, rng) for _ in range(1000))
    # Full jitter over [0, 32]: the fleet is spread over the whole interval.
    assert delays[100] < 8 < 24 < delays[900]
