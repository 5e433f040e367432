"""Registration and attachment in any order end in the same tree (issue 11; thin-edge.io
tests its entity store the same way): a gateway connecting, a child registering on its own
(before its parent, too), an operator attaching the child, and the gateway declaring it —
whatever the order, once the gateway declares its children again (as after any reconnect)
and the operator retries what was refused for a missing device, the child is the
gateway's, once, with one device id."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetgate.domain.device_messages import Declaration
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.services.child_devices import ChildDevices
from fleetgate.services.gateways import Gateways

from fakes import RecordingConnectivity
from memory import MemoryStores

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DECLARED = Declaration("ch", {"type": "plc"}, {"c8y_SupportedOperations": []}, gateway="gw")


@st.composite
def histories(draw: st.DrawFn) -> list[str]:
    """The events, in an order: G (the gateway connects), D (it declares the child),
    and either C (the child registers by itself) with A (an operator attaches it), or A
    alone, or neither."""
    events = ["G", "D"]
    own = draw(st.booleans())
    if own:
        events += ["C", "A"]
    elif draw(st.booleans()):
        events.append("A")
    return draw(st.permutations(events))


class Tree:
    def __init__(self) -> None:
        self.stores = MemoryStores.make("t1")
        self.connectivity = RecordingConnectivity()
        self.gateways = Gateways(self.stores.children, self.connectivity, clock=lambda: NOW)
        self.operators = ChildDevices(
            self.stores.child_devices, self.stores.inventory, self.connectivity.children_changed
        )
        self.refusals: list[str] = []

    async def register(self, device_id: str) -> None:
        await self.stores.registry.register(
            "t1", device_id, fragments={"c8y_IsDevice": {}}, connection={},
            connection_id=None, at=NOW,
        )  # fmt: skip

    async def object_id(self, device_id: str) -> int | None:
        found = await self.stores.identity.device(device_id)
        return found.managed_object_id if found is not None else None

    async def attach(self) -> bool:
        gateway, child = await self.object_id("gw"), await self.object_id("ch")
        if gateway is None or child is None:
            return False  # 404: the operator tries again once both exist
        try:
            await self.operators.attach("t1", gateway, child)
        except NotFound:
            return False
        return True

    async def declare(self) -> bool:
        try:
            return await self.gateways.declare_child(DECLARED, last_try=False)
        except ValidationFailed as refused:
            self.refusals.append(refused.message)
            return False

    async def happen(self, event: str) -> bool:
        if event == "G":
            await self.register("gw")
            return True
        if event == "C":
            await self.register("ch")
            return True
        if event == "A":
            return await self.attach()
        return await self.declare()


@settings(max_examples=200, deadline=None)
@given(history=histories())
async def test_any_order_ends_in_the_same_tree(history: list[str]) -> None:
    tree = Tree()
    pending = [event for event in history if not await tree.happen(event)]
    # The operator retries an attach refused for a missing device; the gateway declares
    # its children again at its next connect (the link retries a deferred one).
    for _ in range(2):
        pending = [event for event in pending if not await tree.happen(event)]
    assert pending == [], (history, tree.refusals)

    gateway, child = await tree.object_id("gw"), await tree.object_id("ch")
    assert gateway is not None
    assert child is not None
    references = await tree.stores.inventory.references("t1", [gateway, child])
    assert [(r.kind, r.object_id) for r in references[child]] == [("deviceParents", gateway)]
    assert [(r.kind, r.object_id) for r in references[gateway]] == [("childDevices", child)]
    assert await tree.stores.children.attached([("ch", "gw")]) == {("ch", "gw")}
    # One object per device id: nothing was registered twice.
    devices = [o for o in tree.stores.db.objects.values() if "c8y_IsDevice" in o.fragments]
    assert sorted(o.id for o in devices) == sorted({gateway, child})
    # Only the reasons the order explains: the gateway unknown yet (deferred, no
    # refusal), or the child a plain device before the operator attached it.
    assert all("not a child of gateway gw" in r for r in tree.refusals), tree.refusals
    # The broker heard of the attachment (the child's own login refused from then on).
    assert ("t1", [("ch", "gw")]) in tree.connectivity.changes
