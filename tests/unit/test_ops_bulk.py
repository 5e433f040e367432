"""``ops watch --bulk``'s progress bar, ``ops bulk create``'s body, and what ``ops bulk
create --wait`` draws and ends with."""

from __future__ import annotations

import argparse
import io

import pytest

from fleetgate.cli import _parser
from fleetgate.domain.errors import ConfigurationError
from fleetgate.watch.bulk import BulkProgress, finished, plain_progress, progress_lines
from fleetgate.watch.bulk_command import (
    ProgressDisplay,
    check_outcome,
    create_body,
    firmware_parts,
)
from fleetgate.watch.text_table import EXIT_PARTLY_FAILED, PartlyFailed, exit_status

BODY = {
    "id": "7",
    "status": "IN_PROGRESS",
    "generalStatus": "EXECUTING_WITH_ERRORS",
    "progress": {"all": 6, "pending": 2, "executing": 1, "successful": 2, "failed": 1},
    "fleetgate_RolloutStatus": {"state": "PAUSED", "targets": 10, "waiting": 4, "skipped": 0,
                                "reason": "Abort criterion met"},
    "lastUpdated": "2030-01-01T00:00:00.000Z",
}  # fmt: skip


def test_the_bar_shows_counts_per_status_and_the_reason() -> None:
    progress = BulkProgress.from_json(BODY)
    first, second = progress_lines(progress, width=100)
    assert first.startswith("bulk 7 · EXECUTING_WITH_ERRORS · PAUSED [")
    assert first.endswith("] 3/10")
    assert len(first) <= 100
    for mark in ("##", "x", ">"):
        assert mark in first
    for part in ("PENDING 2", "FAILED 1", "Abort criterion"):
        assert part in second
    assert plain_progress(progress).split("\t")[:4] == [
        "bulk",
        "7",
        "EXECUTING_WITH_ERRORS",
        "PAUSED",
    ]


def test_create_takes_a_firmware_shortcut() -> None:
    args = argparse.Namespace(
        firmware="fw,2.0,http://x/fw.bin", prototype=None, start="2030-01-01T00:00:00Z",
        ramp=0.5, group="12", failed_parent=None, rollout='{"canary": {"size": 2}}', note=None,
    )  # fmt: skip
    body = create_body(args)
    assert body["groupId"] == "12"
    assert body["operationPrototype"]["c8y_Firmware"]["version"] == "2.0"
    assert body["fleetgate_Rollout"] == {"canary": {"size": 2}}
    assert body["creationRamp"] == 0.5


def _ended(general_status: str, **progress: int) -> BulkProgress:
    return BulkProgress.from_json(
        {"id": "9", "status": "COMPLETED", "generalStatus": general_status,
         "progress": {"all": 4, **progress}}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("general_status", "done"),
    [
        ("SCHEDULED", False),
        ("EXECUTING", False),
        ("EXECUTING_WITH_ERRORS", False),
        ("SUCCESSFUL", True),
        ("FAILED", True),
        ("CANCELED", True),
    ],
)
def test_wait_ends_when_the_bulk_operation_has_finished(general_status: str, done: bool) -> None:
    assert finished(_ended(general_status)) is done


def test_wait_exits_0_only_when_every_operation_succeeded() -> None:
    check_outcome(_ended("SUCCESSFUL", successful=4))  # no error: exit status 0
    for general_status in ("FAILED", "CANCELED"):
        with pytest.raises(PartlyFailed) as caught:
            check_outcome(_ended(general_status, successful=3, failed=1))
        assert exit_status(caught.value) == EXIT_PARTLY_FAILED == 7
        assert str(caught.value) == (
            f"bulk 9 {general_status}: 3 successful, 1 failed, 0 skipped of 4"
        )


def test_piped_the_display_prints_one_line_per_change() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    executing = _ended("EXECUTING", pending=4)
    for progress in (executing, executing, _ended("SUCCESSFUL", successful=4)):
        display.show(progress)
    lines = stream.getvalue().splitlines()
    assert [line.split("\t")[2] for line in lines] == ["EXECUTING", "SUCCESSFUL"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place() -> None:
    stream = _Terminal()
    display = ProgressDisplay(stream)
    display.show(_ended("EXECUTING", pending=4))
    first = stream.getvalue()
    assert not first.startswith("\x1b")  # nothing to move back over yet
    assert first.count("\n") == 2
    display.show(_ended("SUCCESSFUL", successful=4))
    again = stream.getvalue()[len(first) :]
    assert again.startswith("\x1b[2F\x1b[J")  # two lines up, erased, drawn again
    assert "SUCCESSFUL 4" in again


def test_wait_is_a_flag_of_create() -> None:
    argv = ["ops", "bulk", "create", "--group", "5", "--firmware", "fw,2,http://x/fw.bin"]
    assert _parser().parse_args([*argv, "--wait"]).wait is True
    assert _parser().parse_args(argv).wait is False


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("fw,2.0,http://x/fw.bin", ("fw", "2.0", "http://x/fw.bin")),
        ("fw,2.0", ("fw", "2.0", None)),
        ("fw,2.0,http://x/a,b.bin", ("fw", "2.0", "http://x/a,b.bin")),  # a URL with a comma
    ],
)
def test_the_firmware_flag_s_parts(value: str, parts: tuple[str, str, str | None]) -> None:
    assert firmware_parts(value) == parts


@pytest.mark.parametrize("value", ["fw", "fw,", ",2.0", "fw,2.0,"])
def test_a_firmware_flag_without_name_or_version_is_a_usage_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"NAME,VERSION\[,URL\]"):
        firmware_parts(value)


def test_without_a_url_create_takes_the_repository_s() -> None:
    args = argparse.Namespace(
        firmware="fw,2.0", prototype=None, start=None, ramp=0.0, group="12",
        failed_parent=None, rollout=None, note=None,
    )  # fmt: skip
    body = create_body(args, "http://repo/fw-2.0.bin")
    assert body["operationPrototype"]["c8y_Firmware"] == {
        "name": "fw",
        "version": "2.0",
        "url": "http://repo/fw-2.0.bin",
    }
    with pytest.raises(ConfigurationError):
        create_body(args)  # nothing looked up: no URL
