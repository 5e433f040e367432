"""Message tracing's pure rules (docs/decisions/0016): the duration of a trace, the plugin's
trace events both ways, and the bound on a device's record."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain import broker_trace as bt
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.traces import (
    MAX_DURATION,
    MAX_ENTRIES,
    PREVIEW_CHARS,
    EntryKind,
    entry_of_broker_event,
    keep_newest,
    preview_text,
    trace_duration,
)

THREE_DAYS = 3 * 24 * 3600


def test_three_days_is_the_longest_trace() -> None:
    assert trace_duration(THREE_DAYS) == MAX_DURATION
    assert trace_duration(float(THREE_DAYS)) == MAX_DURATION
    with pytest.raises(ValidationFailed, match="at most 259200"):
        trace_duration(THREE_DAYS + 1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, float("nan"), float("inf"), "60", None, True, [60]])
def test_a_duration_that_is_no_whole_number_of_seconds_is_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed, match="durationSeconds"):
        trace_duration(bad)


@given(st.integers())
def test_a_duration_is_accepted_exactly_from_one_second_to_three_days(seconds: int) -> None:
    if 1 <= seconds <= THREE_DAYS:
        assert trace_duration(seconds).total_seconds() == seconds
    else:
        with pytest.raises(ValidationFailed):
            trace_duration(seconds)


_level = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1
).filter(lambda s: s != "-")
_events = st.one_of(
    st.builds(bt.ConnectAttempt, _level, st.none() | _level, st.none() | _level),
    st.builds(bt.Disconnect, _level, _level),
    st.builds(bt.Kick, _level, _level),
    st.builds(
        bt.Publish,
        _level,
        st.sampled_from(["in", "out"]),
        st.booleans(),
        st.integers(0, 2),
        st.booleans(),
        st.integers(0, 2**28),
        _level,
        st.binary(max_size=bt.PREVIEW_BYTES),
    ),
    st.builds(bt.Subscribe, _level, st.booleans(), _level),
)


@given(_events)
def test_trace_events_round_trip(event: bt.BrokerTraceEvent) -> None:
    payload = bt.encode_trace_event(event)
    assert b"\n" not in payload
    assert bt.parse_trace_event(payload) == event


@given(st.binary(max_size=200))
def test_preview_bytes_round_trip(data: bytes) -> None:
    assert bt.decode_bytes(bt.encode_bytes(data)) == data


@given(st.binary(max_size=300))
def test_garbage_is_a_value_error_never_anything_else(payload: bytes) -> None:
    with contextlib.suppress(ValueError):
        bt.parse_trace_event(payload)


def test_a_refused_connect_says_why() -> None:
    entry = entry_of_broker_event(bt.ConnectAttempt("d1", "t1/device_d1", "wrong password"))
    assert entry.kind is EntryKind.CONNECT
    assert entry.summary == "CONNECT refused: wrong password"
    assert entry.detail == {
        "accepted": False,
        "username": "t1/device_d1",
        "reason": "wrong password",
    }


@given(st.binary(max_size=5000))
def test_a_payload_preview_is_bounded_and_printable(payload: bytes) -> None:
    shown = preview_text(payload)
    assert len(shown) <= PREVIEW_CHARS
    assert all(c.isprintable() for c in shown)


@given(st.lists(st.integers(1, 10**9), unique=True, max_size=3000), st.integers(0, 2000))
def test_the_record_keeps_exactly_the_newest(ids: list[int], limit: int) -> None:
    dropped = keep_newest(ids, limit)
    kept = sorted(set(ids) - set(dropped))
    assert len(kept) == min(len(ids), limit)
    assert all(k > d for k in kept for d in dropped[-1:])
    assert keep_newest(ids) == keep_newest(ids, MAX_ENTRIES)
