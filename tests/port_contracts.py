"""Contracts that the in-memory adapters (``memory``) and the PostgreSQL ones must both
keep, for the riskiest ports: the operation store (reports decided as the domain says,
the bound rule, success effects, time-outs), device ids (global across tenants,
released when they go), and bulk operations with their scheduler's steps (targets fixed
at creation, one operation per device and attempt, counts, pause, cancel, reschedule).

Each contract is a class of tests on a :class:`Ports` fixture named ``ports``, whose
tenants ``t1`` and ``t2`` exist; a test module subclasses it as ``Test…`` and provides
the fixture (``tests/unit/test_port_contracts.py`` on the fakes,
``tests/integration/test_port_contracts_pg.py`` on PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from fleetgate.domain.bootstrap import RequestStatus
from fleetgate.domain.bulk_operations import (
    RETRY_FRAGMENT,
    BulkFilter,
    BulkOperation,
    BulkStatus,
    NewBulkOperation,
    Prepared,
    Refusal,
    StepReport,
    TargetState,
)
from fleetgate.domain.child_devices import Attached, Detached, HowRemoved
from fleetgate.domain.connections import ConnectionStatus, connection_fragments
from fleetgate.domain.device_messages import ConnectivityReport, Declaration
from fleetgate.domain.errors import Conflict, NotFound, ValidationFailed
from fleetgate.domain.gateways import Verdict
from fleetgate.domain.inventory import ObjectFilter, Reference
from fleetgate.domain.inventory_query import parse_query
from fleetgate.domain.lockout import NO_FAILURES, LoginFailures
from fleetgate.domain.operations import (
    NO_DEVICE_REASON,
    NO_SNAPSHOT_REASON,
    DeviceTarget,
    Move,
    Operation,
    OperationFilter,
    Report,
    Status,
)
from fleetgate.domain.rollouts import Canary, Retries, Rollout
from fleetgate.domain.tenant_options import TenantOption
from fleetgate.domain.users import Role
from fleetgate.services.enablement import EnablementStore
from fleetgate.services.gateways import ChildStore
from fleetgate.services.ports import (
    BulkOperationStore,
    ChildConnections,
    ChildDeviceStore,
    DeviceRegistry,
    DeviceUsers,
    GroupStore,
    Identity,
    Inventory,
    NewDeviceRequests,
    OperationStore,
    RolloutSteps,
    TenantOptionStore,
)

#: The connection fragments of a device that connects (what ``register`` is given).
ONLINE: dict[str, Any] = {
    "c8y_Connection": {"status": "CONNECTED"},
    "fleetgate_Lifecycle": {"status": "ONLINE"},
}


@dataclass
class Ports:
    """The adapters under contract, on one database holding tenants t1 and t2."""

    inventory: Inventory
    identity: Identity
    users: DeviceUsers
    registry: DeviceRegistry
    requests: NewDeviceRequests
    operations: OperationStore
    #: The base URL the operation store writes into snapshot URLs.
    base_url: str
    children: ChildStore
    #: Gateways' children's online and offline.
    connections: ChildConnections
    groups: GroupStore
    bulk: BulkOperationStore
    steps: RolloutSteps
    #: Makes every bulk operation due for a step now (its next look and its rate).
    make_due: Callable[[], Awaitable[None]]
    options: TenantOptionStore
    child_devices: ChildDeviceStore
    enablement: EnablementStore

    async def device(self, serial: str, tenant: str = "t1") -> int:
        """A registered device; its object id."""
        registered = await self.registry.register(
            tenant,
            serial,
            fragments={"c8y_IsDevice": {}},
            connection={},
            connection_id=None,
            at=datetime.now(UTC),
        )
        return registered.object_id

    async def target(self, object_id: int, tenant: str = "t1") -> DeviceTarget:
        found = await self.operations.device(tenant, object_id)
        assert found is not None
        return found

    async def operation(
        self, object_id: int, command: str = "c8y_Restart", value: Any = None, tenant: str = "t1"
    ) -> Operation:
        return await self.operations.create(
            tenant,
            await self.target(object_id, tenant),
            fragment_type=command,
            description=None,
            fragments={command: {} if value is None else value},
        )

    async def status(self, op: Operation) -> tuple[Status, str | None]:
        found = await self.operations.get(op.tenant_id, op.id)
        assert found is not None
        return found.status, found.failure_reason

    async def fragments(self, object_id: int, tenant: str = "t1") -> dict[str, Any]:
        found = await self.inventory.get(tenant, object_id)
        assert found is not None
        return found.fragments


class OperationStoreContract:
    """:class:`~fleetgate.services.ports.OperationStore`."""

    async def test_a_batch_is_decided_in_order_and_each_outcome_shows_its_move(
        self, ports: Ports
    ) -> None:
        op = await ports.operation(await ports.device("d1"))
        assert (op.status, op.serial, op.device_name, op.failure_reason) == (
            Status.PENDING, "d1", "d1", None,
        )  # fmt: skip
        outcomes = await ports.operations.apply(
            [
                Report(op.id, Status.EXECUTING, "not a failure", serial="d1"),
                Report(op.id, Status.EXECUTING, serial="d1"),
                Report(op.id, Status.SUCCESSFUL, serial="d1"),
                Report(op.id, Status.EXECUTING, serial="d1"),
            ]
        )
        assert [o.move for o in outcomes] == [
            Move.APPLY, Move.DUPLICATE, Move.APPLY, Move.ILLEGAL,
        ]  # fmt: skip
        assert [o.current for o in outcomes] == [
            Status.PENDING, Status.EXECUTING, Status.EXECUTING, Status.SUCCESSFUL,
        ]  # fmt: skip
        shown = [(o.operation.status, o.operation.failure_reason) if o.operation else None
                 for o in outcomes]  # fmt: skip
        assert shown == [(Status.EXECUTING, None), None, (Status.SUCCESSFUL, None), None]
        assert await ports.status(op) == (Status.SUCCESSFUL, None)
        assert await ports.operations.apply([]) == []

    async def test_reports_find_only_what_their_reporter_may_move(self, ports: Ports) -> None:
        await ports.device("d2")
        op = await ports.operation(await ports.device("d1"))
        outcomes = await ports.operations.apply(
            [
                Report(op.id, Status.EXECUTING, serial="d2"),  # another device's
                Report(op.id, Status.EXECUTING, tenant_id="t2"),  # another tenant's operator
                Report(424242, Status.EXECUTING, serial="d1"),  # none at all
            ]
        )
        assert [(o.move, o.current, o.operation) for o in outcomes] == [(None, None, None)] * 3
        assert await ports.status(op) == (Status.PENDING, None)
        [by_operator] = await ports.operations.apply([Report(op.id, Status.FAILED, tenant_id="t1")])
        assert by_operator.move is Move.APPLY
        assert await ports.status(op) == (Status.FAILED, NO_DEVICE_REASON)

    async def test_success_changes_the_device_record(self, ports: Ports) -> None:
        device = await ports.device("d1")
        firmware = {"name": "fw", "version": "2.0", "url": "http://x/fw"}
        op = await ports.operation(device, "c8y_Firmware", firmware)
        await ports.operations.apply([Report(op.id, Status.SUCCESSFUL, serial="d1")])
        assert (await ports.fragments(device))["c8y_Firmware"] == firmware

    async def test_a_snapshot_request_succeeds_only_with_its_snapshot(self, ports: Ports) -> None:
        device = await ports.device("d1")
        without = await ports.operation(device, "c8y_UploadConfigFile", {"type": "agent"})
        await ports.operations.apply([Report(without.id, Status.SUCCESSFUL, serial="d1")])
        assert await ports.status(without) == (Status.FAILED, NO_SNAPSHOT_REASON)

        op = await ports.operation(device, "c8y_UploadConfigFile", {"type": "ssh"})
        with pytest.raises(Conflict) as twice:
            await ports.operation(device, "c8y_UploadConfigFile", {"type": "ssh"})
        assert twice.value.code == "devicecontrol/Conflict"
        snapshots = [
            await ports.inventory.create("t1", name=n, type=None, owner=None, fragments={})
            for n in ("first", "second")
        ]
        with pytest.raises(Conflict):
            await ports.operations.attach_snapshot(op.id, "d2", snapshots[0].id)
        assert await ports.operations.attach_snapshot(op.id, "d1", snapshots[0].id) is None
        assert await ports.operations.attach_snapshot(op.id, "d1", snapshots[1].id) == (
            snapshots[0].id
        )
        await ports.operations.apply([Report(op.id, Status.SUCCESSFUL, serial="d1")])
        assert await ports.status(op) == (Status.SUCCESSFUL, None)
        shown = (await ports.fragments(device))["c8y_Configuration_ssh"]
        url = f"{ports.base_url}/inventory/binaries/{snapshots[1].id}"
        assert shown["url"] == url
        entry = await ports.inventory.get("t1", int(shown["snapshotId"]))
        assert entry is not None
        assert (entry.type, entry.fragments["url"]) == ("c8y_ConfigurationDump", url)
        assert entry.fragments["configurationType"] == "ssh"
        assert await ports.operations.configuration_dumps("t1", url) == [entry.fragments]
        with pytest.raises(Conflict):  # final: no snapshot any more
            await ports.operations.attach_snapshot(op.id, "d1", snapshots[0].id)

    async def test_open_and_undispatched_operations_oldest_first(self, ports: Ports) -> None:
        device = await ports.device("d1")
        made = [await ports.operation(device) for _ in range(3)]
        await ports.operations.apply(
            [
                Report(made[1].id, Status.SUCCESSFUL, serial="d1"),
                Report(made[2].id, Status.EXECUTING, serial="d1"),
            ]
        )
        assert [o.id for o in await ports.operations.open_for(["d1", "nobody"])] == [
            made[0].id, made[2].id,
        ]  # fmt: skip
        assert [o.id for o in await ports.operations.undispatched(10)] == [made[0].id]
        await ports.operations.mark_dispatched([made[0].id])
        assert await ports.operations.undispatched(10) == []

    async def test_operations_stay_with_the_device_not_the_id(self, ports: Ports) -> None:
        """The bound rule: an id taken from the device reaches none of its operations."""
        op = await ports.operation(await ports.device("hd1"))
        assert [o.id for o in await ports.operations.open_for(["hd1"])] == [op.id]
        assert await ports.identity.delete("t1", "c8y_Serial", "hd1")
        await ports.device("hd1", tenant="t2")
        assert await ports.operations.open_for(["hd1"]) == []
        assert await ports.operations.undispatched(10) == []
        [outcome] = await ports.operations.apply([Report(op.id, Status.SUCCESSFUL, serial="hd1")])
        assert outcome.move is None
        assert await ports.status(op) == (Status.PENDING, None)

    async def test_open_operations_past_their_limit_fail(self, ports: Ports) -> None:
        device = await ports.device("d1")
        pending = await ports.operation(device)
        executing = await ports.operation(device)
        await ports.operations.apply([Report(executing.id, Status.EXECUTING, serial="d1")])
        assert await ports.operations.time_out(3600, 3600) == []
        [timed_out] = await ports.operations.time_out(-1.5, 3600)
        assert (timed_out.id, timed_out.status) == (pending.id, Status.FAILED)
        assert timed_out.failure_reason == "Timed out: PENDING for more than -1.5 s"
        [timed_out] = await ports.operations.time_out(-1, -1)
        assert timed_out.failure_reason == "Timed out: EXECUTING for more than -1 s"

    async def test_fields_merge_and_lists_filter(self, ports: Ports) -> None:
        d1, d2 = await ports.device("d1"), await ports.device("d2")
        op = await ports.operation(d1)
        await ports.operation(d2)
        updated = await ports.operations.update_fields(
            "t1", op.id, "Reboot", {"note": {"a": 1}, "c8y_Restart": None}
        )
        assert updated is not None
        assert (updated.description, updated.fragments) == ("Reboot", {"note": {"a": 1}})
        kept = await ports.operations.update_fields("t1", op.id, None, {"note": None})
        assert kept is not None
        assert (kept.description, kept.fragments) == ("Reboot", {})
        assert await ports.operations.update_fields("t2", op.id, "x", {}) is None
        flt = OperationFilter(device_id=d1)
        assert [o.id for o in await ports.operations.find("t1", flt, 0, 10, revert=False)] == [
            op.id
        ]
        assert await ports.operations.count("t1", OperationFilter()) == 2
        assert await ports.operations.count("t2", OperationFilter()) == 0
        assert await ports.operations.get("t2", op.id) is None
        assert await ports.operations.get_by_id(op.id) == await ports.operations.get("t1", op.id)


class DeviceIdContract:
    """Device ids are global (decision 0006): :class:`~fleetgate.services.ports.Identity`,
    :class:`~fleetgate.services.ports.DeviceRegistry` and
    :class:`~fleetgate.services.ports.NewDeviceRequests` together."""

    async def taken(self, ports: Ports, device_id: str) -> None:
        """Every path by which t2 could take ``device_id`` is refused."""
        theirs = await ports.inventory.create("t2", name="x", type=None, owner=None, fragments={})
        attempts: list[Callable[[], Awaitable[object]]] = [
            lambda: ports.identity.add("t2", theirs.id, "c8y_Serial", device_id),
            lambda: ports.requests.create("t2", device_id),
            lambda: ports.registry.register(
                "t2", device_id, fragments={}, connection={}, connection_id=None,
                at=datetime.now(UTC),
            ),
        ]  # fmt: skip
        for attempt in attempts:
            with pytest.raises(Conflict) as refused:
                await attempt()
            assert refused.value.code == "identity/Duplicate"
            assert f"The device id {device_id} is in use in another tenant" in str(refused.value)
        assert await ports.identity.of_object("t2", theirs.id) == []
        assert await ports.users.find_user("t2", f"device_{device_id}") is None

    async def test_a_device_id_held_by_a_device_is_nobody_elses(self, ports: Ports) -> None:
        mine = await ports.inventory.create("t1", name="m", type=None, owner=None, fragments={})
        added = await ports.identity.add("t1", mine.id, "c8y_Serial", "hd1")
        assert await ports.identity.device("hd1") == added
        await self.taken(ports, "hd1")
        assert await ports.identity.device("hd1") == added

    async def test_a_device_id_held_by_a_request_is_nobody_elses(self, ports: Ports) -> None:
        await ports.requests.create("t1", "hd1")
        await self.taken(ports, "hd1")
        assert (
            await ports.requests.get("t1", "hd1")
        ).status is RequestStatus.WAITING_FOR_CONNECTION
        # The holder itself may give the id to its device.
        await ports.device("hd1")
        assert await ports.requests.count("t1") == 1

    async def test_an_object_holds_one_device_id_once(self, ports: Ports) -> None:
        mine = await ports.inventory.create("t1", name="m", type=None, owner=None, fragments={})
        await ports.identity.add("t1", mine.id, "c8y_Serial", "first")
        with pytest.raises(Conflict, match="has the device id first already"):
            await ports.identity.add("t1", mine.id, "c8y_Serial", "second")
        with pytest.raises(Conflict, match="External id c8y_Serial/first already exists"):
            await ports.identity.add("t1", mine.id, "c8y_Serial", "first")
        with pytest.raises(NotFound):
            await ports.identity.add("t1", 999_999, "c8y_Serial", "third")
        await ports.identity.add("t1", mine.id, "asset", "A-1")
        other = await ports.inventory.create("t2", name="o", type=None, owner=None, fragments={})
        await ports.identity.add("t2", other.id, "asset", "A-1")  # other types are per tenant
        assert [(e.type, e.value) for e in await ports.identity.of_object("t1", mine.id)] == [
            ("asset", "A-1"), ("c8y_Serial", "first"),
        ]  # fmt: skip

    async def test_released_ids_wait_for_their_sessions_to_be_discarded(self, ports: Ports) -> None:
        await ports.device("a")
        b = await ports.device("b")
        assert await ports.registry.released(10) == []
        assert await ports.identity.delete("t1", "c8y_Serial", "a")
        assert not await ports.identity.delete("t1", "c8y_Serial", "a")
        deleted = await ports.inventory.delete("t1", b)
        assert deleted is not None
        assert deleted.device_ids == ["b"]
        assert await ports.registry.released(10) == ["a", "b"]
        assert await ports.registry.released(1) == ["a"]
        await ports.registry.discarded(["a"])
        assert await ports.registry.released(10) == ["b"]
        # A released id is free: another tenant may take it.
        await ports.device("a", tenant="t2")

    async def test_a_declaration_updates_the_device_that_holds_the_id(self, ports: Ports) -> None:
        assert not await ports.inventory.update_device("nobody", {"name": "x"}, {"c8y_A": 1})
        device = await ports.device("decl", tenant="t2")
        await ports.inventory.update("t2", device, {}, {"c8y_Old": {"v": 1}, "c8y_Gone": {"v": 2}})
        assert await ports.inventory.update_device(
            "decl", {"type": "thermo"}, {"c8y_Old": {"v": 3}, "c8y_Gone": None}
        )
        found = await ports.inventory.get("t2", device)
        assert found is not None
        assert found.type == "thermo"
        assert found.fragments["c8y_Old"] == {"v": 3}
        assert "c8y_Gone" not in found.fragments
        assert found.fragments["c8y_IsDevice"] == {}  # the rest is kept

    async def test_a_device_created_without_a_connection_is_inactive(self, ports: Ports) -> None:
        device = await ports.inventory.create(
            "t1", name="d", type=None, owner=None, fragments={"c8y_IsDevice": {}}
        )
        assert device.fragments["fleetgate_Lifecycle"] == {"status": "INACTIVE"}
        other = await ports.inventory.create(
            "t1", name="o", type=None, owner=None, fragments={"c8y_Thing": {}}
        )
        assert "fleetgate_Lifecycle" not in other.fragments

    async def test_registration_makes_the_device_and_its_user_once(self, ports: Ports) -> None:
        first = await ports.registry.register(
            "t1", "d1", fragments={"c8y_IsDevice": {}}, connection=ONLINE,
            connection_id="e-1", at=datetime.now(UTC),
        )  # fmt: skip
        again = await ports.registry.register(
            "t1", "d1", fragments={"ignored": {}}, connection={}, connection_id="e-2",
            at=datetime.now(UTC),
        )  # fmt: skip
        assert (first.created, first.user_created, first.user_enabled) == (True, True, True)
        assert (again.object_id, again.created, again.user_created) == (
            first.object_id,
            False,
            False,
        )
        mo = await ports.inventory.get("t1", first.object_id)
        assert mo is not None
        assert (mo.name, mo.type, mo.owner) == ("d1", "c8y_MQTTDevice", "device_d1")
        # Its lifecycle is the connection's, never INACTIVE (it connected).
        assert mo.fragments == {"c8y_IsDevice": {}, **ONLINE}
        assert await ports.inventory.connected_devices() == [("t1", "d1")]
        await ports.users.set_enabled("t1", "device_d1", False)
        assert await ports.registry.ensure_user("t1", "d1") == (False, False)

    async def test_an_accepted_request_issues_the_device_once(self, ports: Ports) -> None:
        await ports.requests.create("t1", "hd1")
        await ports.requests.mark_pending("t1", "hd1")
        assert not await ports.requests.issue("t1", "hd1", "hash")  # not accepted yet
        await ports.requests.move("t1", "hd1", lambda _: RequestStatus.ACCEPTED)
        assert await ports.requests.issue("t1", "hd1", "hash")
        assert not await ports.requests.issue("t1", "hd1", "hash")
        assert await ports.requests.status_of("t1", "hd1") is None
        found = await ports.users.find_user("t1", "device_hd1")
        assert found is not None
        assert (found[1].password_hash, found[1].enabled) == ("hash", True)
        device = await ports.identity.device("hd1")
        assert device is not None
        assert device.tenant_id == "t1"


class EnablementContract:
    """Devices' disabled flag (:class:`~fleetgate.services.enablement.EnablementStore`)
    with everything that follows it: the device user, the lifecycle shown (a gateway's
    children's too), operations held back, what connection changes write afterwards."""

    async def test_disabling_a_gateway_disables_it_and_its_children_shown(
        self, ports: Ports
    ) -> None:
        gateway = await ports.device("gw")
        await ports.children.declare_child(
            Declaration("ch", {}, {}, gateway="gw"), {}, datetime.now(UTC)
        )
        child = await ports.identity.device("ch")
        assert child is not None
        child_id = child.managed_object_id
        op = await ports.operation(child_id)
        assert not op.held
        done = await ports.enablement.set_disabled("t1", gateway, True, datetime.now(UTC))
        assert done is not None
        assert (done.device_id, done.gateway, done.is_device, done.changed) == (
            "gw", None, True, True,
        )  # fmt: skip
        assert done.user is not None
        assert not done.user.enabled
        assert (await ports.fragments(gateway))["fleetgate_Lifecycle"] == {
            "status": "DISABLED", "reason": "disabled",
        }  # fmt: skip
        by_parent = {"status": "DISABLED", "reason": "gateway gw disabled"}
        assert (await ports.fragments(child_id))["fleetgate_Lifecycle"] == by_parent
        assert await ports.enablement.disabled_devices() == {"gw": "t1"}
        held = await ports.operations.get("t1", op.id)
        assert held is not None
        assert held.held
        assert [o.id for o in await ports.operations.undispatched(10)] == []
        # The children's connection brought up to date keeps them disabled by the parent.
        await ports.connections.refresh([("t1", "gw")], datetime.now(UTC))
        assert (await ports.fragments(child_id))["fleetgate_Lifecycle"] == by_parent
        again = await ports.enablement.set_disabled("t1", gateway, True, datetime.now(UTC))
        assert again is not None
        assert not again.changed
        back = await ports.enablement.set_disabled("t1", gateway, False, datetime.now(UTC))
        assert back is not None
        assert back.user is not None
        assert back.user.enabled
        assert (await ports.fragments(child_id))["fleetgate_Lifecycle"]["status"] != "DISABLED"
        assert await ports.enablement.disabled_devices() == {}
        assert [o.id for o in await ports.operations.undispatched(10)] == [op.id]

    async def test_a_disabled_device_disconnecting_stays_disabled(self, ports: Ports) -> None:
        device = await ports.device("d1")
        await ports.enablement.set_disabled("t1", device, True, datetime.now(UTC))
        await ports.inventory.set_connection(
            "t1",
            "d1",
            connection_fragments(ConnectionStatus.DISCONNECTED, datetime.now(UTC)),
            connection_id=None,
            at=datetime.now(UTC),
        )
        shown = await ports.fragments(device)
        assert shown["c8y_Connection"] == {"status": "DISCONNECTED"}
        assert shown["fleetgate_Lifecycle"] == {"status": "DISABLED", "reason": "disabled"}
        await ports.enablement.set_disabled("t1", device, False, datetime.now(UTC))
        assert (await ports.fragments(device))["fleetgate_Lifecycle"] == {
            "status": "OFFLINE", "reason": "connection closed",
        }  # fmt: skip

    async def test_only_the_tenants_devices_are_switched(self, ports: Ports) -> None:
        device = await ports.device("d2")
        assert await ports.enablement.set_disabled("t2", device, True, datetime.now(UTC)) is None
        thing = await ports.inventory.create("t1", name="x", type=None, owner=None, fragments={})
        done = await ports.enablement.set_disabled("t1", thing.id, True, datetime.now(UTC))
        assert done is not None
        assert not done.is_device
        assert await ports.enablement.object_of("t1", "d2") == device
        assert await ports.enablement.object_of("t2", "d2") is None
        assert await ports.enablement.disabled_devices() == {}

    async def test_credentials_issued_to_a_disabled_device_leave_it_disabled(
        self, ports: Ports
    ) -> None:
        device = await ports.device("hd2")
        await ports.enablement.set_disabled("t1", device, True, datetime.now(UTC))
        await ports.requests.create("t1", "hd2")
        await ports.requests.move("t1", "hd2", lambda _: RequestStatus.ACCEPTED)
        issued = await ports.requests.issue("t1", "hd2", "hash")
        assert issued is not None
        assert not issued.enabled
        found = await ports.users.find_user("t1", "device_hd2")
        assert found is not None
        assert (found[1].password_hash, found[1].enabled) == ("hash", False)
        assert await ports.registry.ensure_user("t1", "hd2") == (False, False)

    async def test_a_disabled_child_is_named_as_such(self, ports: Ports) -> None:
        await ports.device("gw-3")
        for child in ("c1", "c2"):
            await ports.children.declare_child(
                Declaration(child, {}, {}, gateway="gw-3"), {}, datetime.now(UTC)
            )
        found = await ports.identity.device("c1")
        assert found is not None
        await ports.enablement.set_disabled("t1", found.managed_object_id, True, datetime.now(UTC))
        pairs = [("c1", "gw-3"), ("c2", "gw-3"), ("c1", "other")]
        assert await ports.children.disabled_children(pairs) == {("c1", "gw-3")}


class ChildStoreContract:
    """Gateways' children (:class:`~fleetgate.services.gateways.ChildStore`): a gateway's
    declaration registers a child once, below it, and never takes anyone's device."""

    async def declare(
        self, ports: Ports, gateway: str, child: str, **fragments: Any
    ) -> tuple[Verdict, str | None, int | None] | None:
        done = await ports.children.declare_child(
            Declaration(child, {"type": "plc"}, fragments, gateway=gateway),
            {"c8y_Connection": {"status": "CONNECTED"}},
            datetime.now(UTC),
        )
        if done is None:
            return None
        return done.decision.verdict, done.decision.reason, done.object_id

    async def test_a_new_child_is_registered_below_its_gateway_once(self, ports: Ports) -> None:
        gateway = await ports.device("gw")
        assert await self.declare(ports, "nobody", "ch") is None  # unknown gateway
        first = await self.declare(ports, "gw", "ch", c8y_A={"x": 1})
        assert first is not None
        verdict, _, child = first
        assert verdict is Verdict.REGISTER
        assert child is not None
        found = await ports.inventory.get("t1", child)
        assert found is not None
        assert (found.name, found.type, found.owner) == ("ch", "plc", "device_gw")
        assert found.fragments == {
            "c8y_IsDevice": {}, "c8y_A": {"x": 1}, "c8y_Connection": {"status": "CONNECTED"},
        }  # fmt: skip
        shown = (await ports.inventory.references("t1", [child]))[child]
        assert [(r.kind, r.object_id) for r in shown] == [("deviceParents", gateway)]
        assert (await ports.identity.device("ch")) is not None
        again = await self.declare(ports, "gw", "ch", c8y_A=None, c8y_B=2)
        assert again == (Verdict.KNOWN, None, child)
        found = await ports.inventory.get("t1", child)
        assert found is not None
        assert "c8y_A" not in found.fragments
        assert found.fragments["c8y_B"] == 2
        assert await ports.children.attached([("ch", "gw"), ("ch", "other"), ("gw", "ch")]) == {
            ("ch", "gw")
        }

    async def test_a_gateway_takes_no_device_by_naming_it(self, ports: Ports) -> None:
        await ports.device("gw-1")
        await ports.device("gw-2")
        await ports.device("plain")
        await ports.device("theirs", tenant="t2")
        assert await self.declare(ports, "gw-1", "ch") is not None
        for gateway, child, reason in (
            ("gw-2", "ch", "is a child of gateway gw-1"),
            ("gw-2", "plain", "not a child of gateway gw-2"),
            ("gw-2", "theirs", "another tenant"),
            ("gw-2", "gw-2", "its own child"),
        ):
            refused = await self.declare(ports, gateway, child)
            assert refused is not None
            verdict, why, object_id = refused
            assert verdict is Verdict.REFUSED
            assert object_id is None
            assert reason in str(why)
        assert await ports.children.attached([("ch", "gw-2"), ("plain", "gw-2")]) == set()

    async def test_a_child_has_no_children(self, ports: Ports) -> None:
        await ports.device("gw")
        assert await self.declare(ports, "gw", "ch") is not None
        # The child has a device id, so it could be named as a gateway: it is refused.
        refused = await self.declare(ports, "ch", "grandchild")
        assert refused is not None
        assert refused[0] is Verdict.REFUSED
        assert "itself a child of gateway gw" in str(refused[1])
        assert await ports.identity.device("grandchild") is None

    async def test_a_gateway_switched_off_registers_none(self, ports: Ports) -> None:
        gateway = await ports.device("gw")
        await ports.inventory.update(
            "t1", gateway, {}, {"fleetgate_Gateway": {"childAutoRegistration": False}}
        )
        refused = await self.declare(ports, "gw", "ch")
        assert refused is not None
        assert refused[0] is Verdict.REFUSED
        assert await ports.identity.device("ch") is None


# --- gateways' children's online and offline ---------------------------------------------

CONNECTED, DISCONNECTED = ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


def lost(child: str, gateway: str = "gw-1", reason: str | None = None) -> ConnectivityReport:
    return ConnectivityReport(child, gateway, False, reason)


def found(child: str, gateway: str = "gw-1") -> ConnectivityReport:
    return ConnectivityReport(child, gateway, True)


class ChildConnectionContract:
    """Gateways' children's online and offline
    (:class:`~fleetgate.services.ports.ChildConnections`)."""

    async def gateway(
        self, ports: Ports, gateway: str, children: Sequence[str], *, tenant: str = "t1"
    ) -> dict[str, int]:
        """A gateway (not connected) with these children, attached; object ids by id."""
        ids = {gateway: await ports.device(gateway, tenant)}
        for child in children:
            ids[child] = await ports.device(child, tenant)
            assert await ports.inventory.add_child(tenant, ids[gateway], "childDevices", ids[child])
        return ids

    async def connect(self, ports: Ports, device: str, connection_id: str = "c-1") -> None:
        await ports.registry.register(
            "t1", device, fragments={}, connection=connection_fragments(CONNECTED, AT),
            connection_id=connection_id, at=AT,
        )  # fmt: skip

    async def disconnect(self, ports: Ports, device: str) -> None:
        await ports.inventory.set_connection(
            "t1", device, connection_fragments(DISCONNECTED, AT), connection_id=None, at=AT
        )

    async def shown(self, ports: Ports, object_id: int) -> tuple[str | None, dict[str, Any]]:
        """(c8y_Connection.status, fleetgate_Connection) of the object."""
        fragments = await ports.fragments(object_id)
        return fragments.get("c8y_Connection", {}).get("status"), fragments.get(
            "fleetgate_Connection", {}
        )

    async def test_children_follow_their_gateway(self, ports: Ports) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1", "c2"])
        await children.refresh([("t1", "gw-1")], AT)
        offline = ("DISCONNECTED", {
            "status": "DISCONNECTED", "gateway": "gw-1", "reason": "gateway gw-1 disconnected",
        })  # fmt: skip
        assert [await self.shown(ports, ids[c]) for c in ("c1", "c2")] == [offline] * 2
        await self.connect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], LATER)
        online = ("CONNECTED", {"status": "CONNECTED", "gateway": "gw-1"})
        assert [await self.shown(ports, ids[c]) for c in ("c1", "c2")] == [online] * 2
        availability = (await ports.fragments(ids["c1"]))["c8y_Availability"]
        assert availability == {"status": "AVAILABLE", "lastMessage": "2026-03-01T12:05:00.000Z"}
        await self.disconnect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], LATER)
        assert [await self.shown(ports, ids[c]) for c in ("c1", "c2")] == [offline] * 2
        # The gateway itself shows its own connection, untouched.
        assert await self.shown(ports, ids["gw-1"]) == (
            "DISCONNECTED", {"status": "DISCONNECTED", "reason": "connection closed"},
        )  # fmt: skip

    async def test_what_is_shown_already_is_not_written_again(self, ports: Ports) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1"])
        await self.connect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], AT)
        before = await ports.inventory.get("t1", ids["c1"])
        await children.refresh([("t1", "gw-1"), ("t1", "c1")], LATER)
        await children.refresh_all(LATER)
        assert await children.report([found("c1")], LATER) == []
        assert await ports.inventory.get("t1", ids["c1"]) == before

    async def test_a_report_takes_one_child_offline_with_the_gateways_reason(
        self, ports: Ports
    ) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1", "c2"])
        await self.connect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], AT)
        assert await children.report([lost("c1", reason="BLE link lost")], AT) == []
        assert await self.shown(ports, ids["c1"]) == ("DISCONNECTED", {
            "status": "DISCONNECTED", "gateway": "gw-1",
            "reason": "reported by gateway gw-1: BLE link lost",
        })  # fmt: skip
        assert (await self.shown(ports, ids["c2"]))[0] == "CONNECTED"
        # The gateway leaves and comes back: the child it reported lost stays offline.
        await self.disconnect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], AT)
        assert (await self.shown(ports, ids["c1"]))[1]["reason"] == "gateway gw-1 disconnected"
        await self.connect(ports, "gw-1", "c-2")
        await children.refresh([("t1", "gw-1")], LATER)
        assert (await self.shown(ports, ids["c1"]))[1]["reason"] == (
            "reported by gateway gw-1: BLE link lost"
        )
        assert (await self.shown(ports, ids["c2"]))[0] == "CONNECTED"
        # Within a batch, a child's last report wins; without a reason, none is quoted.
        assert await children.report([found("c1"), lost("c1")], LATER) == []
        assert (await self.shown(ports, ids["c1"]))[1]["reason"] == "reported by gateway gw-1"
        assert await children.report([lost("c1"), found("c1")], LATER) == []
        assert await self.shown(ports, ids["c1"]) == (
            "CONNECTED", {"status": "CONNECTED", "gateway": "gw-1"},
        )  # fmt: skip

    async def test_a_report_about_what_is_not_the_gateways_child_changes_nothing(
        self, ports: Ports
    ) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1"])
        other = await self.gateway(ports, "gw-2", ["c2"])
        plain = await ports.device("plain")
        theirs = await self.gateway(ports, "gw-t2", ["c-t2"], tenant="t2")
        await self.connect(ports, "gw-1")
        await children.refresh([("t1", "gw-1"), ("t1", "gw-2")], AT)
        mine = (ids["c1"], other["c2"], plain)
        before = [await ports.inventory.get("t1", i) for i in mine]
        before.append(await ports.inventory.get("t2", theirs["c-t2"]))
        refused = [
            lost("c2"),  # another gateway's child
            lost("plain"),  # a device that is nobody's child
            lost("nobody"),  # no device at all
            lost("c-t2"),  # another tenant's child
            lost("c1", "gw-2"),  # reported by another gateway than its own
            lost("c1", "no-such-gateway"),
        ]
        assert await children.report(refused, LATER) == refused
        after = [await ports.inventory.get("t1", i) for i in mine]
        after.append(await ports.inventory.get("t2", theirs["c-t2"]))
        assert after == before
        # One good report among them is applied all the same.
        assert await children.report([lost("plain"), lost("c1")], LATER) == [lost("plain")]
        assert (await self.shown(ports, ids["c1"]))[0] == "DISCONNECTED"

    async def test_a_detached_child_is_offline_and_its_gateways_word_forgotten(
        self, ports: Ports
    ) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1"])
        await self.connect(ports, "gw-1")
        await children.report([lost("c1", reason="gone")], AT)
        assert await ports.inventory.remove_child("t1", ids["gw-1"], "childDevices", ids["c1"])
        await children.refresh([("t1", "c1")], LATER)
        assert await self.shown(ports, ids["c1"]) == ("DISCONNECTED", {
            "status": "DISCONNECTED", "reason": "detached from gateway gw-1",
        })  # fmt: skip
        assert await children.report([found("c1")], LATER) == [found("c1")]
        # Attached again: what the gateway said before it was detached no longer counts.
        assert await ports.inventory.add_child("t1", ids["gw-1"], "childDevices", ids["c1"])
        await children.refresh([("t1", "c1")], LATER)
        assert await self.shown(ports, ids["c1"]) == (
            "CONNECTED", {"status": "CONNECTED", "gateway": "gw-1"},
        )  # fmt: skip

    async def test_a_detached_child_on_its_own_connection_keeps_it(self, ports: Ports) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1"])
        await self.connect(ports, "gw-1")
        await children.refresh([("t1", "gw-1")], AT)
        assert await ports.inventory.remove_child("t1", ids["gw-1"], "childDevices", ids["c1"])
        await self.connect(ports, "c1", "own-1")
        await children.refresh([("t1", "c1")], LATER)
        assert await self.shown(ports, ids["c1"]) == ("CONNECTED", {"status": "CONNECTED"})
        assert ("t1", "c1") in await ports.inventory.connected_devices()

    async def test_an_attached_child_is_never_on_a_connection_of_its_own(
        self, ports: Ports
    ) -> None:
        children = ports.connections
        """A session it had before it was attached ends late: nothing it reports counts."""
        ids = await self.gateway(ports, "gw-1", ["c1"])
        await self.connect(ports, "c1", "own-1")
        await children.refresh([("t1", "c1")], AT)
        assert (await self.shown(ports, ids["c1"]))[1]["reason"] == "gateway gw-1 disconnected"
        assert ("t1", "c1") not in await ports.inventory.connected_devices()
        assert not await ports.inventory.set_connection(
            "t1", "c1", connection_fragments(DISCONNECTED, AT), connection_id=None,
            only_if_connection="own-1", at=AT,
        )  # fmt: skip

    async def test_refresh_all_brings_every_child_up_to_date(self, ports: Ports) -> None:
        children = ports.connections
        ids = await self.gateway(ports, "gw-1", ["c1", "c2"])
        await self.connect(ports, "gw-1")
        await children.refresh_all(AT)
        assert [(await self.shown(ports, ids[c]))[0] for c in ("c1", "c2")] == ["CONNECTED"] * 2
        await self.disconnect(ports, "gw-1")
        assert await ports.inventory.remove_child("t1", ids["gw-1"], "childDevices", ids["c2"])
        await children.refresh_all(LATER)
        assert (await self.shown(ports, ids["c1"]))[1]["reason"] == "gateway gw-1 disconnected"
        assert (await self.shown(ports, ids["c2"]))[1]["reason"] == "detached from gateway gw-1"

    async def test_attached_children_are_those_of_gateways_with_device_ids(
        self, ports: Ports
    ) -> None:
        children = ports.connections
        await self.gateway(ports, "gw-b", ["b2", "b1"])
        await self.gateway(ports, "gw-a", ["a1"], tenant="t2")
        folder = await ports.inventory.create("t1", name="f", type=None, owner=None, fragments={})
        loose = await ports.device("loose")
        assert await ports.inventory.add_child("t1", folder.id, "childDevices", loose)
        assert await children.attached() == [("a1", "gw-a"), ("b1", "gw-b"), ("b2", "gw-b")]


class GroupStoreContract:
    """Device groups (:class:`~fleetgate.services.ports.GroupStore`): a group's devices are
    every device below it through childAssets, at any depth, in its tenant."""

    async def test_a_groups_devices_include_its_subgroups_devices(self, ports: Ports) -> None:
        inv = ports.inventory

        async def obj(name: str, **fragments: Any) -> int:
            made = await inv.create("t1", name=name, type=None, owner=None, fragments=fragments)
            return made.id

        top = await obj("top", c8y_IsDeviceGroup={})
        sub = await obj("sub", c8y_IsDeviceSubgroup={})
        subsub = await obj("subsub", c8y_IsDeviceSubgroup={})
        d1, d2, d3 = [await ports.device(f"gd{n}") for n in (1, 2, 3)]
        asset = await obj("a thing")
        for parent, child in ((top, sub), (sub, subsub), (top, d1), (subsub, d2), (sub, asset)):
            assert await inv.add_child("t1", parent, "childAssets", child)
        assert await inv.add_child("t1", d1, "childDevices", d3)  # not an asset of the group
        assert await ports.groups.device_ids("t1", top) == [d1, d2]
        assert await ports.groups.device_ids("t1", sub) == [d2]
        assert await ports.groups.device_ids("t1", top, parse_query("name eq 'gd2'")) == [d2]
        assert await ports.groups.device_ids("t1", top, parse_query(f"bygroupid({top})")) == [d1]
        assert await ports.groups.device_ids("t2", top) == []
        assert await ports.groups.device_ids("t1", d1) == []
        assert await ports.groups.reaches("t1", top, d2)
        assert not await ports.groups.reaches("t1", sub, top)
        # A loop (two operators at once) ends the walk rather than running it forever.
        assert await inv.add_child("t1", subsub, "childAssets", top)
        assert await ports.groups.device_ids("t1", sub) == [d1, d2]


PAST = datetime(2020, 1, 1, tzinfo=UTC)


def new_bulk(group: int | None = None, parent: int | None = None, **extra: Any) -> NewBulkOperation:
    return NewBulkOperation(
        start_date=PAST, creation_ramp=0, prototype={"c8y_Restart": {}}, group_id=group,
        failed_parent_id=parent, **extra,
    )  # fmt: skip


async def restart_unless_no(
    tenant_id: str, prototype: dict[str, Any], devices: Sequence[DeviceTarget]
) -> list[Prepared | Refusal]:
    """A bulk check: a restart for every device but those whose id starts with ``no-``."""
    return [
        Refusal(d.id, f"{d.serial} refuses")
        if (d.serial or "").startswith("no-")
        else Prepared(d.id, d.serial or "", "c8y_Restart", "Restart", {"c8y_Restart": {}})
        for d in devices
    ]


class BulkOperationContract:
    """Bulk operations (:class:`~fleetgate.services.ports.BulkOperationStore`) and the
    scheduler's steps (:class:`~fleetgate.services.ports.RolloutSteps`) on them."""

    async def group(self, ports: Ports, *members: int, tenant: str = "t1") -> int:
        made = await ports.inventory.create(
            tenant, name="g", type="c8y_DeviceGroup", owner=None,
            fragments={"c8y_IsDeviceGroup": {}},
        )  # fmt: skip
        for member in members:
            assert await ports.inventory.add_child(tenant, made.id, "childAssets", member)
        return made.id

    async def run(self, ports: Ports) -> list[StepReport]:
        """Step until no bulk operation is due, making every one due each round, until a
        round changes nothing."""
        reports: list[StepReport] = []
        for _ in range(20):
            await ports.make_due()
            active = False
            while (report := await ports.steps.step(restart_unless_no)) is not None:
                reports.append(report)
                active = active or bool(report.created or report.refused or report.changed)
            if not active:
                break
        return reports

    async def bulk(self, ports: Ports, bulk_id: int) -> BulkOperation:
        found = await ports.bulk.get("t1", bulk_id)
        assert found is not None
        return found

    async def test_targets_are_fixed_in_id_order_with_the_canary_marked(self, ports: Ports) -> None:
        d1, d2, d3 = [await ports.device(f"b{n}") for n in (1, 2, 3)]
        stranger = await ports.device("b-t2", tenant="t2")
        group = await self.group(ports, d1, d2, d3)
        bulk = await ports.bulk.create(
            "t1", new_bulk(group, rollout=Rollout(canary=Canary(size=1)), target_query="has(x)"),
            [d3, d1, d2, stranger, 987654], canary=[d3],
        )  # fmt: skip
        assert (bulk.tenant_id, bulk.group_id, bulk.status, bulk.targets) == (
            "t1", group, BulkStatus.ACTIVE, 3,
        )  # fmt: skip
        assert (bulk.created, bulk.waiting, bulk.target_query) == (0, 3, "has(x)")
        targets = await ports.bulk.targets("t1", bulk.id, None, 0, 10)
        assert [(t.device_id, t.position, t.canary, t.state) for t in targets] == [
            (d1, 1, True, TargetState.WAITING), (d3, 3, True, TargetState.WAITING),
            (d2, 2, False, TargetState.WAITING),
        ]  # fmt: skip
        assert await ports.bulk.get("t2", bulk.id) is None
        assert await ports.bulk.targets("t1", bulk.id, TargetState.CREATED, 0, 10) == []
        with pytest.raises(NotFound):
            await ports.bulk.create("t2", new_bulk(group), [])
        with pytest.raises(ValidationFailed, match="is not a device group"):
            await ports.bulk.create("t1", new_bulk(d1), [])
        with pytest.raises(NotFound):
            await ports.bulk.create("t1", new_bulk(parent=bulk.id + 1000), [])
        assert await ports.bulk.failed_devices("t1", bulk.id + 1000) is None
        assert await ports.bulk.failed_devices("t2", bulk.id) is None
        assert await ports.bulk.failed_devices("t1", bulk.id) == []
        listed = await ports.bulk.find("t1", BulkFilter((BulkStatus.ACTIVE,)), 0, 10)
        assert [b.id for b in listed] == [bulk.id]
        assert await ports.bulk.count("t1", BulkFilter((BulkStatus.COMPLETED,))) == 0

    async def test_one_operation_per_device_and_the_counts_follow_the_reports(
        self, ports: Ports
    ) -> None:
        ok1, ok2, refuses = [await ports.device(s) for s in ("ok-1", "ok-2", "no-1")]
        bulk = await ports.bulk.create("t1", new_bulk(await self.group(ports)), [ok1, ok2, refuses])
        reports = await self.run(ports)
        created = [op for r in reports for op in r.created]
        assert sorted(op.device_id for op in created) == [ok1, ok2]
        assert {(op.bulk_operation_id, op.status, op.fragment_type) for op in created} == {
            (bulk.id, Status.PENDING, "c8y_Restart")
        }
        assert [(r.device_id, r.reason) for rep in reports for r in rep.refused] == [
            (refuses, "no-1 refuses")
        ]
        after = await self.bulk(ports, bulk.id)
        assert (after.status, after.created, after.skipped, after.waiting) == (
            BulkStatus.COMPLETED, 2, 1, 0,
        )  # fmt: skip
        assert after.tally.pending == 2
        first, second = sorted(created, key=lambda op: op.device_id)
        await ports.operations.apply(
            [Report(first.id, Status.SUCCESSFUL, tenant_id="t1"),
             Report(second.id, Status.FAILED, "broken", tenant_id="t1")]
        )  # fmt: skip
        await self.run(ports)
        done = await self.bulk(ports, bulk.id)
        assert (done.tally.pending, done.tally.successful, done.tally.failed) == (0, 1, 1)
        assert await ports.bulk.failed_devices("t1", bulk.id) == [ok2]
        states = {t.device_id: (t.state, t.status, t.reason)
                  for t in await ports.bulk.targets("t1", bulk.id, None, 0, 10)}  # fmt: skip
        assert states == {
            ok1: (TargetState.CREATED, "SUCCESSFUL", None),
            ok2: (TargetState.CREATED, "FAILED", None),
            refuses: (TargetState.SKIPPED, None, "no-1 refuses"),
        }
        # settled: never stepped again
        await ports.make_due()
        assert await ports.steps.step(restart_unless_no) is None

    async def test_paused_creates_nothing_and_a_cancel_stops_the_waiting(
        self, ports: Ports
    ) -> None:
        devices = [await ports.device(f"p{n}") for n in range(3)]
        group = await self.group(ports)
        bulk = await ports.bulk.create("t1", new_bulk(group), devices)
        paused = await ports.bulk.pause("t1", bulk.id, "wait")
        assert paused is not None
        assert paused.paused_reason == "wait"
        assert all(not r.created for r in await self.run(ports))
        resumed = await ports.bulk.resume("t1", bulk.id)
        assert resumed is not None
        assert resumed.paused_reason is None
        assert sum(len(r.created) for r in await self.run(ports)) == 3

        other = await ports.bulk.create("t1", new_bulk(group), devices)
        cancelled = await ports.bulk.cancel("t1", other.id, "no")
        assert cancelled is not None
        assert (cancelled.status, cancelled.cancel_reason) == (BulkStatus.DELETED, "no")
        assert all(not r.created for r in await self.run(ports))
        states = {t.state for t in await ports.bulk.targets("t1", other.id, None, 0, 10)}
        assert states == {TargetState.CANCELED}
        with pytest.raises(ValidationFailed):
            await ports.bulk.pause("t1", other.id, "again")
        assert await ports.bulk.cancel("t2", other.id, "x") is None

    async def test_a_reschedule_edits_in_place_or_replaces_a_started_one(
        self, ports: Ports
    ) -> None:
        devices = [await ports.device(f"r{n}") for n in range(3)]
        group = await self.group(ports)
        bulk = await ports.bulk.create("t1", new_bulk(group, target_query="has(x)"), devices)
        edited = await ports.bulk.reschedule(
            "t1", bulk.id, new_bulk(group, note="n", target_query="has(x)")
        )
        assert edited is not None
        assert (edited[0].id, edited[0].note, edited[1]) == (bulk.id, "n", None)
        # started (a ramp of an hour: one operation so far): the others move to a new one
        slow = await ports.bulk.create(
            "t1", NewBulkOperation(PAST, 3600, {"c8y_Restart": {}}, group_id=group), devices
        )
        await ports.make_due()
        made = await ports.steps.step(restart_unless_no)
        while made is not None and made.bulk.id != slow.id:
            made = await ports.steps.step(restart_unless_no)
        assert made is not None
        assert [op.device_id for op in made.created] == [devices[0]]
        replaced = await ports.bulk.reschedule("t1", slow.id, new_bulk(group, note="faster"))
        assert replaced is not None
        new, old = replaced
        assert old is not None
        assert (old.id, old.status, old.cancel_reason) == (
            slow.id, BulkStatus.DELETED, f"Rescheduled as bulk operation {new.id}",
        )  # fmt: skip
        assert (new.note, new.targets, new.status) == ("faster", 2, BulkStatus.ACTIVE)
        moved = await ports.bulk.targets("t1", new.id, None, 0, 10)
        assert [t.device_id for t in moved] == devices[1:]
        with pytest.raises(ValidationFailed, match="nothing left to reschedule"):
            await ports.bulk.reschedule("t1", slow.id, new_bulk(group))
        assert await ports.bulk.reschedule("t2", slow.id, new_bulk(group)) is None

    async def test_retries_are_new_attempts_that_name_the_operation_they_retry(
        self, ports: Ports
    ) -> None:
        device = await ports.device("retry-1")
        rollout = Rollout(retries=Retries(max=1))
        bulk = await ports.bulk.create("t1", new_bulk(await self.group(ports), rollout=rollout),
                                       [device])  # fmt: skip
        [first] = [op for r in await self.run(ports) for op in r.created]
        await ports.operations.apply([Report(first.id, Status.FAILED, "x", tenant_id="t1")])
        [retry] = [op for r in await self.run(ports) for op in r.created]
        assert retry.device_id == device
        assert retry.fragments[RETRY_FRAGMENT] == {"operationId": str(first.id), "attempt": 2}
        [target] = await ports.bulk.targets("t1", bulk.id, None, 0, 10)
        assert (target.attempts, target.operation_id) == (2, retry.id)
        after = await self.bulk(ports, bulk.id)
        assert (after.retried, after.created) == (1, 1)
        await ports.operations.apply([Report(retry.id, Status.FAILED, "y", tenant_id="t1")])
        assert [op for r in await self.run(ports) for op in r.created] == []  # no attempts left
        done = await self.bulk(ports, bulk.id)
        assert (done.status, done.tally.failed, done.tally.pending) == (BulkStatus.COMPLETED, 1, 0)

    async def test_two_schedulers_at_once_give_no_device_two_operations(self, ports: Ports) -> None:
        devices = [await ports.device(f"two-{n}") for n in range(6)]
        group = await self.group(ports)
        for _ in range(3):
            await ports.bulk.create("t1", new_bulk(group), devices)
        created: list[Operation] = []
        for _ in range(10):
            await ports.make_due()
            reports = await asyncio.gather(*(ports.steps.step(restart_unless_no) for _ in range(4)))
            created += [op for r in reports if r is not None for op in r.created]
        pairs = [(op.bulk_operation_id, op.device_id) for op in created]
        assert len(pairs) == len(set(pairs)) == 18


class TenantOptionContract:
    """:class:`~fleetgate.services.ports.TenantOptionStore`: per tenant, ordered by
    category then key; ``childAutoRegistration`` on unless set to "false"."""

    async def test_options_are_stored_replaced_listed_and_deleted(self, ports: Ports) -> None:
        store = ports.options
        assert await store.find("t1", 0, 10) == []
        for category, key, value in (("b", "k", "1"), ("a", "z", "2"), ("a", "y", "")):
            option = TenantOption(category, key, value)
            assert await store.put("t1", option) == option
        await store.put("t2", TenantOption("a", "y", "theirs"))
        await store.put("t1", TenantOption("b", "k", "replaced"))
        assert await store.find("t1", 0, 10) == [
            TenantOption("a", "y", ""), TenantOption("a", "z", "2"),
            TenantOption("b", "k", "replaced"),
        ]  # fmt: skip
        assert await store.find("t1", 1, 1) == [TenantOption("a", "z", "2")]
        assert (await store.count("t1"), await store.count("t2")) == (3, 1)
        assert [o.key for o in await store.of_category("t1", "a")] == ["y", "z"]
        assert await store.get("t1", "a", "y") == TenantOption("a", "y", "")
        assert await store.get("t1", "a", "missing") is None
        assert await store.replace("t1", TenantOption("a", "z", "3"))
        assert not await store.replace("t1", TenantOption("a", "new", "3"))
        assert await store.get("t1", "a", "new") is None
        assert await store.delete("t1", "a", "z")
        assert not await store.delete("t1", "a", "z")
        assert await store.get("t2", "a", "y") == TenantOption("a", "y", "theirs")

    async def test_child_auto_registration_is_on_unless_switched_off(self, ports: Ports) -> None:
        store = ports.options
        assert await store.child_auto_registration("t1")
        await store.put("t1", TenantOption("fleetgate.gateways", "childAutoRegistration", "false"))
        assert not await store.child_auto_registration("t1")
        assert await store.child_auto_registration("t2")
        await store.put("t1", TenantOption("fleetgate.gateways", "childAutoRegistration", "true"))
        assert await store.child_auto_registration("t1")


class ChildDeviceContract:
    """:class:`~fleetgate.services.ports.ChildDeviceStore`: a gateway's tree as operators
    shape it (the rules of :mod:`fleetgate.domain.child_devices`), and what is remembered
    of children they removed."""

    async def test_attach_detach_and_attach_to_another_gateway(self, ports: Ports) -> None:
        store = ports.child_devices
        gw1, gw2, child = [await ports.device(d) for d in ("gw1", "gw2", "c1")]
        assert await store.attach("t1", gw1, child) == Attached(True, "c1", "gw1")
        assert await store.attach("t1", gw1, child) == Attached(False, "c1", "gw1")  # again
        with pytest.raises(Conflict) as taken:
            await store.attach("t1", gw2, child)
        assert taken.value.code == "inventory/Conflict"
        assert f"already a child device of gateway {gw1} (device gw1)" in taken.value.message
        assert [c.id for c in await ports.inventory.children("t1", gw1, "childDevices", 0, 9)] == [
            child
        ]
        assert await store.detach("t1", gw1, child, "admin") == Detached("c1")
        assert await store.detach("t1", gw1, child, "admin") is None
        [removed] = await store.removed_children("t1", gw1)
        assert (removed.gateway_id, removed.device_id, removed.removed_by, removed.how) == (
            gw1, "c1", "admin", HowRemoved.DETACHED,
        )  # fmt: skip
        assert (await store.attach("t1", gw2, child)).made
        assert await store.removed_children("t1", gw2) == []
        assert len(await store.removed_children("t1", gw1)) == 1
        await store.detach("t1", gw2, child, None)
        assert (await store.attach("t1", gw1, child)).made  # attached again: not removed
        assert await store.removed_children("t1", gw1) == []

    async def test_only_devices_that_connect_one_level_deep(self, ports: Ports) -> None:
        store = ports.child_devices
        gw, child, grandchild = [await ports.device(d) for d in ("gw", "c1", "c2")]
        no_serial = (
            await ports.inventory.create(
                "t1", name="n", type=None, owner=None, fragments={"c8y_IsDevice": {}}
            )
        ).id
        not_device = (
            await ports.inventory.create("t1", name="x", type=None, owner=None, fragments={})
        ).id
        await ports.identity.add("t1", not_device, "c8y_Serial", "not-a-device")
        for gateway_id, child_id, message in (
            (gw, gw, "cannot be its own child device"),
            (gw, no_serial, f"managed object {no_serial} cannot be a child device"),
            (no_serial, child, f"managed object {no_serial} cannot be a gateway"),
            (gw, not_device, r"\(device not-a-device\) cannot be a child device"),
        ):
            with pytest.raises(ValidationFailed, match=message):
                await store.attach("t1", gateway_id, child_id)
        await store.attach("t1", gw, child)
        with pytest.raises(ValidationFailed, match=r"is a child device of gateway .* cannot be a"):
            await store.attach("t1", child, grandchild)
        with pytest.raises(ValidationFailed, match="is a gateway with 1 child device"):
            await store.attach("t1", grandchild, gw)
        theirs = await ports.device("t2-dev", tenant="t2")
        for gateway_id, child_id in ((gw, theirs), (theirs, grandchild), (gw, 999_999)):
            with pytest.raises(NotFound):
                await store.attach("t1", gateway_id, child_id)
        assert await store.detach("t2", gw, child, "x") is None
        assert await store.removed_children("t2", gw) == []
        assert [c.id for c in await ports.inventory.children("t1", gw, "childDevices", 0, 9)] == [
            child
        ]

    async def test_deleting_follows_the_kinds_asked_and_remembers_children(
        self, ports: Ports
    ) -> None:
        store = ports.child_devices
        gw, c1, c2, c3 = [await ports.device(d) for d in ("gw", "c1", "c2", "c3")]
        for child in (c1, c2, c3):
            await store.attach("t1", gw, child)
        deleted = await ports.inventory.delete("t1", c1, removed_by="admin")
        assert deleted is not None
        assert deleted.device_ids == ["c1"]
        [removal] = await store.removed_children("t1", gw)
        assert (removal.device_id, removal.removed_by, removal.how) == (
            "c1", "admin", HowRemoved.DELETED,
        )  # fmt: skip
        # A child deleted again under the same id replaces the record.
        await store.detach("t1", gw, c2, "ops")
        assert [r.how for r in await store.removed_children("t1", gw)] == [
            HowRemoved.DELETED, HowRemoved.DETACHED,
        ]  # fmt: skip
        await ports.inventory.delete("t1", c2, removed_by="admin")  # no longer its child
        assert [r.how for r in await store.removed_children("t1", gw)] == [
            HowRemoved.DELETED, HowRemoved.DETACHED,
        ]  # fmt: skip
        bystander = await ports.device("b")
        deleted = await ports.inventory.delete(
            "t1", gw, through=frozenset({"childDevices"}), removed_by="admin"
        )
        assert deleted is not None
        assert sorted(deleted.device_ids) == ["c3", "gw"]
        assert await ports.inventory.get("t1", c3) is None
        assert await ports.inventory.get("t1", bystander) is not None
        assert await ports.inventory.delete("t1", gw) is None

    async def test_what_operators_remove_their_gateway_does_not_bring_back(
        self, ports: Ports
    ) -> None:
        """The records operators leave are what a gateway's declarations read."""
        gw, kid = await ports.device("gw"), await ports.device("kid")

        async def declared() -> tuple[Verdict, str | None]:
            done = await ports.children.declare_child(
                Declaration("kid", {}, {}, gateway="gw"), {}, datetime.now(UTC)
            )
            assert done is not None
            return done.decision.verdict, done.decision.reason

        await ports.child_devices.attach("t1", gw, kid)
        assert await declared() == (Verdict.KNOWN, None)
        await ports.child_devices.detach("t1", gw, kid, "admin")
        verdict, reason = await declared()
        assert verdict is Verdict.REFUSED  # a device of the tenant now, not the gateway's
        await ports.child_devices.attach("t1", gw, kid)
        assert await declared() == (Verdict.KNOWN, None)
        await ports.inventory.delete("t1", kid, removed_by="admin")
        verdict, reason = await declared()
        assert verdict is Verdict.REFUSED
        assert "an operator removed child kid from gateway gw (deleted" in str(reason)

    async def test_the_tenant_option_switches_registration_off(self, ports: Ports) -> None:
        await ports.device("gw")
        await ports.options.put(
            "t1", TenantOption("fleetgate.gateways", "childAutoRegistration", "false")
        )
        done = await ports.children.declare_child(
            Declaration("new-kid", {}, {}, gateway="gw"), {}, datetime.now(UTC)
        )
        assert done is not None
        assert done.decision.verdict is Verdict.REFUSED
        assert "switched off" in str(done.decision.reason)

    async def test_removals_go_with_their_gateway(self, ports: Ports) -> None:
        store = ports.child_devices
        gw, child, stays = [await ports.device(d) for d in ("gw", "c1", "c2")]
        await store.attach("t1", gw, child)
        await store.attach("t1", gw, stays)
        await store.detach("t1", gw, child, "admin")
        deleted = await ports.inventory.delete("t1", gw)
        assert deleted is not None
        assert (deleted.device_ids, deleted.detached_children) == (["gw"], ["c2"])
        assert await store.removed_children("t1", gw) == []
        assert await ports.inventory.get("t1", child) is not None


class InventoryTreeContract:
    """:class:`~fleetgate.services.ports.Inventory` on the tree: the list filters and the
    references of a page of objects (one call, the same order on both adapters)."""

    async def test_lists_find_gateways_children_parents_and_roots(self, ports: Ports) -> None:
        gw, c1, c2, plain = [await ports.device(d) for d in ("gw", "c1", "c2", "plain")]
        await ports.child_devices.attach("t1", gw, c1)
        await ports.child_devices.attach("t1", gw, c2)
        group = (
            await ports.inventory.create("t1", name="g", type=None, owner=None, fragments={})
        ).id
        await ports.inventory.add_child("t1", group, "childAssets", gw)

        async def found(**conditions: Any) -> list[int]:
            flt = ObjectFilter(**conditions)
            listed = [o.id for o in await ports.inventory.find("t1", flt, 0, 100)]
            assert await ports.inventory.count("t1", flt) == len(listed)
            return listed

        assert await found(device_parent=gw) == [c1, c2]
        assert await found(device_parent=c1) == []
        assert await found(has_child_devices=True) == [gw]
        assert await found(has_child_devices=False, fragment_type="c8y_IsDevice") == [
            c1, c2, plain,
        ]  # fmt: skip
        assert await found(parents_of=(("childDevices", c2),)) == [gw]
        assert await found(parents_of=(("childAssets", gw),)) == [group]
        assert await found(parents_of=(("childAssets", gw), ("childDevices", c1))) == []
        assert await found(only_roots=True) == [plain, group]
        assert await found(only_roots=True, has_child_devices=True) == []
        assert await ports.inventory.find("t2", ObjectFilter(device_parent=gw), 0, 9) == []

    async def test_references_of_a_page_in_one_call(self, ports: Ports) -> None:
        gw, c1, c2 = [await ports.device(d) for d in ("gw", "c1", "c2")]
        await ports.child_devices.attach("t1", gw, c2)
        await ports.child_devices.attach("t1", gw, c1)
        group = (
            await ports.inventory.create("t1", name="g", type=None, owner=None, fragments={})
        ).id
        await ports.inventory.add_child("t1", group, "childAssets", gw)
        shown = await ports.inventory.references("t1", [gw, c1, group, 999_999])
        assert shown == {
            gw: [
                Reference("assetParents", group, "g"),
                Reference("childDevices", c1, "c1"),
                Reference("childDevices", c2, "c2"),
            ],
            c1: [Reference("deviceParents", gw, "gw")],
            group: [Reference("childAssets", gw, "gw")],
            999_999: [],
        }
        parents_only = await ports.inventory.references("t1", [gw, group], children=False)
        assert parents_only == {gw: [Reference("assetParents", group, "g")], group: []}
        assert await ports.inventory.references("t2", [gw]) == {gw: []}


class UserStoreContract:
    """Operators as an administrator changes them, and the failed-login count that
    several service instances share (``OperatorStore``, ``UserStore``)."""

    @staticmethod
    def store(ports: Ports) -> Any:
        return ports.users  # PgUsers / MemoryUsers: also an OperatorStore and a UserStore

    async def test_create_once_without_roles(self, ports: Ports) -> None:
        users = self.store(ports)
        user = await users.create_user(
            "t1", "op", "hash", enabled=False, profile={"email": "o@x.org", "last_name": None}
        )
        assert (user.username, user.enabled, user.roles, user.email) == (
            "op",
            False,
            frozenset(),
            "o@x.org",
        )
        assert user.failures == NO_FAILURES
        again = await users.create_user("t1", "op", "other", enabled=True, profile={})
        assert again is None
        assert await users.create_user("t2", "op", "hash", enabled=True, profile={}) is not None

    async def test_update_changes_only_what_is_given(self, ports: Ports) -> None:
        users = self.store(ports)
        made = await users.create_user(
            "t1", "op", "hash", enabled=True, profile={"email": "o@x.org", "first_name": "O"}
        )
        same = await users.update_user(
            "t1", "op", enabled=None, password_hash=None, profile={}, clear_failures=False
        )
        assert same == made
        changed = await users.update_user(
            "t1",
            "op",
            enabled=False,
            password_hash="new",
            profile={"email": None, "last_name": "P"},
            clear_failures=False,
        )
        assert (changed.enabled, changed.password_hash) == (False, "new")
        assert (changed.email, changed.first_name, changed.last_name) == (None, "O", "P")
        assert changed.last_password_change >= made.last_password_change
        missing = await users.update_user(
            "t1", "ghost", enabled=True, password_hash=None, profile={}, clear_failures=True
        )
        assert missing is None

    async def test_roles_are_added_once_and_removed(self, ports: Ports) -> None:
        users = self.store(ports)
        await users.create_user("t1", "op", "hash", enabled=True, profile={})
        await users.add_role("t1", "op", Role.INVENTORY_READ)
        user = await users.add_role("t1", "op", Role.INVENTORY_READ)
        assert user.roles == {Role.INVENTORY_READ}
        user = await users.remove_role("t1", "op", Role.INVENTORY_READ, keep_one_of=frozenset())
        assert user.roles == frozenset()
        assert await users.add_role("t1", "ghost", Role.INVENTORY_READ) is None

    async def test_failures_counted_at_once_all_count(self, ports: Ports) -> None:
        users = self.store(ports)
        await users.create_user("t1", "op", "hash", enabled=True, profile={})

        def one_more(failures: LoginFailures) -> LoginFailures:
            return LoginFailures(failures.count + 1, failures.first_at, failures.locked_until)

        await asyncio.gather(*(users.update_failures("t1", "op", one_more) for _ in range(6)))
        found = await users.find_user("t1", "op")
        assert found[1].failures.count == 6
        assert await users.update_failures("t1", "ghost", one_more) is None
        await users.clear_failures("t1", "op")
        assert (await users.find_user("t1", "op"))[1].failures == NO_FAILURES

    async def test_a_lock_is_kept_and_cleared_by_an_update(self, ports: Ports) -> None:
        users = self.store(ports)
        await users.create_user("t1", "op", "hash", enabled=True, profile={})
        until = datetime(2030, 1, 1, tzinfo=UTC)
        locked = LoginFailures(5, datetime(2029, 12, 31, 23, 50, tzinfo=UTC), until)
        await users.update_failures("t1", "op", lambda _: locked)
        assert (await users.find_user("t1", "op"))[1].failures == locked
        user = await users.update_user(
            "t1", "op", enabled=True, password_hash=None, profile={}, clear_failures=True
        )
        assert user.failures == NO_FAILURES

    async def test_a_removal_that_would_leave_none_of_the_kept_roles_is_refused(
        self, ports: Ports
    ) -> None:
        users = self.store(ports)
        await users.create_user("t1", "op", "hash", enabled=True, profile={})
        keep = frozenset({Role.TENANT_ADMIN, Role.USER_MANAGEMENT_ADMIN})
        for role in keep:
            await users.add_role("t1", "op", role)
        done = await asyncio.gather(
            *(users.remove_role("t1", "op", r, keep_one_of=keep) for r in sorted(keep))
        )
        assert sum(user is not None for user in done) == 1
        assert len((await users.find_user("t1", "op"))[1].roles & keep) == 1
