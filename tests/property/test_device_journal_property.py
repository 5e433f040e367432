"""Whatever order commands and results arrive in, the device acts on an operation id
once, and a finished operation is only ever answered with its one final status."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.device import OperationJournal, Status
from fleetgate.device.journal import Action

ids = st.sampled_from(["1", "2", "3", "4"])
events = st.lists(
    st.one_of(
        st.tuples(st.just("command"), ids),
        st.tuples(st.just("finish"), ids, st.sampled_from([Status.SUCCESSFUL, Status.FAILED])),
    ),
    max_size=40,
)


@given(events=events)
def test_each_operation_runs_once_and_ends_once(events: list[tuple[object, ...]]) -> None:
    journal = OperationJournal()
    executions: dict[str, int] = {}
    finals: dict[str, Status] = {}
    for event in events:
        if event[0] == "command":
            op_id = str(event[1])
            admission = journal.admit(op_id)
            if admission.action is Action.EXECUTE:
                executions[op_id] = executions.get(op_id, 0) + 1
            if admission.action is Action.REPORT_AGAIN:
                assert admission.final is not None
                assert admission.final.status is finals[op_id]
            else:
                assert op_id not in finals
        else:
            op_id, status = str(event[1]), event[2]
            assert isinstance(status, Status)
            if op_id in finals and finals[op_id] is not status:
                continue  # would be refused (IllegalStatus); covered by the unit tests
            journal.finish(op_id, status)
            finals.setdefault(op_id, status)
    assert all(count == 1 for count in executions.values())
