"""Whatever order and however often reports arrive, an operation's status never goes back,
and it ends at the furthest status reported first."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.domain import operations as ops
from fleetgate.domain.operations import Move, Status

RANK = {Status.PENDING: 0, Status.EXECUTING: 1, Status.SUCCESSFUL: 2, Status.FAILED: 2}


@given(st.lists(st.sampled_from(list(Status)), max_size=30))
def test_status_only_moves_forward(reports: list[Status]) -> None:
    status = Status.PENDING
    for report in reports:
        before = status
        result = ops.move(status, report)
        if result is Move.APPLY:
            status = report
        assert RANK[status] >= RANK[before]
        if before in ops.FINAL:
            assert status == before  # a final status never changes


@given(st.lists(st.sampled_from(list(Status)), min_size=1, max_size=30), st.data())
def test_redelivery_changes_nothing(reports: list[Status], data: st.DataObject) -> None:
    """Delivering every report again (at least once, anywhere later) ends the same."""

    def apply(sequence: list[Status]) -> Status:
        status = Status.PENDING
        for report in sequence:
            if ops.move(status, report) is Move.APPLY:
                status = report
        return status

    doubled = list(reports)
    for report in reports:
        at = data.draw(st.integers(min_value=doubled.index(report) + 1, max_value=len(doubled)))
        doubled.insert(at, report)
    assert apply(doubled) == apply(reports)
