"""The operation status table and the command checks, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetgate.domain import commands
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
    assert commands.command_fragment(body, ["c8y_Firmware"]) == "c8y_Firmware"
    with pytest.raises(ValidationFailed, match="does not support c8y_Firmware") as caught:
        commands.command_fragment(body, ["c8y_Restart"])
    assert "c8y_Restart" in caught.value.message
    with pytest.raises(ValidationFailed, match="c8y_SupportedOperations: none"):
        commands.command_fragment(body, [])


def test_one_command_per_operation() -> None:
    body = {"c8y_Restart": {}, "c8y_Firmware": {"name": "a", "version": "1", "url": "u"}}
    with pytest.raises(ValidationFailed, match="one command"):
        commands.command_fragment(body, ["c8y_Restart", "c8y_Firmware"])
    with pytest.raises(ValidationFailed, match="no command fragment"):
        commands.command_fragment({"deviceId": "1", "description": "x"}, ["c8y_Restart"])


def test_extra_fragments_beside_the_command_are_kept_out_of_the_choice() -> None:
    body = {"c8y_Restart": {}, "myNote": {"by": "ops"}}
    assert commands.command_fragment(body, ["c8y_Restart"]) == "c8y_Restart"


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
        commands.check_command(fragment, value)


def test_well_formed_commands_pass() -> None:
    commands.check_command("c8y_Firmware", {"name": "fw", "version": "1", "url": "http://x"})
    commands.check_command("c8y_SoftwareUpdate", [{"name": "a", "action": "delete"}])
    commands.check_command("c8y_DownloadConfigFile", {"url": "http://x"})
    commands.check_command("c8y_UploadConfigFile", {"type": "ssh"})
    commands.check_command("c8y_Restart", "anything: not ours to check")


def test_software_list_after_installs_replaces_and_deletes_by_name() -> None:
    current = [{"name": "a", "version": "1", "url": "u1"}, {"name": "b", "version": "1"}]
    changes = [
        {"name": "a", "version": "2", "url": "u2", "action": "install"},
        {"name": "b", "action": "delete"},
        {"name": "c", "version": "1", "url": "u3", "action": "install", "softwareType": "apt"},
    ]
    assert commands.software_list_after(current, changes) == [
        {"name": "a", "version": "2", "url": "u2"},
        {"name": "c", "version": "1", "url": "u3", "softwareType": "apt"},
    ]
    assert commands.software_list_after(None, [{"name": "x", "action": "delete"}]) == []


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
    assert (commands.offers_configuration(dump, device_type, config_type) is not None) is refused


def _state(**changes: object) -> ops.OperationState:
    values: dict[str, object] = {
        "id": 1, "tenant_id": "t1", "serial": "d1", "status": P,
        "fragment_type": "c8y_Restart", "has_snapshot": False, "bound": True,
    }  # fmt: skip
    values.update(changes)
    return ops.OperationState(**values)  # type: ignore[arg-type]


def test_a_batch_moves_one_operation_step_by_step() -> None:
    reports = [ops.Report(1, E, serial="d1"), ops.Report(1, S, serial="d1"), ops.Report(1, E)]
    decisions = ops.decide({1: _state()}, reports)
    assert [(d.move, d.current, d.status) for d in decisions] == [
        (Move.APPLY, P, E),
        (Move.APPLY, E, S),
        (Move.ILLEGAL, S, None),
    ]
    assert ops.final_moves(decisions) == {1: (S, None)}


def test_failed_always_has_a_reason() -> None:
    [decision] = ops.decide({1: _state()}, [ops.Report(1, F, serial="d1")])
    assert (decision.status, decision.failure_reason) == (F, ops.NO_DEVICE_REASON)


def test_a_snapshot_request_without_its_upload_fails_when_it_reports_success() -> None:
    state = _state(fragment_type="c8y_UploadConfigFile")
    [decision] = ops.decide({1: state}, [ops.Report(1, S, serial="d1")])
    assert (decision.status, decision.failure_reason) == (F, ops.NO_SNAPSHOT_REASON)
    uploaded = _state(fragment_type="c8y_UploadConfigFile", has_snapshot=True)
    assert ops.decide({1: uploaded}, [ops.Report(1, S, serial="d1")])[0].status is S


@pytest.mark.parametrize(
    ("state", "report"),
    [
        (_state(), ops.Report(1, E, serial="d2")),  # another device's
        (_state(bound=False), ops.Report(1, E, serial="d1")),  # its id went to another device
        (_state(), ops.Report(1, E, tenant_id="t2")),  # another tenant's operator
        (_state(), ops.Report(2, E, serial="d1")),  # no such operation
    ],
)
def test_strangers_find_nothing(state: ops.OperationState, report: ops.Report) -> None:
    [decision] = ops.decide({1: state}, [report])
    assert decision.move is None
    assert decision.current is None


def _op(fragment_type: str, command: object, **extra: object) -> ops.Operation:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    return ops.Operation(
        id=7, tenant_id="t1", device_id=3, serial="d1", device_name="boiler",
        fragment_type=fragment_type, status=S, failure_reason=None, description=None,
        fragments={fragment_type: command}, bulk_operation_id=None,
        creation_time=now, status_time=now,
    )  # fmt: skip


NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
DEVICE = commands.DeviceRecord("boiler", "thermo", {"c8y_SoftwareList": [{"name": "a"}]})


def test_success_effects_of_each_known_command() -> None:
    firmware = {"name": "fw", "version": "2", "url": "u", "file": {"sha256": "x"}}
    assert commands.success_effects(_op("c8y_Firmware", firmware), DEVICE, None, NOW) == (
        commands.SuccessEffects({"c8y_Firmware": {"name": "fw", "version": "2", "url": "u"}})
    )
    software = [{"name": "b", "version": "1", "url": "u", "action": "install"}]
    effects = commands.success_effects(_op("c8y_SoftwareUpdate", software), DEVICE, None, NOW)
    assert effects.fragments["c8y_SoftwareList"] == [
        {"name": "a"},  # as the device declared it
        {"name": "b", "version": "1", "url": "u"},
    ]
    config = {"type": "ssh", "url": "u", "name": "n"}
    effects = commands.success_effects(_op("c8y_DownloadConfigFile", config), DEVICE, None, NOW)
    assert effects.fragments == {
        "c8y_Configuration_ssh": {
            "name": "n", "url": "u", "time": NOW.isoformat(), "operationId": "7",
        }
    }  # fmt: skip
    assert commands.success_effects(_op("c8y_Restart", {}), DEVICE, None, NOW) == (
        commands.SuccessEffects({})
    )


def test_a_snapshot_becomes_a_repository_entry_the_device_record_points_to() -> None:
    op = _op("c8y_UploadConfigFile", {"type": "ssh"})
    effects = commands.success_effects(op, DEVICE, "http://x/inventory/binaries/9", NOW)
    assert effects.entry is not None
    assert effects.entry.name == "boiler ssh 2026-12-01 12:30:00"
    assert effects.entry.fragments["deviceType"] == "thermo"
    assert effects.entry.fragments["configurationType"] == "ssh"
    assert effects.with_entry_id(42)["c8y_Configuration_ssh"] == {
        "url": "http://x/inventory/binaries/9",
        "name": "boiler ssh 2026-12-01 12:30:00",
        "time": NOW.isoformat(),
        "snapshotId": "42",
    }
