"""A gateway's journal across reconnects and restarts of its process, model-based.

fleetgate creates operations for the gateway and its children and sends them, again at
every reconnect (the gateway's sync returns the whole tree's open operations); the gateway
finishes some, its statuses reach fleetgate or not, its process restarts (sometimes
killed while writing a journal line). Whatever the order:

- an operation is carried out once per device, and again only when the process restarted
  while it was running (it never finished; fleetgate sends it again and the device decides
  afresh) — never after its final status was written;
- a repeated command of a finished operation is answered with its first final status;
- after a restart the journal holds exactly what was finished before it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fleetgate.device import OperationJournal, Status
from fleetgate.device.journal import Action, FinalStatus

devices = st.sampled_from([None, "plc-1", "plc-2"])  # None: the gateway itself
op_ids = st.sampled_from(["1", "2", "3", "4", "5"])
finals = st.sampled_from([Status.SUCCESSFUL, Status.FAILED])
Key = tuple[str | None, str]


class GatewayLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="journal-"))
        self.path = self.directory / "journal.jsonl"
        self.journal = OperationJournal(path=self.path)
        self.open: set[Key] = set()  # open in fleetgate: it sends these at every sync
        self.running: set[Key] = set()  # handed to the application, not finished
        self.finished: dict[Key, FinalStatus] = {}  # written to the journal
        self.executed: dict[Key, int] = {}
        self.rerun_allowed: set[Key] = set()  # running when the process restarted

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def deliver(self, key: Key) -> None:
        device, op_id = key
        admission = self.journal.admit(op_id, device=device)
        if key in self.finished:
            assert admission.action is Action.REPORT_AGAIN
            assert admission.final == self.finished[key]
        elif key in self.running:
            assert admission.action is Action.IGNORE
        else:
            assert admission.action is Action.EXECUTE
            assert key not in self.executed or key in self.rerun_allowed
            self.rerun_allowed.discard(key)
            self.executed[key] = self.executed.get(key, 0) + 1
            self.running.add(key)

    @rule(device=devices, op_id=op_ids)
    def fleetgate_creates_and_sends(self, device: str | None, op_id: str) -> None:
        key = (device, op_id)
        if key not in self.executed and key not in self.finished:
            self.open.add(key)
        if key in self.open:
            self.deliver(key)

    @rule()
    def reconnect_and_sync(self) -> None:
        for key in sorted(self.open, key=str):
            self.deliver(key)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), status=finals)
    def an_operation_ends(self, data: st.DataObject, status: Status) -> None:
        key = data.draw(st.sampled_from(sorted(self.running, key=str)))
        device, op_id = key
        self.journal.finish(
            op_id, status, "reason" if status is Status.FAILED else None, device=device
        )
        self.running.discard(key)
        self.finished[key] = FinalStatus(status, "reason" if status is Status.FAILED else None)

    @precondition(lambda self: any(k in self.open for k in self.finished))
    @rule(data=st.data())
    def a_final_status_reaches_fleetgate(self, data: st.DataObject) -> None:
        arrived = [k for k in self.finished if k in self.open]
        self.open.discard(data.draw(st.sampled_from(sorted(arrived, key=str))))

    @rule(torn=st.booleans())
    def the_process_restarts(self, torn: bool) -> None:
        newest = list(self.finished)[-1] if self.finished else None
        text = self.path.read_text() if self.path.exists() else ""
        last = text.rstrip("\n").rpartition("\n")[2]
        if torn and newest in self.open and _key_of(last) == newest:
            # Killed while appending the newest line: its status was never published, and
            # the operation was still running as far as anyone can tell.
            self.path.write_text(text[: len(text) - len(last) // 2 - 1])
            del self.finished[newest]
            self.running.add(newest)
        self.rerun_allowed |= self.running
        self.running.clear()
        self.journal = OperationJournal(path=self.path)
        remembered = {
            (device, op_id): final
            for device, entries in self.journal.finished().items()
            for op_id, final in entries.items()
        }
        assert remembered == self.finished

    @invariant()
    def a_finished_operation_is_not_running(self) -> None:
        for device, op_id in self.finished:
            assert not self.journal.running(op_id, device=device)


def _key_of(line: str) -> Key | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return (entry.get("device"), entry.get("id")) if "id" in entry else None


GatewayLife.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestGatewayJournal = GatewayLife.TestCase
