"""DeviceMessages on fakes: one bad message never holds back the others, only an absent
database is retried, and every refusal is answered and kept."""

from __future__ import annotations

import json

import pytest

from fleetgate.domain.device_messages import Declaration, Incoming, SyncRequest
from fleetgate.domain.errors import ValidationFailed
from fleetgate.services.device_messages import MAX_DEFERRALS, DeviceMessages

from corpora.device_payloads import OP_STATUS
from fakes import FakeChildren, FakeDeadLetters, FakeOperations, RecordingPublisher, unavailable


class Declarations:
    def __init__(self, registered: set[str]) -> None:
        self.registered = registered
        self.merged: list[Declaration] = []

    async def __call__(self, declaration: Declaration, last_try: bool) -> bool:
        if declaration.device_id not in self.registered:
            if last_try:
                raise ValidationFailed(f"Device {declaration.device_id} is not registered")
            return False
        self.merged.append(declaration)
        return True


def status(device: str, op_id: int, value: str = "EXECUTING") -> Incoming:
    return Incoming(
        f"fg/d/{device}/op/status", json.dumps({"id": str(op_id), "status": value}).encode()
    )


def make(
    ops: FakeOperations, *, registered: set[str] | None = None
) -> tuple[DeviceMessages, FakeDeadLetters, RecordingPublisher, Declarations]:
    letters, replies = FakeDeadLetters(), RecordingPublisher()
    declarations = Declarations(registered if registered is not None else {"good"})
    messages = DeviceMessages(
        ops, declarations, letters, replies, children=FakeChildren(), is_transient=unavailable
    )
    return messages, letters, replies, declarations


async def test_one_poisoned_message_is_set_aside_and_the_rest_applied_in_order() -> None:
    ops = FakeOperations(poison={57})
    messages, letters, replies, _ = make(ops)
    batch = [status("good", i) for i in range(1, 101)]
    assert await messages.handle(batch) == []
    assert [r.operation_id for r in ops.applied] == [i for i in range(1, 101) if i != 57]
    [letter] = letters.letters
    assert (letter.device_id, letter.topic, letter.error) == (
        "good",
        "fg/d/good/op/status",
        "general/internalError",
    )
    assert letter.payload == batch[56].payload
    [(topic, body)] = replies.messages
    assert topic == "fg/d/good/error"
    assert body["error"] == "general/internalError"
    assert ops.calls <= 2 * 7 + 1  # halves down to the one: about 2·log2(100) calls


async def test_an_absent_database_is_raised_for_the_link_to_retry() -> None:
    ops = FakeOperations()
    ops.unavailable = True
    messages, letters, replies, _ = make(ops)
    with pytest.raises(ConnectionRefusedError):
        await messages.handle([status("good", 1), status("good", 2)])
    assert letters.letters == []
    assert replies.messages == []
    ops.unavailable = False
    assert await messages.handle([status("good", 1), status("good", 2)]) == []
    assert [r.operation_id for r in ops.applied] == [1, 2]


async def test_refused_messages_are_answered_and_kept_beside_applied_ones() -> None:
    ops = FakeOperations()
    messages, letters, replies, _ = make(ops)
    bad = [Incoming("fg/d/hd1/op/status", payload) for _, payload in OP_STATUS]
    batch = [status("good", 1), *bad, status("good", 2)]
    assert await messages.handle(batch) == []
    assert [r.operation_id for r in ops.applied] == [1, 2]
    assert [letter.payload for letter in letters.letters] == [m.payload for m in bad]
    assert all(letter.error == "operations/badRequest" for letter in letters.letters)
    assert [t for t, _ in replies.messages] == ["fg/d/hd1/error"] * len(bad)
    assert all(body["topic"] == "fg/d/hd1/op/status" for _, body in replies.messages)


async def test_a_declaration_waits_for_its_registration_then_is_refused() -> None:
    ops = FakeOperations()
    messages, letters, replies, declarations = make(ops, registered=set())
    early = Incoming("fg/d/late/inventory", b'{"type": "t"}')
    assert await messages.handle([early]) == [early]
    assert letters.letters == []
    declarations.registered.add("late")
    assert await messages.handle([early]) == []
    assert [d.device_id for d in declarations.merged] == ["late"]
    ghost = Incoming("fg/d/ghost/inventory", b"{}", deferrals=MAX_DEFERRALS)
    assert await messages.handle([ghost]) == []
    [letter] = letters.letters
    assert (letter.error, letter.reason) == (
        "inventory/badRequest",
        "Device ghost is not registered",
    )
    [(_, body)] = replies.messages
    assert body["message"] == "Device ghost is not registered"


async def test_dead_letters_that_cannot_be_kept_do_not_stall_the_link() -> None:
    ops = FakeOperations()
    messages, letters, replies, _ = make(ops)
    letters.failure = ValueError("unstorable")
    assert await messages.handle([Incoming("fg/d/hd1/op/sync", b"x")]) == []
    assert len(replies.messages) == 1  # the device is still told
    letters.failure = ConnectionResetError()
    with pytest.raises(ConnectionResetError):
        await messages.handle([Incoming("fg/d/hd1/op/sync", b"x")])


async def test_syncs_are_asked_once_per_device() -> None:
    ops = FakeOperations()
    messages, *_ = make(ops)
    sync = [Incoming(f"fg/d/{d}/op/sync", b"{}") for d in ("b", "a", "b")]
    await messages.handle(sync)
    assert ops.synced == [SyncRequest("a"), SyncRequest("b")]
