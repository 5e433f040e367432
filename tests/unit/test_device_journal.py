"""The journal decides, for each arriving command, whether the device acts on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetgate.device import IllegalStatus, OperationJournal, Status
from fleetgate.device.journal import Action, Admission, FinalStatus


def test_the_same_id_twice_is_executed_once() -> None:
    journal = OperationJournal()
    assert journal.admit("1") == Admission(Action.EXECUTE)
    assert journal.admit("1") == Admission(Action.IGNORE)
    assert journal.running("1")


def test_a_finished_id_is_reported_again_with_its_final_status() -> None:
    journal = OperationJournal()
    journal.admit("1")
    journal.finish("1", Status.FAILED, "SHA-256 mismatch")
    assert not journal.running("1")
    again = journal.admit("1")
    assert again == Admission(Action.REPORT_AGAIN, FinalStatus(Status.FAILED, "SHA-256 mismatch"))
    assert journal.admit("1") == again


def test_a_released_id_is_executed_again() -> None:
    journal = OperationJournal()
    journal.admit("1")
    journal.release("1")
    assert journal.admit("1").action is Action.EXECUTE


def test_a_final_status_never_changes() -> None:
    journal = OperationJournal()
    journal.finish("1", Status.SUCCESSFUL)
    journal.finish("1", Status.SUCCESSFUL)  # the same again is fine
    journal.check("1", Status.SUCCESSFUL)
    for later in (Status.FAILED, Status.EXECUTING, Status.PENDING):
        with pytest.raises(IllegalStatus, match="SUCCESSFUL already"):
            journal.check("1", later)
    with pytest.raises(IllegalStatus):
        journal.finish("1", Status.FAILED, "late")
    assert journal.final("1") == FinalStatus(Status.SUCCESSFUL)


def test_only_final_statuses_finish() -> None:
    with pytest.raises(ValueError, match="not a final status"):
        OperationJournal().finish("1", Status.EXECUTING)


def test_the_oldest_finished_operations_are_forgotten_first() -> None:
    journal = OperationJournal(capacity=2)
    for op_id in ("1", "2", "3"):
        journal.finish(op_id, Status.SUCCESSFUL)
    assert journal.final("1") is None
    assert journal.final("2") is not None
    assert journal.admit("1").action is Action.EXECUTE


def test_finished_operations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    journal = OperationJournal(path=path)
    journal.admit("running")
    journal.finish("1", Status.SUCCESSFUL)
    journal.finish("2", Status.FAILED, "Simulated failure")

    restarted = OperationJournal(path=path)
    assert restarted.final("2") == FinalStatus(Status.FAILED, "Simulated failure")
    assert restarted.admit("1").action is Action.REPORT_AGAIN
    # An operation in progress is not remembered: the device decides afresh.
    assert restarted.admit("running").action is Action.EXECUTE


def test_an_unreadable_journal_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text("{broken")
    assert OperationJournal(path=path).final("1") is None
    path.write_text(json.dumps({"format": 1, "finished": [{"id": "1", "status": "NOPE"}]}))
    assert OperationJournal(path=path).final("1") is None
