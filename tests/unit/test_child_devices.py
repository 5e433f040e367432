"""A gateway's tree: the attach rules as pure decisions, the per-gateway setting, and the
use cases on in-memory ports (what a 404 names, what attaching returns)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from fleetgate.domain.child_devices import (
    Gateway,
    TreeEnd,
    check_gateway_settings,
    decide_attach,
)
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.gateways import gateway_auto_registration
from fleetgate.services.child_devices import ChildDevices

from memory import MemoryStores


def end(
    object_id: int,
    device_id: str | None = None,
    *,
    is_device: bool = True,
    gateway: Gateway | None = None,
    children: int = 0,
) -> TreeEnd:
    return TreeEnd(object_id, is_device, device_id or f"d{object_id}", gateway, children)


def test_a_free_device_becomes_a_gateways_child_once() -> None:
    assert decide_attach(1, 2, end(1), end(2)) is True
    assert decide_attach(1, 2, end(1), end(2, gateway=Gateway(1, "d1"))) is False
    # A gateway with children takes more.
    assert decide_attach(1, 3, end(1, children=5), end(3)) is True


def test_a_second_gateway_is_a_409_that_names_the_first() -> None:
    with pytest.raises(Conflict) as refused:
        decide_attach(1, 2, end(1), end(2, "kid", gateway=Gateway(7, "gw-7")))
    assert refused.value.message.startswith(
        "Managed object 2 (device kid) is already a child device of gateway 7 (device gw-7)"
    )
    assert "DELETE /inventory/managedObjects/7/childDevices/2" in refused.value.message


@pytest.mark.parametrize(
    ("gateway", "child", "message"),
    [
        (end(1), end(1), "its own child device"),
        (end(1, is_device=False), end(2), "managed object 1 \\(device d1\\) cannot be a gateway"),
        (end(1), end(2, is_device=False), "cannot be a child device: it is not a device that"),
        (TreeEnd(1, True, None, None, 0), end(2), "managed object 1 cannot be a gateway"),
        (end(1, gateway=Gateway(9, "g")), end(2), "is a child device of gateway 9, so it"),
        (end(1), end(2, children=2), "is a gateway with 2 child device\\(s\\), so it cannot"),
    ],
)
def test_what_cannot_be_attached_is_a_422_saying_why(
    gateway: TreeEnd, child: TreeEnd, message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message):
        decide_attach(gateway.object_id, child.object_id, gateway, child)


def test_an_end_outside_the_tenant_is_a_404() -> None:
    with pytest.raises(NotFound, match="Managed object 2 not found"):
        decide_attach(1, 2, end(1), None)
    with pytest.raises(NotFound, match="Managed object 1 not found"):
        decide_attach(1, 2, None, None)


@pytest.mark.parametrize(
    "value",
    [True, {}, {"childAutoRegistration": "false"}, {"childAutoRegistration": 0},
     {"childAutoRegistration": True, "more": 1}, [], "off"],
)  # fmt: skip
def test_the_gateway_setting_is_one_boolean(value: object) -> None:
    with pytest.raises(ValidationFailed, match=r'fleetgate_Gateway must be \{"childAuto'):
        check_gateway_settings({"fleetgate_Gateway": value})


def test_the_gateway_setting_is_on_unless_switched_off() -> None:
    for fragments in ({}, {"fleetgate_Gateway": {"childAutoRegistration": True}}):
        check_gateway_settings(fragments)
        assert gateway_auto_registration(fragments)
    off = {"fleetgate_Gateway": {"childAutoRegistration": False}}
    check_gateway_settings(off)
    check_gateway_settings({"fleetgate_Gateway": None})
    assert not gateway_auto_registration(off)


@pytest.fixture
def stores() -> MemoryStores:
    return MemoryStores.make("t1", "t2")


class ChangesTold:
    """Records what the service tells the children's connections (``children_changed``)."""

    def __init__(self) -> None:
        self.told: list[tuple[str, list[tuple[str, str | None]]]] = []

    async def __call__(self, tenant_id: str, changes: Sequence[tuple[str, str | None]]) -> None:
        self.told.append((tenant_id, list(changes)))


async def registered(stores: MemoryStores, serial: str) -> int:
    made = await stores.registry.register(
        "t1", serial, fragments={"c8y_IsDevice": {}}, connection={}, connection_id=None,
        at=datetime.now(UTC),
    )  # fmt: skip
    return made.object_id


async def test_attaching_returns_the_child_and_tells_the_connections(
    stores: MemoryStores,
) -> None:
    changes = ChangesTold()
    service = ChildDevices(stores.child_devices, stores.inventory, changes)
    gw, kid = await registered(stores, "gw"), await registered(stores, "kid")
    child, made = await service.attach("t1", gw, kid)
    assert (child.id, child.name, made) == (kid, "kid", True)
    assert (await service.attach("t1", gw, kid))[1] is False
    assert changes.told == [("t1", [("kid", "gw")])]  # once: the second changed nothing
    await service.detach("t1", gw, kid, "admin")
    assert changes.told[-1] == ("t1", [("kid", None)])


async def test_a_detach_404_says_what_is_missing(stores: MemoryStores) -> None:
    changes = ChangesTold()
    service = ChildDevices(stores.child_devices, stores.inventory, changes)
    gw, kid = await registered(stores, "gw"), await registered(stores, "kid")
    with pytest.raises(NotFound, match=f"Managed object {kid} is not a child device of {gw}"):
        await service.detach("t1", gw, kid, "admin")
    with pytest.raises(NotFound, match="Managed object 999 not found"):
        await service.detach("t1", 999, kid, "admin")
    await service.attach("t1", gw, kid)
    with pytest.raises(NotFound, match=f"Managed object {gw} not found"):
        await service.detach("t2", gw, kid, "admin")
    await service.detach("t1", gw, kid, "admin")
    [removal] = await service.removed_children("t1", gw)
    assert (removal.device_id, removal.removed_by) == ("kid", "admin")
