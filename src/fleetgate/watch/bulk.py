"""A bulk operation's progress as ``ops watch --bulk`` shows it: read from the bulk
operation's JSON (the list or an ``event: bulkOperation``), drawn as a bar with the
counts per status. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetgate.watch.render import fit, inert


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True, slots=True)
class BulkProgress:
    id: str
    status: str
    general_status: str
    state: str
    reason: str
    targets: int
    waiting: int
    skipped: int
    pending: int
    executing: int
    successful: int
    failed: int
    last_updated: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> BulkProgress:
        """Raises ValueError for something that is not a bulk operation (no id)."""
        bulk_id = body.get("id")
        if not isinstance(bulk_id, str | int) or isinstance(bulk_id, bool):
            raise ValueError("not a bulk operation (no id)")
        progress = body.get("progress") if isinstance(body.get("progress"), dict) else {}
        state = body.get("fleetgate_RolloutStatus")
        state = state if isinstance(state, dict) else {}
        assert isinstance(progress, dict)
        return cls(
            id=str(bulk_id),
            status=str(body.get("status", "")),
            general_status=str(body.get("generalStatus", "")),
            state=str(state.get("state", "")),
            reason=str(state.get("reason", "")),
            targets=_int(state.get("targets")) or _int(progress.get("all")),
            waiting=_int(state.get("waiting")),
            skipped=_int(state.get("skipped")),
            pending=_int(progress.get("pending")),
            executing=_int(progress.get("executing")),
            successful=_int(progress.get("successful")),
            failed=_int(progress.get("failed")),
            last_updated=str(body.get("lastUpdated", "")),
        )

    def is_newer_than(self, other: BulkProgress) -> bool:
        return self.last_updated >= other.last_updated


FINISHED = ("SUCCESSFUL", "FAILED", "CANCELED")


def finished(p: BulkProgress) -> bool:
    """Whether nothing more will happen: generalStatus SUCCESSFUL, FAILED or CANCELED."""
    return p.general_status in FINISHED


def progress_lines(p: BulkProgress, *, width: int) -> list[str]:
    """Two lines: ``bulk 7 · EXECUTING · RUNNING [#####>....] 52/100`` and the counts
    (with the reason of a pause or cancel, if any)."""
    width = max(width, 10)
    done = p.successful + p.failed
    total = max(p.targets, 1)
    label = f"bulk {p.id} · {p.general_status} · {p.state} "
    count = f" {done + p.skipped}/{p.targets}"
    room = max(width - len(label) - len(count) - 2, 5)
    ok = round(room * p.successful / total)
    bad = round(room * (p.failed + p.skipped) / total)
    busy = round(room * (p.pending + p.executing) / total)
    bar = ("#" * ok + "x" * bad + ">" * busy).ljust(room, ".")[:room]
    first = fit(inert(f"{label}[{bar}]{count}"), width).rstrip()
    counts = (
        f"waiting {p.waiting}  PENDING {p.pending}  EXECUTING {p.executing}"
        f"  SUCCESSFUL {p.successful}  FAILED {p.failed}  skipped {p.skipped}"
    )
    if p.reason:
        counts += f"  · {p.reason}"
    return [first, fit(inert(counts), width).rstrip()]


def plain_progress(p: BulkProgress) -> str:
    """One tab-separated line per change, for a pipe."""
    return "\t".join(
        [
            "bulk", p.id, p.general_status, p.state, str(p.targets), str(p.waiting),
            str(p.pending), str(p.executing), str(p.successful), str(p.failed),
            str(p.skipped), p.reason,
        ]
    )  # fmt: skip
