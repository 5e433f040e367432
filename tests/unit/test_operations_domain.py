"""The operation status table and the command checks, without I/O."""

from __future__ import annotations

import pytest

from fleetgate.domain import operations as ops
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.operations import Move, Status

P, E, S, F = Status.PENDING, Status.EXECUTING, Status.SUCCESSFUL, Status.FAILED


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (P, E, Move.APPLY),
        (P, S, Move.APPLY),
        (P, F, Move.APPLY),
        (E, S, Move.APPLY),
        (E, F, Move.APPLY),
        (P, P, Move.DUPLICATE),
        (E, E, Move.DUPLICATE),
        (S, S, Move.DUPLICATE),
        (F, F, Move.DUPLICATE),
        (E, P, Move.ILLEGAL),
        (S, P, Move.ILLEGAL),
        (S, E, Move.ILLEGAL),
        (S, F, Move.ILLEGAL),
        (F, P, Move.ILLEGAL),
        (F, E, Move.ILLEGAL),
        (F, S, Move.ILLEGAL),
    ],
)
def test_every_status_move(current: Status, new: Status, expected: Move) -> None:
    assert ops.move(current, new) is expected


def test_illegal_message_names_both_statuses_and_what_is_allowed() -> None:
    assert ops.illegal_message(7, E, P) == (
        "Operation 7 is EXECUTING; it cannot move to PENDING (allowed: FAILED, SUCCESSFUL)"
    )
    assert "nothing: it is final" in ops.illegal_message(7, S, F)


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="status must be one of"):
        ops.parse_status("DONE")
    with pytest.raises(ValidationFailed):
        ops.parse_status(None)


def test_command_fragment_must_be_declared_by_the_device() -> None:
    body = {"deviceId": "1", "c8y_Firmware": {"name": "a", "version": "1", "url": "u"}}
    assert ops.command_fragment(body, ["c8y_Firmware"]) == "c8y_Firmware"
    with pytest.raises(ValidationFailed, match="does not support c8y_Firmware") as caught:
        ops.command_fragment(body, ["c8y_Restart"])
    assert "c8y_Restart" in caught.value.message
    with pytest.raises(ValidationFailed, match="c8y_SupportedOperations: none"):
        ops.command_fragment(body, [])


def test_one_command_per_operation() -> None:
    body = {"c8y_Restart": {}, "c8y_Firmware": {"name": "a", "version": "1", "url": "u"}}
    with pytest.raises(ValidationFailed, match="one command"):
        ops.command_fragment(body, ["c8y_Restart", "c8y_Firmware"])
    with pytest.raises(ValidationFailed, match="no command fragment"):
        ops.command_fragment({"deviceId": "1", "description": "x"}, ["c8y_Restart"])


def test_extra_fragments_beside_the_command_are_kept_out_of_the_choice() -> None:
    body = {"c8y_Restart": {}, "myNote": {"by": "ops"}}
    assert ops.command_fragment(body, ["c8y_Restart"]) == "c8y_Restart"


@pytest.mark.parametrize(
    ("fragment", "value", "message"),
    [
        ("c8y_Firmware", {"name": "fw", "version": "1"}, "c8y_Firmware.url"),
        ("c8y_Firmware", "fw", "must be an object"),
        ("c8y_SoftwareUpdate", [], "non-empty list"),
        ("c8y_SoftwareUpdate", [{"name": "a", "action": "upgrade"}], "action must be"),
        ("c8y_SoftwareUpdate", [{"name": "a", "action": "install"}], r"\[0\]\.version"),
        ("c8y_DownloadConfigFile", {"type": "ssh"}, "c8y_DownloadConfigFile.url"),
        ("c8y_UploadConfigFile", {}, "c8y_UploadConfigFile.type"),
    ],
)
def test_malformed_known_commands_are_refused(fragment: str, value: object, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        ops.check_command(fragment, value)


def test_well_formed_commands_pass() -> None:
    ops.check_command("c8y_Firmware", {"name": "fw", "version": "1", "url": "http://x"})
    ops.check_command("c8y_SoftwareUpdate", [{"name": "a", "action": "delete"}])
    ops.check_command("c8y_DownloadConfigFile", {"url": "http://x"})
    ops.check_command("c8y_UploadConfigFile", {"type": "ssh"})
    ops.check_command("c8y_Restart", "anything: not ours to check")


def test_software_list_after_installs_replaces_and_deletes_by_name() -> None:
    current = [{"name": "a", "version": "1", "url": "u1"}, {"name": "b", "version": "1"}]
    changes = [
        {"name": "a", "version": "2", "url": "u2", "action": "install"},
        {"name": "b", "action": "delete"},
        {"name": "c", "version": "1", "url": "u3", "action": "install", "softwareType": "apt"},
    ]
    assert ops.software_list_after(current, changes) == [
        {"name": "a", "version": "2", "url": "u2"},
        {"name": "c", "version": "1", "url": "u3", "softwareType": "apt"},
    ]
    assert ops.software_list_after(None, [{"name": "x", "action": "delete"}]) == []


@pytest.mark.parametrize(
    ("dump", "device_type", "config_type", "refused"),
    [
        ({}, "t", "ssh", False),
        ({"configurationType": "ssh"}, "t", "ssh", False),
        ({"configurationType": "agent"}, "t", "ssh", True),
        ({"deviceType": "t"}, "t", "ssh", False),
        ({"deviceType": "other"}, "t", "ssh", True),
        ({"deviceType": "t"}, None, None, True),
        ({"configurationType": "ssh"}, "t", None, False),
    ],
)
def test_configuration_offered_only_for_matching_types(
    dump: dict[str, str], device_type: str | None, config_type: str | None, refused: bool
) -> None:
    assert (ops.offers_configuration(dump, device_type, config_type) is not None) is refused
