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


def test_a_gateways_children_have_journals_of_their_own() -> None:
    journal = OperationJournal()
    assert journal.admit("1").action is Action.EXECUTE
    assert journal.admit("1", device="child-a").action is Action.EXECUTE
    assert journal.admit("1", device="child-b").action is Action.EXECUTE
    journal.finish("1", Status.FAILED, "no", device="child-a")
    assert journal.final("1") is None
    assert journal.running("1", device="child-b")
    assert journal.admit("1", device="child-a") == Admission(
        Action.REPORT_AGAIN, FinalStatus(Status.FAILED, "no")
    )
    journal.finish("1", Status.SUCCESSFUL, device="child-b")  # another child: no conflict
    with pytest.raises(IllegalStatus, match="operation 1 of child-a is FAILED already"):
        journal.check("1", Status.SUCCESSFUL, device="child-a")


def test_the_capacity_is_per_device() -> None:
    journal = OperationJournal(capacity=2)
    journal.finish("1", Status.SUCCESSFUL, device="quiet")
    for op_id in ("2", "3", "4"):
        journal.finish(op_id, Status.SUCCESSFUL, device="busy")
    assert journal.final("1", device="quiet") is not None  # a busy child forgets its own only
    assert journal.final("2", device="busy") is None
    assert list(journal.finished()["busy"]) == ["3", "4"]


def test_the_file_is_a_log_of_lines_appended_per_final_status(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OperationJournal(path=path)
    journal.finish("1", Status.SUCCESSFUL)
    journal.finish("2", Status.FAILED, "bad", device="plc-7")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"format": 2},
        {"id": "1", "status": "SUCCESSFUL"},
        {"id": "2", "status": "FAILED", "failureReason": "bad", "device": "plc-7"},
    ]
    restarted = OperationJournal(path=path)
    assert restarted.finished() == journal.finished()


def test_the_file_is_rewritten_when_forgotten_entries_fill_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OperationJournal(capacity=3, path=path)
    for n in range(1, 500):
        journal.finish(str(n), Status.SUCCESSFUL, device=f"c{n % 2}")
        assert len(path.read_text().splitlines()) <= 1 + 2 * 6 + 64 + 1
    assert OperationJournal(capacity=3, path=path).finished() == journal.finished()


def test_a_line_cut_off_by_a_crash_is_skipped_and_the_file_mended(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OperationJournal(path=path)
    journal.finish("1", Status.SUCCESSFUL, device="c")
    journal.finish("2", Status.SUCCESSFUL, device="c")
    path.write_text(path.read_text()[:-9])  # the process died while writing "2"

    restarted = OperationJournal(path=path)
    assert restarted.final("1", device="c") == FinalStatus(Status.SUCCESSFUL)
    assert restarted.admit("2", device="c").action is Action.EXECUTE  # never published
    restarted.finish("3", Status.SUCCESSFUL, device="c")
    assert set(OperationJournal(path=path).finished()["c"]) == {"1", "3"}


def test_a_journal_file_of_the_first_format_is_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    entries = [{"id": "1", "status": "SUCCESSFUL"}, {"id": "2", "status": "FAILED"}]
    path.write_text(json.dumps({"format": 1, "finished": entries}))
    journal = OperationJournal(path=path)
    assert journal.final("2") == FinalStatus(Status.FAILED)
    assert path.read_text().splitlines()[0] == '{"format": 2}'
    assert OperationJournal(path=path).finished() == journal.finished()
