"""Device messages read at the edge: every bad payload is a rejection with a reason,
never an exception; good ones become typed messages."""

from __future__ import annotations

import pytest

from fleetgate.domain.device_messages import (
    ConnectivityReport,
    Declaration,
    DeviceError,
    Rejection,
    StatusReport,
    SyncRequest,
    operation_id,
    parse_device_message,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.operations import Status
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic

from corpora.device_payloads import BY_LEAF, CHILD_BY_LEAF, GOOD

CASES = [
    pytest.param(leaf, payload, id=f"{leaf.value}: {name}")
    for leaf, corpus in BY_LEAF.items()
    for name, payload in corpus
]


def test_each_corpus_has_at_least_thirty_payloads() -> None:
    assert all(len(corpus) >= 30 for corpus in CHILD_BY_LEAF.values())


CHILD_CASES = [
    pytest.param(leaf, payload, id=f"child {leaf.value}: {name}")
    for leaf, corpus in CHILD_BY_LEAF.items()
    for name, payload in corpus
]


@pytest.mark.parametrize(("leaf", "payload"), CHILD_CASES)
def test_bad_payloads_about_a_child_are_refused_to_its_gateway(
    leaf: DeviceLeaf, payload: bytes
) -> None:
    topic = str(DeviceTopic("kid-1", leaf, gateway="gw-1"))
    rejected = parse_device_message(topic, payload)
    assert isinstance(rejected, Rejection)
    assert (rejected.device_id, rejected.gateway, rejected.topic) == ("kid-1", "gw-1", topic)
    assert rejected.error.endswith("/badRequest")
    assert rejected.reason
    assert DeviceError.of(rejected).reply_topic == "fg/d/gw-1/c/kid-1/error"


@pytest.mark.parametrize(("leaf", "payload"), CASES)
def test_bad_payloads_are_rejected_with_a_reason(leaf: DeviceLeaf, payload: bytes) -> None:
    topic = str(DeviceTopic("hd1", leaf))
    rejected = parse_device_message(topic, payload)
    assert isinstance(rejected, Rejection)
    assert (rejected.device_id, rejected.topic) == ("hd1", topic)
    expected = "inventory" if leaf is DeviceLeaf.INVENTORY else "operations"
    assert rejected.error == f"{expected}/badRequest"
    assert rejected.reason


def test_a_device_cannot_declare_its_lifecycle_status() -> None:
    rejected = parse_device_message(
        "fg/d/hd1/inventory", b'{"fleetgate_Lifecycle": {"status": "ONLINE"}}'
    )
    assert isinstance(rejected, Rejection)
    assert rejected.error == "inventory/badRequest"
    assert "fleetgate_Lifecycle" in rejected.reason


def test_good_payloads_become_messages() -> None:
    assert parse_device_message("fg/d/hd1/op/status", GOOD[DeviceLeaf.OP_STATUS]) == (
        StatusReport("hd1", 1, Status.EXECUTING)
    )
    assert parse_device_message("fg/d/hd1/op/sync", b"{}") == SyncRequest("hd1")
    declared = parse_device_message("fg/d/hd1/inventory", GOOD[DeviceLeaf.INVENTORY])
    assert declared == Declaration(
        "hd1",
        {"name": "boiler", "type": "thermo"},
        {
            "c8y_SupportedOperations": ["c8y_Restart"],
            "c8y_Hardware": {"serialNumber": "été"},
            "c8y_Old": None,
        },
    )


def test_failed_keeps_its_reason_and_an_integer_id_is_accepted() -> None:
    payload = b'{"id": 9223372036854775807, "status": "FAILED", "failureReason": "disk full"}'
    assert parse_device_message("fg/d/hd1/op/status", payload) == StatusReport(
        "hd1", 2**63 - 1, Status.FAILED, "disk full"
    )


@pytest.mark.parametrize(
    "topic",
    [
        "fg/d/hd1/op/cmd",
        "fg/d/hd1/error",
        "fg/d/hd1/connection",
        "fg/d/gw/c/x/op/cmd",
        "fg/d/gw/c/x/error",
        "fg/d/gw/c/x/y/inventory",
        "other",
        "",
    ],
)
def test_other_topics_are_not_device_messages(topic: str) -> None:
    assert parse_device_message(topic, b"{}") is None


def test_a_gateways_messages_about_a_child_name_the_child_and_the_gateway() -> None:
    assert parse_device_message("fg/d/gw/c/ch-1/inventory", b'{"type": "plc"}') == Declaration(
        "ch-1", {"type": "plc"}, {}, gateway="gw"
    )
    assert parse_device_message("fg/d/gw/c/ch-1/op/sync", b"{}") == SyncRequest("ch-1", "gw")
    assert parse_device_message(
        "fg/d/gw/c/ch-1/op/status", b'{"id": "7", "status": "EXECUTING"}'
    ) == StatusReport("ch-1", 7, Status.EXECUTING, gateway="gw")
    assert parse_device_message(
        "fg/d/gw/c/ch-1/connection", b'{"status": "DISCONNECTED", "reason": "no answer"}'
    ) == ConnectivityReport("ch-1", "gw", connected=False, reason="no answer")
    assert parse_device_message(
        "fg/d/gw/c/ch-1/connection", b'{"status": "CONNECTED"}'
    ) == ConnectivityReport("ch-1", "gw", connected=True)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"status": "ONLINE"}',
        b"{}",
        b'{"status": "CONNECTED", "reason": 5}',
        b'{"status": "DISCONNECTED", "reason": "' + b"x" * 1001 + b'"}',
        b'{"status": "DISCONNECTED", "reason": "a\\u0000b"}',
        b"[]",
    ],
)
def test_a_bad_connectivity_report_is_refused_on_the_childs_error_topic(payload: bytes) -> None:
    refused = parse_device_message("fg/d/gw/c/ch-1/connection", payload)
    assert isinstance(refused, Rejection)
    assert (refused.device_id, refused.gateway) == ("ch-1", "gw")
    assert DeviceError.of(refused).reply_topic == "fg/d/gw/c/ch-1/error"


@pytest.mark.parametrize("child", ["$SYS", "a:b", "x" * 129, "\u00e9t\u00e9"])
def test_a_child_id_that_is_no_device_id_is_refused_to_the_gateway_itself(child: str) -> None:
    refused = parse_device_message(f"fg/d/gw/c/{child}/inventory", b"{}")
    assert isinstance(refused, Rejection)
    assert (refused.device_id, refused.gateway) == ("gw", None)
    assert DeviceError.of(refused).reply_topic == "fg/d/gw/error"


@pytest.mark.parametrize(
    "value", ["0", "9223372036854775808", "99999999999999999999", "\u0663", " 1", True, 1.0, None]
)
def test_operation_ids_are_in_range(value: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        operation_id(value)
    assert caught.value.message.startswith('"id": operation id ')
    assert "a whole number from 1 to 9223372036854775807" in caught.value.message
