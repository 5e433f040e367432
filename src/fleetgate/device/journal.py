"""Which operations a device has started and how the finished ones ended.

Commands arrive at least once: after every reconnect fleetgate sends the open ones again,
and a service restart may send one twice. The journal turns each arriving command into a
decision (:class:`Admission`) so that a device acts on an operation id once, and answers a
repeated command of a finished operation with its final status again.

It remembers the last ``capacity`` finished operations (oldest forgotten first), in memory
and, when given a ``path``, in a JSON file rewritten atomically at each final status, so
that a restarted device still knows them. Operations in progress are never persisted: a
device that restarts mid-operation gets the command again (it is still open in fleetgate)
and decides afresh. A journal file belongs to one fleetgate (operation ids are only unique
there).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from fleetgate.device.commands import Status
from fleetgate.device.errors import IllegalStatus

__all__ = ["Action", "Admission", "FinalStatus", "OperationJournal"]

log = logging.getLogger(__name__)
_FORMAT = 1


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
    def __init__(self, *, capacity: int = 1000, path: Path | None = None) -> None:
        if capacity < 1:
            raise ValueError("a journal must remember at least one operation")
        self.capacity = capacity
        self.path = path
        self._running: set[str] = set()
        self._finished: OrderedDict[str, FinalStatus] = OrderedDict()
        if path is not None:
            self._load(path)

    def admit(self, op_id: str) -> Admission:
        """Decide about a command for ``op_id``; EXECUTE marks it running."""
        final = self._finished.get(op_id)
        if final is not None:
            return Admission(Action.REPORT_AGAIN, final)
        if op_id in self._running:
            return Admission(Action.IGNORE)
        self._running.add(op_id)
        return Admission(Action.EXECUTE)

    def check(self, op_id: str, status: Status) -> None:
        """IllegalStatus when ``status`` would change a finished operation."""
        final = self._finished.get(op_id)
        if final is not None and final.status is not status:
            raise IllegalStatus(
                f"operation {op_id} is {final.status.value} already;"
                f" it cannot become {status.value}"
            )

    def finish(self, op_id: str, status: Status, failure_reason: str | None = None) -> None:
        """Remember ``op_id``'s final status (the first one stays)."""
        if not status.final:
            raise ValueError(f"{status.value} is not a final status")
        self.check(op_id, status)
        self._running.discard(op_id)
        if op_id in self._finished:
            return
        self._finished[op_id] = FinalStatus(status, failure_reason)
        while len(self._finished) > self.capacity:
            self._finished.popitem(last=False)
        if self.path is not None:
            self._save(self.path)

    def release(self, op_id: str) -> None:
        """``op_id`` stopped without a final status: a later command starts it again."""
        self._running.discard(op_id)

    def final(self, op_id: str) -> FinalStatus | None:
        return self._finished.get(op_id)

    def running(self, op_id: str) -> bool:
        return op_id in self._running

    def _save(self, path: Path) -> None:
        entries = [
            {"id": op_id, "status": final.status.value, "failureReason": final.failure_reason}
            for op_id, final in self._finished.items()
        ]
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"format": _FORMAT, "finished": entries}), "utf-8")
        os.replace(temporary, path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text("utf-8"))
            entries = raw["finished"] if raw.get("format") == _FORMAT else []
            for entry in entries[-self.capacity :]:
                status = Status(entry["status"])
                if status.final:
                    reason = entry.get("failureReason")
                    self._finished[str(entry["id"])] = FinalStatus(
                        status, reason if isinstance(reason, str) else None
                    )
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("ignoring the unreadable operation journal %s: %s", path, exc)
            self._finished.clear()
