"""Gateways' children on fakes: the domain's rules for a gateway's declaration of a child,
the Gateways service on the in-memory store, and the device-message path that routes a
gateway's messages about children."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from fleetgate.domain.device_messages import Declaration, Incoming, SyncRequest
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.gateways import (
    ChildClaim,
    Holder,
    Removal,
    Verdict,
    decide_child,
    gateway_auto_registration,
)
from fleetgate.services.device_messages import DeviceMessages
from fleetgate.services.gateways import Gateways

from fakes import (
    FakeChildren,
    FakeDeadLetters,
    FakeOperations,
    RecordingConnectivity,
    RecordingPublisher,
    unavailable,
)
from memory import MemoryStores
from memory.database import RemovedChildRow

NOW = datetime(2026, 12, 1, tzinfo=UTC)
FREE = ChildClaim(
    gateway="gw",
    tenant_id="t1",
    gateway_object_id=7,
    gateway_parent=None,
    held_elsewhere=False,
    holder=None,
    removal=None,
    auto_registration=True,
)


@pytest.mark.parametrize(
    ("claim", "verdict", "reason"),
    [
        (FREE, Verdict.REGISTER, None),
        (replace(FREE, holder=Holder(9, "gw")), Verdict.KNOWN, None),
        (replace(FREE, holder=Holder(9, "gw-2")), Verdict.REFUSED, "child of gateway gw-2"),
        (replace(FREE, holder=Holder(9, None)), Verdict.REFUSED, "/7/childDevices"),
        (replace(FREE, held_elsewhere=True), Verdict.REFUSED, "another tenant"),
        (replace(FREE, gateway_parent="top"), Verdict.REFUSED, "itself a child of gateway top"),
        (
            replace(FREE, removal=Removal("detached", NOW)),
            Verdict.REFUSED,
            "removed child ch from gateway gw (detached at 2026-12-01",
        ),
        (replace(FREE, auto_registration=False), Verdict.REFUSED, "switched off"),
        # Detached by an operator, the device still there: the removal is the reason.
        (
            replace(FREE, holder=Holder(9, None), removal=Removal("detached", NOW)),
            Verdict.REFUSED,
            "an operator removed child ch from gateway gw (detached",
        ),
        # A removal or a switch stops new children only: a known child stays the gateway's.
        (
            replace(FREE, holder=Holder(9, "gw"), auto_registration=False),
            Verdict.KNOWN,
            None,
        ),
    ],
)
def test_what_a_gateways_declaration_of_a_child_does(
    claim: ChildClaim, verdict: Verdict, reason: str | None
) -> None:
    decision = decide_child(claim, "ch")
    assert decision.verdict is verdict
    if reason is None:
        assert decision.reason is None
    else:
        assert reason in str(decision.reason)


def test_a_gateway_is_not_its_own_child() -> None:
    decision = decide_child(FREE, "gw")
    assert decision.verdict is Verdict.REFUSED


@pytest.mark.parametrize(
    ("fragments", "on"),
    [
        ({}, True),
        ({"fleetgate_Gateway": {}}, True),
        ({"fleetgate_Gateway": {"childAutoRegistration": True}}, True),
        ({"fleetgate_Gateway": {"childAutoRegistration": False}}, False),
        ({"fleetgate_Gateway": "off"}, True),
    ],
)
def test_child_auto_registration_is_on_unless_switched_off(
    fragments: dict[str, object], on: bool
) -> None:
    assert gateway_auto_registration(fragments) is on


async def registered_gateway(stores: MemoryStores, gateway: str = "gw") -> int:
    registration = await stores.registry.register(
        "t1",
        gateway,
        fragments={"c8y_IsDevice": {}},
        connection={},
        connection_id=None,
        at=NOW,
    )
    return registration.object_id


def child(name: str, gateway: str = "gw") -> Declaration:
    return Declaration(name, {}, {"c8y_SupportedOperations": ["c8y_Restart"]}, gateway=gateway)


async def test_the_service_defers_until_the_gateway_is_registered_then_registers() -> None:
    stores = MemoryStores.make("t1", "t2")
    connectivity = RecordingConnectivity()
    gateways = Gateways(stores.children, connectivity, clock=lambda: NOW)
    assert not await gateways.declare_child(child("ch"), last_try=False)
    with pytest.raises(ValidationFailed, match="Gateway gw is not registered") as refused:
        await gateways.declare_child(child("ch"), last_try=True)
    assert refused.value.code == "devices/childRefused"
    await registered_gateway(stores)
    assert await gateways.declare_child(child("ch"), last_try=False)
    found = await stores.identity.device("ch")
    assert found is not None
    mo = await stores.inventory.get("t1", found.managed_object_id)
    assert mo is not None
    assert mo.fragments["c8y_Connection"] == {"status": "CONNECTED"}
    assert mo.fragments["fleetgate_Connection"] == {"status": "CONNECTED", "gateway": "gw"}
    assert await gateways.attached([("ch", "gw")]) == {("ch", "gw")}
    # The broker learns of the new child at once (its own login is refused from now on);
    # declaring it again changes no attachment.
    assert connectivity.changes == [("t1", [("ch", "gw")])]
    assert await gateways.declare_child(child("ch"), last_try=False)
    assert len(connectivity.changes) == 1


async def test_the_service_refuses_a_removed_child_and_a_tenant_switched_off() -> None:
    stores = MemoryStores.make("t1")
    connectivity = RecordingConnectivity()
    gateway = await registered_gateway(stores)
    gateways = Gateways(stores.children, connectivity, clock=lambda: NOW)
    stores.db.removed_children[(gateway, "ch")] = RemovedChildRow("deleted", NOW)
    with pytest.raises(ValidationFailed, match="an operator removed child ch"):
        await gateways.declare_child(child("ch"), last_try=False)
    stores.db.tenant_options[("t1", "fleetgate.gateways", "childAutoRegistration")] = "false"
    with pytest.raises(ValidationFailed, match="switched off"):
        await gateways.declare_child(child("other"), last_try=False)
    assert await stores.identity.device("ch") is None
    assert await stores.identity.device("other") is None


def incoming(topic: str, body: object) -> Incoming:
    return Incoming(topic, json.dumps(body).encode())


async def test_gateways_messages_about_children_reach_the_children_side() -> None:
    ops, letters, replies = FakeOperations(), FakeDeadLetters(), RecordingPublisher()
    children = FakeChildren(attached=[("theirs", "gw-2")])

    async def declare(declaration: Declaration, last_try: bool) -> bool:
        raise AssertionError("a child's declaration is not the device's own")

    messages = DeviceMessages(
        ops, declare, letters, replies, children=children, is_transient=unavailable
    )
    await messages.handle(
        [
            incoming("fg/d/gw/c/ch/inventory", {"type": "plc"}),
            incoming("fg/d/gw/c/theirs/inventory", {"type": "plc"}),
            incoming("fg/d/gw/c/ch/op/sync", {}),
            incoming("fg/d/gw/c/theirs/op/sync", {}),
            incoming("fg/d/gw/op/sync", {}),
            incoming("fg/d/gw/c/ch/op/status", {"id": "5", "status": "EXECUTING"}),
            incoming("fg/d/gw/c/ch/connection", {"status": "DISCONNECTED", "reason": "bus"}),
            incoming("fg/d/gw/c/theirs/connection", {"status": "CONNECTED"}),
        ]
    )
    assert [(r.device_id, r.connected, r.reason) for r in children.reached] == [
        ("ch", False, "bus")
    ]
    assert [d.device_id for d in children.declared] == ["ch"]
    assert ops.synced == [SyncRequest("ch", "gw"), SyncRequest("gw")]
    assert [(r.device_id, r.gateway) for r in ops.applied] == [("ch", "gw")]
    errors = {topic: body for topic, body in replies.messages}
    assert errors["fg/d/gw/c/theirs/error"]["error"] in (
        "devices/childRefused",
        "devices/notAChild",
    )
    assert {letter.topic for letter in letters.letters} == {
        "fg/d/gw/c/theirs/inventory",
        "fg/d/gw/c/theirs/op/sync",
    }
    assert all(letter.gateway == "gw" for letter in letters.letters)


async def test_a_batch_of_new_children_is_one_push_to_the_broker() -> None:
    stores = MemoryStores.make("t1")
    connectivity = RecordingConnectivity()
    await registered_gateway(stores)
    gateways = Gateways(stores.children, connectivity, clock=lambda: NOW)

    async def declare(declaration: Declaration, last_try: bool) -> bool:
        raise AssertionError("no device declares itself here")

    messages = DeviceMessages(
        FakeOperations(),
        declare,
        FakeDeadLetters(),
        RecordingPublisher(),
        children=gateways,
        is_transient=unavailable,
    )
    batch = [incoming(f"fg/d/gw/c/ch-{i}/inventory", {"type": "plc"}) for i in range(3)]
    batch.append(incoming("fg/d/gw/c/ch-0/inventory", {"type": "plc-2"}))  # known by then
    batch.append(incoming("fg/d/nobody/c/ch-9/inventory", {}))  # gateway unknown: later
    assert await messages.handle(batch) == [batch[-1]]
    assert connectivity.changes == [("t1", [("ch-0", "gw"), ("ch-1", "gw"), ("ch-2", "gw")])]
