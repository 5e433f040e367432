"""What ``ops watch`` knows about operations: the latest state of each, by id.

Events and list pages arrive in any order (a list page read after the stream opened may
be older than an event already applied, and a reconnecting stream may repeat events), so
:meth:`OperationTable.apply` decides which state is newer instead of taking the last one:
the later ``statusTime`` wins; at the same instant, or without times, an operation never
goes back along PENDING → EXECUTING → SUCCESSFUL | FAILED.

A status filter is a view: the table keeps every operation it has seen, so one that left
the filter and comes back stays ordered, and shows only those whose status is wanted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

# Cumulocity's operation statuses, in the order they happen (and are summarised).
STATUSES = ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")
_RANK = {"PENDING": 0, "EXECUTING": 1, "SUCCESSFUL": 2, "FAILED": 2}
# Keys of an operation that are not its command fragment.
_STANDARD_KEYS = frozenset(
    {
        "id",
        "self",
        "deviceId",
        "deviceName",
        "deviceExternalIDs",
        "status",
        "failureReason",
        "creationTime",
        "statusTime",
        "description",
        "bulkOperationId",
        "delivery",
    }
)
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OperationRow:
    """One operation as the table shows it, read from Cumulocity's operation JSON."""

    id: str
    device_id: str
    device_name: str
    fragment: str  # the command, e.g. c8y_Firmware
    status: str
    failure_reason: str
    creation_time: datetime | None
    status_time: datetime | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> OperationRow:
        """Raises ValueError for something that is not an operation (no id)."""
        op_id = body.get("id")
        if not isinstance(op_id, str | int) or isinstance(op_id, bool) or op_id == "":
            raise ValueError(f"not an operation (no id): {str(body)[:80]}")
        return cls(
            id=str(op_id),
            device_id=_text(body.get("deviceId")),
            device_name=_text(body.get("deviceName")),
            fragment=command_fragment(body),
            status=_text(body.get("status")).upper(),
            failure_reason=_text(body.get("failureReason")),
            creation_time=_time(body.get("creationTime")),
            status_time=_time(body.get("statusTime")),
        )

    @property
    def device(self) -> str:
        return self.device_name or self.device_id

    @property
    def changed_at(self) -> datetime:
        """When its status last changed, as far as we know."""
        return self.status_time or self.creation_time or _NEVER


def command_fragment(body: Mapping[str, Any]) -> str:
    """The command an operation carries: its first ``c8y_*`` object, else its first other
    non-standard object, else its first ``c8y_*`` key."""
    keys = [key for key in body if key not in _STANDARD_KEYS]
    for candidates in (
        [k for k in keys if k.startswith("c8y_") and isinstance(body[k], dict)],
        [k for k in keys if isinstance(body[k], dict)],
        [k for k in keys if k.startswith("c8y_")],
    ):
        if candidates:
            return candidates[0]
    return ""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_newer(incoming: OperationRow, current: OperationRow) -> bool:
    """Whether ``incoming`` may replace ``current`` (the same operation)."""
    if (
        incoming.status_time is not None
        and current.status_time is not None
        and incoming.status_time != current.status_time
    ):
        return incoming.status_time > current.status_time
    return _RANK.get(incoming.status, 0) >= _RANK.get(current.status, 0)


class ChangeKind(Enum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the same state again (a repeated event, a reloaded page)
    STALE = "stale"  # older than what the table holds: ignored


@dataclass(frozen=True, slots=True)
class Change:
    """What applying ``row`` did; ``previous`` is what the table held before (kept if STALE)."""

    kind: ChangeKind
    row: OperationRow
    previous: OperationRow | None

    @property
    def applied(self) -> bool:
        return self.kind in (ChangeKind.ADDED, ChangeKind.UPDATED)


class OperationTable:
    """The latest known state of every operation seen; shows those in ``statuses`` (all
    when empty)."""

    def __init__(self, statuses: Iterable[str] = ()) -> None:
        self._statuses = frozenset(s.upper() for s in statuses)
        self._rows: dict[str, OperationRow] = {}
        self._counts: Counter[str] = Counter()

    def shows(self, status: str) -> bool:
        return not self._statuses or status in self._statuses

    def apply(self, row: OperationRow) -> Change:
        current = self._rows.get(row.id)
        if current is None:
            kind = ChangeKind.ADDED
        elif row == current:
            return Change(ChangeKind.UNCHANGED, row, current)
        elif not is_newer(row, current):
            return Change(ChangeKind.STALE, row, current)
        else:
            kind = ChangeKind.UPDATED
            self._counts[current.status] -= 1
        self._rows[row.id] = row
        self._counts[row.status] += 1
        return Change(kind, row, current)

    def get(self, op_id: str) -> OperationRow | None:
        return self._rows.get(op_id)

    def latest(self, limit: int | None = None) -> list[OperationRow]:
        """The shown operations, the latest change first; at most ``limit`` of them."""
        shown = (row for row in self._rows.values() if self.shows(row.status))
        if limit is None:
            return sorted(shown, key=_recency, reverse=True)
        return heapq.nlargest(limit, shown, key=_recency)

    def counts(self) -> dict[str, int]:
        """Shown operations per status: the known statuses in their order, then others."""
        known = [s for s in STATUSES if self._counts[s]]
        others = sorted(s for s, n in self._counts.items() if n and s not in _RANK)
        return {s: self._counts[s] for s in known + others if self.shows(s)}

    def __len__(self) -> int:
        return sum(self.counts().values())


def _recency(row: OperationRow) -> tuple[datetime, int, str]:
    # ids are numbers in Cumulocity: compare by length first so "10" follows "9"
    return row.changed_at, len(row.id), row.id
