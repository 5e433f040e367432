"""Which operations a device has started and how the finished ones ended — for the
device itself and, in a gateway's journal, for each of its children.

Commands arrive at least once: after every reconnect fleetgate sends the open ones again,
and a service restart may send one twice. The journal turns each arriving command into a
decision (:class:`Admission`) so that a device acts on an operation id once, and answers a
repeated command of a finished operation with its final status again. Entries are keyed
by the device they belong to: ``device=None`` is the client's own device, a child's id is
that child (a gateway keeps its whole tree in one journal).

It remembers the last ``capacity`` finished operations of each device (oldest forgotten
first), in memory and, when given a ``path``, in a file, so that a restarted device still
knows them. The file is a log of JSON lines, one appended (and flushed to the operating
system) per final status *before* that status is published, and rewritten whole only when
forgotten entries make up half of it: a gateway finishing thousands of its children's
operations does not rewrite thousands of entries each time. A line cut off by a crash is
skipped when the file is read (that status was never published: the operation is done
again). Operations in progress are never kept: a device that restarts mid-operation gets
the command again (it is still open in fleetgate) and decides afresh. A journal file
belongs to one fleetgate (operation ids are only unique there).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from fleetgate.device.commands import Status
from fleetgate.device.errors import IllegalStatus

__all__ = ["Action", "Admission", "FinalStatus", "OperationJournal"]

log = logging.getLogger(__name__)
_FORMAT = 2
#: The file is rewritten when it holds more than twice the entries remembered, plus this.
_SLACK = 64


@dataclass(frozen=True)
class FinalStatus:
    status: Status
    failure_reason: str | None = None


class Action(Enum):
    EXECUTE = "execute"  # new: hand it to the application
    IGNORE = "ignore"  # in progress already
    REPORT_AGAIN = "report-again"  # finished: publish the final status again


@dataclass(frozen=True)
class Admission:
    action: Action
    final: FinalStatus | None = None  # with REPORT_AGAIN


class OperationJournal:
    """See the module docstring. ``device`` (keyword) names a gateway's child; None is
    the journal's own device."""

    def __init__(self, *, capacity: int = 1000, path: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("a journal must remember at least one operation")
        self.capacity = capacity
        self.path = path
        self._running: set[tuple[str | None, str]] = set()
        self._finished: dict[str | None, OrderedDict[str, FinalStatus]] = {}
        self._remembered = 0  # entries in memory, every device
        self._lines = 0  # entries in the file
        if path is not None:
            self._load(path)

    def admit(self, op_id: str, *, device: str | None = None) -> Admission:
        """Decide about a command for ``op_id``; EXECUTE marks it running."""
        final = self.final(op_id, device=device)
        if final is not None:
            return Admission(Action.REPORT_AGAIN, final)
        if (device, op_id) in self._running:
            return Admission(Action.IGNORE)
        self._running.add((device, op_id))
        return Admission(Action.EXECUTE)

    def check(self, op_id: str, status: Status, *, device: str | None = None) -> None:
        """IllegalStatus when ``status`` would change a finished operation."""
        final = self.final(op_id, device=device)
        if final is not None and final.status is not status:
            about = "" if device is None else f" of {device}"
            raise IllegalStatus(
                f"operation {op_id}{about} is {final.status.value} already;"
                f" it cannot become {status.value}"
            )

    def finish(
        self,
        op_id: str,
        status: Status,
        failure_reason: str | None = None,
        *,
        device: str | None = None,
    ) -> None:
        """Remember ``op_id``'s final status (the first one stays); with a ``path``, it
        is in the file when this returns."""
        if not status.final:
            raise ValueError(f"{status.value} is not a final status")
        self.check(op_id, status, device=device)
        self._running.discard((device, op_id))
        if self.final(op_id, device=device) is not None:
            return
        final = FinalStatus(status, failure_reason)
        self._remember(device, op_id, final)
        if self.path is not None:
            self._append(self.path, device, op_id, final)

    def release(self, op_id: str, *, device: str | None = None) -> None:
        """``op_id`` stopped without a final status: a later command starts it again."""
        self._running.discard((device, op_id))

    def final(self, op_id: str, *, device: str | None = None) -> FinalStatus | None:
        finished = self._finished.get(device)
        return None if finished is None else finished.get(op_id)

    def running(self, op_id: str, *, device: str | None = None) -> bool:
        return (device, op_id) in self._running

    def finished(self) -> dict[str | None, dict[str, FinalStatus]]:
        """Every remembered final status, by device, oldest first (a copy)."""
        return {device: dict(entries) for device, entries in self._finished.items()}

    def _remember(self, device: str | None, op_id: str, final: FinalStatus) -> None:
        entries = self._finished.setdefault(device, OrderedDict())
        entries[op_id] = final
        self._remembered += 1
        if len(entries) > self.capacity:
            entries.popitem(last=False)
            self._remembered -= 1

    # --- the file ------------------------------------------------------------------------

    def _append(self, path: Path, device: str | None, op_id: str, final: FinalStatus) -> None:
        if self._lines >= 2 * self._remembered + _SLACK or not path.exists():
            self._rewrite(path)  # holds the new entry already
            return
        with path.open("a", encoding="utf-8") as file:
            file.write(_line(device, op_id, final))
        self._lines += 1

    def _rewrite(self, path: Path) -> None:
        lines = [json.dumps({"format": _FORMAT}) + "\n"]
        for device, entries in self._finished.items():
            lines.extend(_line(device, op_id, final) for op_id, final in entries.items())
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text("".join(lines), "utf-8")
        os.replace(temporary, path)
        self._lines = len(lines) - 1

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("ignoring the unreadable operation journal %s: %s", path, exc)
            return
        lines = text.splitlines()
        head = _json(lines[0]) if lines else None
        version = head.get("format") if isinstance(head, dict) else None
        if version == 1:  # one JSON object, rewritten at every final status
            assert isinstance(head, dict)
            finished = head.get("finished")
            entries: list[Any] = finished if isinstance(finished, list) else []
            skipped = 0
        elif version == _FORMAT:
            entries = [_json(line) for line in lines[1:]]
            skipped = 0
        else:
            log.warning("ignoring the operation journal %s: not a journal file", path)
            entries, skipped = [], 1
        for entry in entries:
            read = _entry(entry)
            if read is None:
                skipped += 1
            elif self.final(read[1], device=read[0]) is None:
                self._remember(*read)
        self._lines = len(entries)
        if skipped or version != _FORMAT or not text.endswith("\n"):
            if skipped:
                log.warning("operation journal %s: skipped %d unreadable entries", path, skipped)
            self._rewrite(path)  # appending after a cut-off line would spoil the next one


def _line(device: str | None, op_id: str, final: FinalStatus) -> str:
    entry: dict[str, str] = {"id": op_id, "status": final.status.value}
    if final.failure_reason is not None:
        entry["failureReason"] = final.failure_reason
    if device is not None:
        entry["device"] = device
    return json.dumps(entry, separators=(",", ":")) + "\n"


def _json(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _entry(raw: Any) -> tuple[str | None, str, FinalStatus] | None:
    """(device, operation id, final status) of one entry, or None if it is not one."""
    if not isinstance(raw, dict):
        return None
    op_id, device, reason = raw.get("id"), raw.get("device"), raw.get("failureReason")
    try:
        status = Status(str(raw.get("status")))
    except ValueError:
        return None
    if not (isinstance(op_id, str | int) and status.final) or not isinstance(device, str | None):
        return None
    return device, str(op_id), FinalStatus(status, reason if isinstance(reason, str) else None)
