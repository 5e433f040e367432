"""The gateway's pure parts: its children's topics, the connectivity payload, which
children it may speak for, error reports about a child (no network)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from fleetgate.device import (
    BrokerAddress,
    Connectivity,
    ErrorReport,
    FileInfo,
    GatewayClient,
    PasswordLogin,
)
from fleetgate.device.gateway import children_filters
from fleetgate.device.messages import encode_connectivity
from fleetgate.domain.device_messages import ConnectivityReport, parse_device_message
from fleetgate.domain.topics import DeviceLeaf, DeviceTopic
from fleetgate.pki import ensure_dev_pki

from waiting import eventually


@pytest.fixture
def gateway(tmp_path: Path) -> GatewayClient:
    pki = ensure_dev_pki(tmp_path / "pki")
    return GatewayClient(
        "gw-1", BrokerAddress("localhost", 8884, pki.ca_file), PasswordLogin("t1", "pw")
    )


def test_a_childs_topics_are_inside_the_gateways_namespace(gateway: GatewayClient) -> None:
    child = gateway.child("plc-7")
    assert child.topic(DeviceLeaf.OP_STATUS) == "fg/d/gw-1/c/plc-7/op/status"
    assert child.topic(DeviceLeaf.CONNECTION) == "fg/d/gw-1/c/plc-7/connection"
    assert DeviceTopic.parse(child.topic(DeviceLeaf.INVENTORY)) == DeviceTopic(
        "plc-7", DeviceLeaf.INVENTORY, "gw-1"
    )


def test_the_children_filters_match_exactly_the_childrens_commands_and_errors() -> None:
    assert list(children_filters("gw-1")) == ["fg/d/gw-1/c/+/op/cmd", "fg/d/gw-1/c/+/error"]
    for leaf, wanted in ((DeviceLeaf.OP_CMD, 0), (DeviceLeaf.ERROR, 1)):
        topic = str(DeviceTopic("any-child", leaf, "gw-1"))
        pattern = list(children_filters("gw-1"))[wanted]
        assert topic.split("/")[:4] == pattern.split("/")[:4]
        assert topic.split("/")[5:] == pattern.split("/")[5:]


def test_each_child_is_made_once(gateway: GatewayClient) -> None:
    child = gateway.child("plc-7")
    assert gateway.child("plc-7") is child
    assert dict(gateway.children) == {"plc-7": child}
    assert child.gateway is gateway
    assert child.device_id == "plc-7"
    assert not child.declared


@pytest.mark.parametrize("child_id", ["", "a/b", "a+b", "x" * 129, "a b", "a:b", "gw-1"])
def test_a_child_must_be_a_device_id_other_than_the_gateways(
    gateway: GatewayClient, child_id: str
) -> None:
    with pytest.raises(ValueError, match="child"):
        gateway.child(child_id)
    assert not gateway.children


def test_connectivity_reads_as_fleetgate_reads_it() -> None:
    topic = "fg/d/gw-1/c/plc-7/connection"
    lost = encode_connectivity(Connectivity.DISCONNECTED, "Modbus timeout")
    assert parse_device_message(topic, lost) == ConnectivityReport(
        "plc-7", "gw-1", connected=False, reason="Modbus timeout"
    )
    assert json.loads(encode_connectivity(Connectivity.CONNECTED)) == {"status": "CONNECTED"}
    long = encode_connectivity(Connectivity.DISCONNECTED, "é" * 5000)
    report = parse_device_message(topic, long)
    assert isinstance(report, ConnectivityReport)
    assert report.reason is not None
    assert len(report.reason) == 1000


def test_an_error_report_names_the_child_it_is_about() -> None:
    report = ErrorReport("devices/notAChild", "not yours", child="plc-7")
    assert str(report) == "devices/notAChild about child plc-7: not yours"
    assert str(ErrorReport("operations/notFound", "no 9", operation_id="9")) == (
        "operations/notFound: no 9 (operation 9)"
    )


async def test_the_childrens_transfers_wait_their_turn(tmp_path: Path) -> None:
    content = b"firmware" * 1000
    running, most = 0, 0
    release = asyncio.Event()

    async def serve(request: httpx.Request) -> httpx.Response:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return httpx.Response(200, content=content)

    pki = ensure_dev_pki(tmp_path / "pki")
    file = FileInfo(
        url="http://files.test/f", sha256=hashlib.sha256(content).hexdigest(), size=len(content)
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as http:
        gateway = GatewayClient(
            "gw-1", BrokerAddress("localhost", 8884, pki.ca_file), PasswordLogin("t1", "pw"),
            http=http, transfers=2,
        )  # fmt: skip
        fetches = [asyncio.create_task(gateway.child(f"c{n}").fetch(file)) for n in range(5)]
        await eventually(lambda: running == 2, "two transfers under way")
        release.set()
        assert await asyncio.gather(*fetches) == [content] * 5
    assert most == 2
    with pytest.raises(ValueError, match="at least one transfer"):
        GatewayClient(
            "gw-2", BrokerAddress("h", 1, pki.ca_file), PasswordLogin("t", "p"), transfers=0
        )
