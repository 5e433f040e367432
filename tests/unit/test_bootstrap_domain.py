from __future__ import annotations

import itertools

import pytest

from fleetgate.domain.bootstrap import (
    Answer,
    RateLimit,
    RequestStatus,
    check_request_id,
    device_asks,
    operator_moves,
    parse_status,
)
from fleetgate.domain.errors import ValidationFailed

W = RequestStatus.WAITING_FOR_CONNECTION
P = RequestStatus.PENDING_ACCEPTANCE
A = RequestStatus.ACCEPTED
ALLOWED = {(W, W), (P, P), (A, A), (P, A)}


@pytest.mark.parametrize(("current", "wanted"), list(itertools.product(RequestStatus, repeat=2)))
def test_operators_may_only_accept_a_pending_request(
    current: RequestStatus, wanted: RequestStatus
) -> None:
    if (current, wanted) in ALLOWED:
        assert operator_moves(current, wanted) is wanted
    else:
        with pytest.raises(ValidationFailed, match=f"{current.value} → {wanted.value}"):
            operator_moves(current, wanted)


def test_accepting_before_the_device_asked_says_why() -> None:
    with pytest.raises(ValidationFailed, match="has not asked"):
        operator_moves(W, A)


def test_a_device_asking_moves_waiting_to_pending_and_gets_credentials_once_accepted() -> None:
    assert device_asks(None) == (Answer.NO_REQUEST, None)
    assert device_asks(W) == (Answer.PENDING, P)
    assert device_asks(P) == (Answer.PENDING, P)
    assert device_asks(A) == (Answer.ISSUE, None)


def test_request_ids_are_device_ids() -> None:
    assert check_request_id("x" * 128) == "x" * 128
    with pytest.raises(ValidationFailed, match="1 to 128 characters"):
        check_request_id("x" * 129)
    for bad in ("", None, 5, "a/b", "a+b", "a#", "a b", "$SYS", " sp", "a:b", "é", "a\x00"):
        with pytest.raises(ValidationFailed):
            check_request_id(bad)


def test_unknown_status_names_the_valid_ones() -> None:
    with pytest.raises(ValidationFailed, match="WAITING_FOR_CONNECTION, PENDING_ACCEPTANCE"):
        parse_status("DONE")


def test_rate_limit_allows_a_burst_then_one_per_interval() -> None:
    now = [0.0]
    limit = RateLimit(interval=2.0, burst=3, clock=lambda: now[0])
    assert [limit.allow("d") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.allow("d") == pytest.approx(2.0)
    assert limit.allow("other") == 0.0
    now[0] = 2.0
    assert limit.allow("d") == 0.0
    assert limit.allow("d") > 0


def test_rate_limit_memory_is_bounded() -> None:
    now = [0.0]
    limit = RateLimit(interval=1.0, burst=1, clock=lambda: now[0], max_devices=10)
    for i in range(100):
        limit.allow(f"d{i}")
    assert len(limit._tokens) <= 10
