"""Whatever a device publishes on its topics, beside it a valid device's statuses are
all applied, once each, in order — and nothing is retried for ever."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.domain.device_messages import Incoming
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.services.device_messages import DeviceMessages

from corpora.device_payloads import CHILD_BY_LEAF
from fakes import FakeChildren, FakeDeadLetters, FakeOperations, RecordingPublisher, unavailable

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
status_bodies = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(), st.text(max_size=25), json_values)},
    optional={
        "status": st.sampled_from(["PENDING", "EXECUTING", "SUCCESSFUL", "FAILED", "x"]),
        "failureReason": st.one_of(st.text(max_size=20), json_values),
    },
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")


#: Valid reports of hd1 for operations the fake database chokes on (odd ids) or takes.
near_misses = st.integers(1_000_001, 1_000_199).map(
    lambda i: _dumps({"id": str(i), "status": "EXECUTING"})
)
payloads = st.one_of(
    near_misses,
    st.binary(max_size=64),
    json_values.map(_dumps),
    status_bodies.map(_dumps),
    st.sampled_from([p for corpus in CHILD_BY_LEAF.values() for _, p in corpus]),
)
#: Where hd1 publishes: its own topics, or as a gateway about a child (some child ids
#: are no device ids).
places = st.one_of(
    st.sampled_from([DeviceLeaf.OP_STATUS, DeviceLeaf.OP_SYNC, DeviceLeaf.INVENTORY]).map(
        lambda leaf: str(DeviceTopic("hd1", leaf))
    ),
    st.tuples(
        st.sampled_from(["kid", "kid-2", "a:b", "$x"]), st.sampled_from(list(DeviceLeaf))
    ).map(lambda t: str(DeviceTopic(t[0], t[1], gateway="hd1"))),
)
hostile = st.lists(st.tuples(places, payloads), max_size=30)


class Declarations:
    async def __call__(self, declaration: object, last_try: bool) -> bool:
        return True


@settings(max_examples=300, deadline=None)
@given(noise=hostile, good=st.integers(1, 20), seed=st.randoms(use_true_random=False))
async def test_a_valid_devices_statuses_are_always_applied(
    noise: list[tuple[str, bytes]], good: int, seed: Any
) -> None:
    # What the edge lets through from hd1 may still be refused by the "database": every
    # odd operation id of hd1 is a value it cannot take.
    ops = FakeOperations(poison=range(1_000_001, 1_000_200, 2))
    hd1 = [Incoming(topic, payload) for topic, payload in noise]
    mine = [
        Incoming("fg/d/good/op/status", _dumps({"id": str(1_000_000 + 2 * i), "status": "FAILED"}))
        for i in range(good)
    ]
    batch = hd1 + mine
    seed.shuffle(batch)
    # The good device's messages, in the order they arrive: the order they must be applied.
    batch_good = [m for m in batch if m.topic.startswith("fg/d/good/")]
    letters, replies = FakeDeadLetters(), RecordingPublisher()
    messages = DeviceMessages(
        ops, Declarations(), letters, replies, children=FakeChildren(), is_transient=unavailable
    )

    assert await messages.handle(batch) == []

    applied_good = [r for r in ops.applied if r.device_id == "good"]
    expected = [int(json.loads(m.payload)["id"]) for m in batch_good]
    assert [r.operation_id for r in applied_good] == expected
    assert all("hd1" in (letter.device_id, letter.gateway) for letter in letters.letters)
