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


states_of = st.builds(
    ops.OperationState,
    id=st.integers(1, 3),
    tenant_id=st.sampled_from(["t1", "t2"]),
    serial=st.sampled_from(["d1", "d2"]),
    status=st.sampled_from(list(Status)),
    fragment_type=st.sampled_from(["c8y_Restart", "c8y_UploadConfigFile"]),
    has_snapshot=st.booleans(),
    bound=st.booleans(),
)
reports_of = st.builds(
    ops.Report,
    operation_id=st.integers(1, 4),
    status=st.sampled_from(list(Status)),
    failure_reason=st.none() | st.text(max_size=5),
    serial=st.none() | st.sampled_from(["d1", "d2"]),
    tenant_id=st.none() | st.sampled_from(["t1", "t2"]),
)


@given(st.lists(states_of, max_size=3), st.lists(reports_of, max_size=12))
def test_decide_moves_only_forward_and_only_for_the_owner(
    states: list[ops.OperationState], reports: list[ops.Report]
) -> None:
    by_id = {s.id: s for s in states}
    decisions = ops.decide(by_id, reports)
    assert [d.report for d in decisions] == reports
    now = {i: s.status for i, s in by_id.items()}
    for decision in decisions:
        report, state = decision.report, by_id.get(decision.report.operation_id)
        foreign = state is None or (
            (report.serial is not None and (report.serial != state.serial or not state.bound))
            or (report.tenant_id is not None and report.tenant_id != state.tenant_id)
        )
        if foreign:
            assert decision.move is None
            continue
        assert state is not None
        assert decision.current == now[state.id]
        if decision.move is Move.APPLY:
            assert decision.status is not None
            assert RANK[decision.status] > RANK[now[state.id]] or decision.status is Status.FAILED
            assert (decision.failure_reason is not None) == (decision.status is Status.FAILED)
            now[state.id] = decision.status
    assert ops.final_moves(decisions) == {
        i: (d.status, d.failure_reason)
        for d in decisions
        if d.move is Move.APPLY and d.status is not None
        for i in [d.report.operation_id]
    }
