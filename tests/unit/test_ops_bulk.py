"""``ops watch --bulk``'s progress bar and ``ops bulk create``'s body."""

from __future__ import annotations

import argparse

from fleetgate.watch.bulk import BulkProgress, plain_progress, progress_lines
from fleetgate.watch.bulk_command import create_body

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
