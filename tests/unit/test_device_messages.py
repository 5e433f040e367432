"""What a device publishes (inventory, status) and how it reads fleetgate's errors."""

from __future__ import annotations

import json

import pytest

from fleetgate.device import ErrorReport, Firmware, Inventory, Software, Status
from fleetgate.device.messages import encode_status, parse_error_report


def test_inventory_carries_the_protocol_fragments() -> None:
    inventory = Inventory(
        type="thermostat-v2",
        name="boiler room",
        supported_operations=["c8y_Firmware", "c8y_UploadConfigFile"],
        firmware=Firmware("thermo-fw", "1.0.0"),
        software=[Software("agent", "2.1", "apt")],
        supported_configurations=["ssh", "agent"],
        fragments={"c8y_Hardware": {"model": "X"}, "type": "overridden", "c8y_Old": None},
    )
    assert json.loads(inventory.encode()) == {
        "type": "thermostat-v2",
        "name": "boiler room",
        "c8y_SupportedOperations": ["c8y_Firmware", "c8y_UploadConfigFile"],
        "c8y_Firmware": {"name": "thermo-fw", "version": "1.0.0"},
        "c8y_SoftwareList": [{"name": "agent", "version": "2.1", "softwareType": "apt"}],
        "c8y_SupportedConfigurations": ["ssh", "agent"],
        "c8y_Hardware": {"model": "X"},
        "c8y_Old": None,
    }


def test_an_empty_inventory_declares_nothing() -> None:
    assert json.loads(Inventory().encode()) == {}


def test_fleetgates_own_fragments_cannot_be_declared() -> None:
    with pytest.raises(ValueError, match="c8y_IsDevice"):
        Inventory(fragments={"c8y_IsDevice": {}})


def test_status_payloads() -> None:
    assert json.loads(encode_status("42", Status.EXECUTING)) == {"id": "42", "status": "EXECUTING"}
    assert json.loads(encode_status("42", Status.FAILED, "broken")) == {
        "id": "42",
        "status": "FAILED",
        "failureReason": "broken",
    }
    # A reason belongs to FAILED only.
    assert "failureReason" not in json.loads(encode_status("42", Status.SUCCESSFUL, "x"))


def test_error_reports_are_read_tolerantly() -> None:
    report = parse_error_report(
        json.dumps(
            {
                "error": "operations/illegalTransition",
                "message": "no way back",
                "topic": "fg/d/a/op/status",
                "id": "42",
                "more": 1,
            }
        ).encode()
    )
    assert report == ErrorReport(
        "operations/illegalTransition", "no way back", "fg/d/a/op/status", "42"
    )
    assert str(report) == "operations/illegalTransition: no way back (operation 42)"
    assert parse_error_report(b"\xff garbage").error == "device/unreadableError"
    assert parse_error_report(b'{"message": 3}') == ErrorReport("general/unknown", "")
