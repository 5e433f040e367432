"""The operations use cases on in-memory ports: creation and its refusals, the commands
devices receive (signed file URLs), status reports and what devices are answered,
operators' changes, re-sending, time-outs and configuration snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from fleetgate.domain import signing
from fleetgate.domain.device_messages import DeviceError, StatusReport, SyncRequest
from fleetgate.domain.devices import registration_fragments
from fleetgate.domain.errors import Conflict, FleetgateError, NotFound, ValidationFailed
from fleetgate.domain.operations import (
    NO_DEVICE_REASON,
    NO_SNAPSHOT_REASON,
    Operation,
    OperationFilter,
    Status,
)
from fleetgate.services.binaries import Binaries
from fleetgate.services.operation_feed import OperationFeed
from fleetgate.services.operations import FileSigning, Operations

from fakes import RecordingPublisher
from memory import ManualClock, MemoryStores

BASE = "http://fleetgate.test"
SECRET = b"s" * 32
TTL = 600
#: The service's clock (Unix seconds), for the signed URLs' expiry.
NOW = 1_800_000_000.0
ALL_OPS = [
    "c8y_Firmware", "c8y_SoftwareUpdate", "c8y_DownloadConfigFile", "c8y_UploadConfigFile",
    "c8y_Restart",
]  # fmt: skip


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass
class World:
    stores: MemoryStores
    clock: ManualClock
    link: RecordingPublisher
    feed: OperationFeed
    binaries: Binaries
    operations: Operations

    async def device(
        self,
        serial: str,
        *,
        tenant: str = "t1",
        type: str = "thermo",
        supported: list[str] = ALL_OPS,
    ) -> int:
        """A registered device that declared itself; its object id."""
        registered = await self.stores.registry.register(
            tenant,
            serial,
            fragments=registration_fragments(None),
            connection={},
            connection_id=f"c-{serial}",
            at=self.clock(),
        )
        declared = {
            "c8y_SupportedOperations": supported,
            "c8y_SupportedConfigurations": ["ssh", "agent"],
        }
        await self.stores.inventory.update(tenant, registered.object_id, {"type": type}, declared)
        return registered.object_id

    async def upload(self, name: str, data: bytes, *, tenant: str = "t1") -> str:
        """A binary; its URL."""
        binary = await self.binaries.store(
            tenant, name=name, content_type="application/octet-stream", chunks=chunks(data),
            owner="admin",
        )  # fmt: skip
        return f"{BASE}/inventory/binaries/{binary.id}"

    async def create(self, body: dict[str, Any], *, tenant: str = "t1") -> Operation:
        return await self.operations.create(tenant, body)

    def commands(self, serial: str) -> list[dict[str, Any]]:
        """The commands published to the device since the last look."""
        return [cast(dict[str, Any], c) for c in self.link.take(f"fg/d/{serial}/op/cmd")]

    async def report(
        self, serial: str, op: Operation, status: Status, reason: str | None = None
    ) -> list[DeviceError]:
        return await self.operations.on_reports([StatusReport(serial, op.id, status, reason)])

    async def op(self, op: Operation, *, tenant: str = "t1") -> Operation:
        return await self.operations.get(tenant, op.id)

    async def fragments(self, object_id: int, *, tenant: str = "t1") -> dict[str, Any]:
        found = await self.stores.inventory.get(tenant, object_id)
        assert found is not None
        return found.fragments


@pytest.fixture
def world() -> World:
    clock = ManualClock()
    stores = MemoryStores.make("t1", "t2", base_url=BASE, clock=clock)
    link = RecordingPublisher()
    feed = OperationFeed()
    binaries = Binaries(stores.binaries, stores.files)
    operations = Operations(
        stores.operations,
        binaries,
        link,
        FileSigning(SECRET, BASE, TTL),
        feed,
        clock=lambda: NOW,
    )
    return World(stores, clock, link, feed, binaries, operations)


def firmware(url: str, version: str = "1.2.0") -> dict[str, str]:
    return {"name": "thermo-fw", "version": version, "url": url}


def signed_by_us(url: str, method: str, path: str, device: str) -> bool:
    """Whether ``url`` is our signature of exactly this request, valid for TTL seconds."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return (
        f"{parts.scheme}://{parts.netloc}" == BASE
        and parts.path == path
        and query["device"] == device
        and int(query["expires"]) == int(NOW + TTL)
        and signing.verify(
            SECRET, method, path, device, query["expires"], query["signature"], now=NOW
        )
    )


# --- creation ---------------------------------------------------------------------------


async def test_a_firmware_operation_is_stored_announced_and_sent_with_a_signed_url(
    world: World,
) -> None:
    device = await world.device("d-1")
    url = await world.upload("fw.bin", b"firmware" * 1000)
    op = await world.create({"deviceId": str(device), "c8y_Firmware": firmware(url)})

    assert (op.status, op.device_id, op.serial, op.device_name) == (
        Status.PENDING, device, "d-1", "d-1",
    )  # fmt: skip
    assert op.fragment_type == "c8y_Firmware"
    assert op.command == firmware(url)
    assert op.description == 'Update firmware to: "thermo-fw" (version: 1.2.0)'
    assert await world.op(op) == op

    [command] = world.commands("d-1")
    assert (command["id"], command["type"]) == (str(op.id), "c8y_Firmware")
    assert command["description"] == op.description
    file = command["payload"].pop("file")
    assert command["payload"] == firmware(url)
    binary_id = int(url.rsplit("/", 1)[1])
    assert signed_by_us(file["url"], "GET", f"/files/{binary_id}", "d-1")
    assert (file["size"], len(file["sha256"])) == (8000, 64)
    assert "upload" not in command

    await world.operations.dispatch_undispatched()
    assert world.commands("d-1") == []  # it was marked as sent


async def test_a_url_that_is_not_one_of_our_binaries_is_passed_on_as_it_is(world: World) -> None:
    device = await world.device("d-1")
    await world.create({"deviceId": device, "c8y_Firmware": firmware("https://example.com/fw.bin")})
    [command] = world.commands("d-1")
    assert command["payload"] == firmware("https://example.com/fw.bin")


async def test_extra_fragments_are_kept_and_the_operators_description_wins(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create(
        {"deviceId": device, "c8y_Restart": {}, "description": "Reboot now", "myNote": {"a": 1},
         "status": "SUCCESSFUL", "id": "77"}
    )  # fmt: skip
    assert op.description == "Reboot now"
    assert op.fragments == {"c8y_Restart": {}, "myNote": {"a": 1}}
    assert op.status is Status.PENDING
    [command] = world.commands("d-1")
    assert command == {
        "id": str(op.id), "type": "c8y_Restart", "description": "Reboot now", "payload": {},
    }  # fmt: skip
    other = await world.create({"deviceId": device, "c8y_Restart": {}})
    assert other.description == "Execute c8y_Restart"


REFUSALS: list[tuple[dict[str, Any], type[FleetgateError], str, str]] = [
    ({"c8y_Restart": {}}, ValidationFailed, "devicecontrol/Invalid Data",
     "deviceId must be the id of a managed object"),
    ({"deviceId": "0", "c8y_Restart": {}}, ValidationFailed, "devicecontrol/Invalid Data",
     "deviceId must be the id of a managed object"),
    ({"deviceId": "\u00b3", "c8y_Restart": {}}, ValidationFailed, "devicecontrol/Invalid Data",
     "deviceId must be the id of a managed object"),
    ({"deviceId": "9223372036854775808", "c8y_Restart": {}}, ValidationFailed,
     "devicecontrol/Invalid Data",
     "deviceId must be the id of a managed object"),
    ({"deviceId": "999999", "c8y_Restart": {}}, NotFound, "devicecontrol/Not Found",
     "Device 999999 not found"),
    ({"deviceId": "{device}"}, ValidationFailed, "devicecontrol/Invalid Data",
     "The operation has no command fragment (c8y_Firmware, c8y_Restart …)"),
    ({"deviceId": "{device}", "c8y_Restart": {}, "c8y_Firmware": {}}, ValidationFailed,
     "devicecontrol/Invalid Data",
     "An operation carries one command; this one has c8y_Restart, c8y_Firmware"),
    ({"deviceId": "{device}", "c8y_Custom": {}}, ValidationFailed, "devicecontrol/Invalid Data",
     f"The device does not support c8y_Custom (its c8y_SupportedOperations: {', '.join(ALL_OPS)})"),
    ({"deviceId": "{device}", "c8y_Firmware": {"name": "x"}}, ValidationFailed,
     "devicecontrol/Invalid Data", "c8y_Firmware.version must be a non-empty string"),
    ({"deviceId": "{device}", "c8y_SoftwareUpdate": []}, ValidationFailed,
     "devicecontrol/Invalid Data", "c8y_SoftwareUpdate must be a non-empty list of software"
     " changes"),
    ({"deviceId": "{device}", "c8y_Firmware": firmware(f"{BASE}/inventory/binaries/99")},
     ValidationFailed, "devicecontrol/Invalid Data", f"No such file: {BASE}/inventory/binaries/99"),
    ({"deviceId": "{device}", "c8y_Restart": {}, "description": 5}, ValidationFailed,
     "devicecontrol/Invalid Data", "description must be a string"),
    ({"deviceId": "{device}", "c8y_UploadConfigFile": {"type": "vpn"}}, ValidationFailed,
     "devicecontrol/Invalid Data", "Device {device} does not support configuration type 'vpn'"
     " (its c8y_SupportedConfigurations: ssh, agent)"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "error", "code", "message"), REFUSALS)
async def test_creation_refusals_say_why_and_change_nothing(
    world: World, body: dict[str, Any], error: type[FleetgateError], code: str, message: str
) -> None:
    device = await world.device("d-1")
    body = {k: v.format(device=device) if k == "deviceId" else v for k, v in body.items()}
    with pytest.raises(error) as refused:
        await world.create(body)
    assert (refused.value.code, refused.value.message) == (code, message.format(device=device))
    assert world.link.messages == []
    assert await world.stores.operations.count("t1", OperationFilter()) == 0


async def test_an_object_without_a_device_id_gets_no_operation(world: World) -> None:
    plain = await world.stores.inventory.create(
        "t1", name="pump", type=None, owner=None,
        fragments={"c8y_IsDevice": {}, "c8y_SupportedOperations": ["c8y_Restart"]},
    )  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        await world.create({"deviceId": plain.id, "c8y_Restart": {}})
    assert refused.value.message == (
        f"Managed object {plain.id} is not a device that connects (it has no c8y_Serial"
        " external id)"
    )


async def test_a_tenant_reaches_neither_another_tenants_devices_nor_its_files(
    world: World,
) -> None:
    d1 = await world.device("d-1")
    d9 = await world.device("d-9", tenant="t2")
    url = await world.upload("fw.bin", b"fw")
    with pytest.raises(NotFound):
        await world.create({"deviceId": d1, "c8y_Restart": {}}, tenant="t2")
    with pytest.raises(ValidationFailed, match="No such file"):
        await world.create({"deviceId": d9, "c8y_Firmware": firmware(url)}, tenant="t2")
    op = await world.create({"deviceId": d1, "c8y_Firmware": firmware(url)})
    with pytest.raises(NotFound) as hidden:
        await world.operations.get("t2", op.id)
    assert hidden.value.code == "devicecontrol/Not Found"
    listed, total = await world.operations.find(
        "t2", OperationFilter(), 0, 10, revert=False, count=True
    )
    assert (listed, total) == ([], 0)
    with pytest.raises(NotFound):
        await world.operations.update("t2", op.id, {"status": "FAILED"})
    assert await world.report("d-9", op, Status.EXECUTING) == [
        DeviceError(
            "d-9", "operations/notFound", f"Operation {op.id} is not an operation of device d-9",
            "fg/d/d-9/op/status", op.id,
        )
    ]  # fmt: skip
    assert (await world.op(op)).status is Status.PENDING


# --- status reports -------------------------------------------------------------------------


async def test_a_successful_firmware_update_is_recorded_on_the_device(world: World) -> None:
    device = await world.device("d-1")
    url = await world.upload("fw.bin", b"fw")
    op = await world.create({"deviceId": device, "c8y_Firmware": firmware(url, "2.0")})
    assert await world.report("d-1", op, Status.EXECUTING) == []
    assert (await world.op(op)).status is Status.EXECUTING
    assert "c8y_Firmware" not in await world.fragments(device)
    assert await world.report("d-1", op, Status.SUCCESSFUL) == []
    done = await world.op(op)
    assert (done.status, done.failure_reason) == (Status.SUCCESSFUL, None)
    assert (await world.fragments(device))["c8y_Firmware"] == firmware(url, "2.0")


async def test_each_move_of_one_batch_is_decided_in_order(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    errors = await world.operations.on_reports(
        [
            StatusReport("d-1", op.id, Status.EXECUTING, "not a failure"),
            StatusReport("d-1", op.id, Status.EXECUTING),
            StatusReport("d-1", op.id, Status.SUCCESSFUL),
        ]
    )
    assert errors == []
    done = await world.op(op)
    assert (done.status, done.failure_reason) == (Status.SUCCESSFUL, None)
    assert (await world.op(op)).status is Status.SUCCESSFUL


async def test_duplicates_are_silent_and_illegal_moves_are_answered(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    assert await world.report("d-1", op, Status.EXECUTING) == []
    assert await world.report("d-1", op, Status.EXECUTING) == []
    assert await world.report("d-1", op, Status.FAILED, "disk full") == []
    [late] = await world.report("d-1", op, Status.SUCCESSFUL)
    assert late == DeviceError(
        "d-1",
        "operations/illegalTransition",
        f"Operation {op.id} is FAILED; it cannot move to SUCCESSFUL (allowed: nothing: it is"
        " final)",
        "fg/d/d-1/op/status",
        op.id,
    )
    final = await world.op(op)
    assert (final.status, final.failure_reason) == (Status.FAILED, "disk full")


async def test_failed_without_a_reason_gets_one(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    await world.report("d-1", op, Status.FAILED)
    assert (await world.op(op)).failure_reason == NO_DEVICE_REASON


async def test_a_report_for_no_operation_of_the_device_finds_nothing(world: World) -> None:
    d1 = await world.device("d-1")
    await world.device("d-2")
    op = await world.create({"deviceId": d1, "c8y_Restart": {}})
    errors = await world.operations.on_reports(
        [StatusReport("d-2", op.id, Status.EXECUTING), StatusReport("d-2", 424242, Status.FAILED)]
    )
    assert [(e.error, e.operation_id, e.topic) for e in errors] == [
        ("operations/notFound", op.id, "fg/d/d-2/op/status"),
        ("operations/notFound", 424242, "fg/d/d-2/op/status"),
    ]
    assert (await world.op(op)).status is Status.PENDING


# --- operators ------------------------------------------------------------------------------


async def test_operators_move_the_status_through_the_same_table(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    cancelled = await world.operations.update(
        "t1", op.id, {"status": "FAILED", "failureReason": "Cancelled"}
    )
    assert (cancelled.status, cancelled.failure_reason) == (Status.FAILED, "Cancelled")
    assert await world.op(op) == cancelled
    with pytest.raises(ValidationFailed) as back:
        await world.operations.update("t1", op.id, {"status": "PENDING"})
    assert back.value.code == "devicecontrol/Invalid Data"
    assert back.value.message == (
        f"Operation {op.id} is FAILED; it cannot move to PENDING (allowed: nothing: it is final)"
    )
    with pytest.raises(ValidationFailed, match="status must be one of"):
        await world.operations.update("t1", op.id, {"status": "BROKEN"})
    [late] = await world.report("d-1", op, Status.SUCCESSFUL)  # the device is too late
    assert late.error == "operations/illegalTransition"
    assert (await world.op(op)).status is Status.FAILED


async def test_an_operator_failing_an_operation_without_a_reason_is_named(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    failed = await world.operations.update("t1", op.id, {"status": "FAILED"})
    assert failed.failure_reason == "Failed by an operator"
    with pytest.raises(ValidationFailed, match="failureReason must be a string"):
        await world.operations.update("t1", op.id, {"status": "FAILED", "failureReason": 1})


async def test_operators_add_and_remove_fragments_but_never_change_the_command(
    world: World,
) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}, "myNote": {"text": "x"}})
    noted = await world.operations.update(
        "t1", op.id, {"myNote": None, "other": {"a": 1}, "description": "Reboot"}
    )
    assert noted.fragments == {"c8y_Restart": {}, "other": {"a": 1}}
    assert (noted.description, noted.status) == ("Reboot", Status.PENDING)
    same = await world.operations.update(
        "t1", op.id, {"deviceId": str(device), "c8y_Restart": {}, "status": "PENDING"}
    )
    assert same == noted  # the unchanged command and device may be sent back
    for change in ({"c8y_Restart": {"now": True}}, {"deviceId": "12345"}):
        with pytest.raises(ValidationFailed) as refused:
            await world.operations.update("t1", op.id, change)
        assert refused.value.message == (
            f"{next(iter(change))} of an existing operation cannot be changed"
        )
    with pytest.raises(ValidationFailed, match="description must be a string"):
        await world.operations.update("t1", op.id, {"description": ["x"]})
    with pytest.raises(NotFound, match=r"Operation 999 not found"):
        await world.operations.update("t1", 999, {"myNote": {}})


async def test_listing_filters_orders_and_counts(world: World) -> None:
    d1 = await world.device("d-1")
    d2 = await world.device("d-2")
    made = [await world.create({"deviceId": d, "c8y_Restart": {}}) for d in (d1, d2, d1)]
    await world.report("d-1", made[0], Status.SUCCESSFUL)

    async def ids(flt: OperationFilter, *, revert: bool = False) -> list[int]:
        found, _ = await world.operations.find("t1", flt, 0, 10, revert=revert, count=False)
        return [o.id for o in found]

    all_ids = [o.id for o in made]
    assert await ids(OperationFilter()) == all_ids
    assert await ids(OperationFilter(), revert=True) == all_ids[::-1]
    assert await ids(OperationFilter(device_id=d1)) == [all_ids[0], all_ids[2]]
    assert await ids(OperationFilter(statuses=(Status.PENDING,))) == all_ids[1:]
    assert await ids(OperationFilter(fragment_type="c8y_Restart")) == all_ids
    assert await ids(OperationFilter(fragment_type="c8y_Firmware")) == []
    assert await ids(OperationFilter(date_from=world.clock(), date_to=world.clock())) == all_ids
    page, total = await world.operations.find(
        "t1", OperationFilter(), 2, 2, revert=False, count=True
    )
    assert ([o.id for o in page], total) == ([all_ids[2]], 3)


# --- delivery ------------------------------------------------------------------------------


async def test_sync_resends_the_open_operations_oldest_first(world: World) -> None:
    device = await world.device("d-1")
    made = [await world.create({"deviceId": device, "c8y_Restart": {}}) for _ in range(3)]
    await world.report("d-1", made[1], Status.SUCCESSFUL)
    await world.report("d-1", made[2], Status.EXECUTING)
    world.commands("d-1")
    await world.operations.on_sync([SyncRequest("d-1"), SyncRequest("d-unknown")])
    assert [c["id"] for c in world.commands("d-1")] == [str(made[0].id), str(made[2].id)]


async def test_commands_committed_but_never_sent_are_sent_once_at_start(world: World) -> None:
    device = await world.device("d-1")
    target = await world.stores.operations.device("t1", device)
    assert target is not None
    # As if the service died between the commit and the publish.
    op = await world.stores.operations.create(
        "t1", target, fragment_type="c8y_Restart", description="x", fragments={"c8y_Restart": {}}
    )
    await world.operations.dispatch_undispatched()
    assert [c["id"] for c in world.commands("d-1")] == [str(op.id)]
    await world.operations.dispatch_undispatched()
    assert world.commands("d-1") == []


async def test_operations_stay_with_the_device_not_with_its_id(world: World) -> None:
    """An id taken from t1's device and given to a device of t2: the new holder neither
    receives the old device's commands nor moves them (decision 0006)."""
    device = await world.device("hd1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    world.commands("hd1")
    assert await world.stores.identity.delete("t1", "c8y_Serial", "hd1")
    await world.device("hd1", tenant="t2")
    await world.operations.on_sync([SyncRequest("hd1")])
    assert world.commands("hd1") == []
    [error] = await world.report("hd1", op, Status.SUCCESSFUL)
    assert error.error == "operations/notFound"
    assert (await world.op(op)).status is Status.PENDING


async def test_open_operations_time_out_after_their_limits(world: World) -> None:
    device = await world.device("d-1")
    pending = await world.create({"deviceId": device, "c8y_Restart": {}})
    executing = await world.create({"deviceId": device, "c8y_Restart": {}})
    await world.report("d-1", executing, Status.EXECUTING)
    assert await world.operations.sweep(pending_after=3 * 3600, executing_after=3600) == []
    world.clock.advance(2 * 3600)
    [timed_out] = await world.operations.sweep(pending_after=3 * 3600, executing_after=3600)
    assert timed_out.id == executing.id
    assert (timed_out.status, timed_out.failure_reason) == (
        Status.FAILED,
        "Timed out: EXECUTING for more than 3600 s",
    )
    assert (await world.op(pending)).status is Status.PENDING
    [late] = await world.report("d-1", executing, Status.SUCCESSFUL)
    assert late.error == "operations/illegalTransition"
    world.clock.advance(3600 + 1)
    [also] = await world.operations.sweep(pending_after=3 * 3600, executing_after=3600)
    assert (also.id, also.failure_reason) == (
        pending.id,
        "Timed out: PENDING for more than 10800 s",
    )


# --- software and configuration -----------------------------------------------------------


async def test_a_software_update_sends_files_and_changes_the_software_list(world: World) -> None:
    device = await world.device("d-1")
    installed = [{"name": "agent", "version": "1.0", "url": ""}, {"name": "old", "version": "0.1"}]
    await world.stores.inventory.update("t1", device, {}, {"c8y_SoftwareList": installed})
    url = await world.upload("agent.deb", b"deb")
    changes = [
        {"name": "agent", "version": "2.0", "url": url, "action": "install"},
        {"name": "old", "action": "delete"},
    ]
    op = await world.create({"deviceId": device, "c8y_SoftwareUpdate": changes})
    assert op.description == "Apply software changes: install agent 2.0, delete old"
    [command] = world.commands("d-1")
    install, delete = command["payload"]
    assert install["file"]["size"] == 3
    assert "file" not in delete
    await world.report("d-1", op, Status.SUCCESSFUL)
    assert (await world.fragments(device))["c8y_SoftwareList"] == [
        {"name": "agent", "version": "2.0", "url": url}
    ]


async def dump(world: World, url: str, *, config_type: str | None, device_type: str | None) -> None:
    """A configuration repository entry for the file at ``url``."""
    fragments: dict[str, Any] = {"url": url}
    if config_type:
        fragments["configurationType"] = config_type
    if device_type:
        fragments["deviceType"] = device_type
    await world.stores.inventory.create(
        "t1", name="cfg", type="c8y_ConfigurationDump", owner=None, fragments=fragments
    )


async def test_sending_a_configuration_offers_only_matching_repository_files(
    world: World,
) -> None:
    device = await world.device("d-1", type="thermo")
    ssh = await world.upload("ssh.conf", b"Port 22")
    agent = await world.upload("agent.conf", b"x=1")
    pump = await world.upload("pump.conf", b"y=1")
    untyped = await world.upload("any.conf", b"z=1")
    await dump(world, ssh, config_type="ssh", device_type="thermo")
    await dump(world, agent, config_type="agent", device_type=None)
    await dump(world, pump, config_type="ssh", device_type="pump")
    await dump(world, untyped, config_type=None, device_type=None)

    async def send(url: str) -> Operation:
        body = {"deviceId": device, "c8y_DownloadConfigFile": {"type": "ssh", "url": url}}
        return await world.create(body)

    await send(untyped)
    refusals = {
        agent: "it is for configuration type 'agent', not 'ssh'",
        pump: "it is for device type 'pump', not 'thermo'",
    }
    for url, why in refusals.items():
        with pytest.raises(ValidationFailed) as refused:
            await send(url)
        assert refused.value.message == (
            f"This configuration cannot be sent to device {device}: {why}"
        )
    with pytest.raises(ValidationFailed, match="is not a file of the configuration repository"):
        await send("http://elsewhere/x.conf")

    op = await send(ssh)
    assert op.description == "Send configuration of type ssh"
    await world.report("d-1", op, Status.SUCCESSFUL)
    applied = (await world.fragments(device))["c8y_Configuration_ssh"]
    assert (applied["url"], applied["operationId"]) == (ssh, str(op.id))
    assert applied["time"] == world.clock().isoformat()


async def test_a_configuration_snapshot_is_uploaded_and_becomes_a_repository_entry(
    world: World,
) -> None:
    device = await world.device("d-1", type="thermo")
    op = await world.create({"deviceId": device, "c8y_UploadConfigFile": {"type": "ssh"}})
    assert op.description == "Retrieve ssh configuration snapshot from device"
    [command] = world.commands("d-1")
    upload = command["upload"]
    assert upload["method"] == "PUT"
    assert signed_by_us(upload["url"], "PUT", f"/files/snapshots/{op.id}", "d-1")

    first = await world.operations.upload_snapshot(op.id, "d-1", "text/plain", chunks(b"old"))
    second = await world.operations.upload_snapshot(op.id, "d-1", "text/plain", chunks(b"new"))
    assert second.name == "d-1-ssh-snapshot"
    assert await world.binaries.file_of("t1", first.id) is None  # replaced, and gone
    await world.report("d-1", op, Status.SUCCESSFUL)
    assert (await world.op(op)).status is Status.SUCCESSFUL

    snapshot_url = f"{BASE}/inventory/binaries/{second.id}"
    shown = (await world.fragments(device))["c8y_Configuration_ssh"]
    name = "d-1 ssh 2026-03-01 12:00:00"
    assert {k: shown[k] for k in ("url", "name")} == {"url": snapshot_url, "name": name}
    entry = await world.stores.inventory.get("t1", int(shown["snapshotId"]))
    assert entry is not None
    assert (entry.name, entry.type) == (name, "c8y_ConfigurationDump")
    assert entry.fragments["url"] == snapshot_url
    assert (entry.fragments["deviceType"], entry.fragments["configurationType"]) == (
        "thermo", "ssh",
    )  # fmt: skip
    stored = await world.binaries.resolve_url("t1", snapshot_url)
    assert stored is not None
    assert world.stores.files.files[stored.sha256] == b"new"


async def test_only_one_snapshot_request_per_configuration_type_is_open(world: World) -> None:
    device = await world.device("d-1")

    async def ask(config_type: str) -> Operation:
        return await world.create(
            {"deviceId": device, "c8y_UploadConfigFile": {"type": config_type}}
        )

    first = await ask("ssh")
    with pytest.raises(Conflict) as twice:
        await ask("ssh")
    assert twice.value.code == "devicecontrol/Conflict"
    assert twice.value.message == (
        f"A configuration snapshot of type 'ssh' is already PENDING or EXECUTING on device"
        f" {device}; wait for it or cancel it first"
    )
    await ask("agent")  # another type is fine
    await world.report("d-1", first, Status.EXECUTING)
    with pytest.raises(Conflict):
        await ask("ssh")
    await world.report("d-1", first, Status.FAILED, "no space")
    await ask("ssh")  # no longer open: a new one is fine


async def test_a_snapshot_request_reported_successful_without_its_upload_fails(
    world: World,
) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_UploadConfigFile": {"type": "ssh"}})
    await world.report("d-1", op, Status.SUCCESSFUL)
    final = await world.op(op)
    assert (final.status, final.failure_reason) == (Status.FAILED, NO_SNAPSHOT_REASON)
    assert "c8y_Configuration_ssh" not in await world.fragments(device)


async def test_a_snapshot_nobody_asked_for_is_refused_and_not_kept(world: World) -> None:
    device = await world.device("d-1")
    await world.device("d-2")
    op = await world.create({"deviceId": device, "c8y_UploadConfigFile": {"type": "ssh"}})
    with pytest.raises(Conflict) as foreign:
        await world.operations.upload_snapshot(op.id, "d-2", "text/plain", chunks(b"x"))
    assert foreign.value.message == (
        f"Operation {op.id} is not an open configuration snapshot request of device d-2"
    )
    restart = await world.create({"deviceId": device, "c8y_Restart": {}})
    with pytest.raises(Conflict):
        await world.operations.upload_snapshot(restart.id, "d-1", "text/plain", chunks(b"x"))
    with pytest.raises(NotFound):
        await world.operations.upload_snapshot(999, "d-1", "text/plain", chunks(b"x"))
    assert world.stores.files.files == {}
    assert await world.stores.binaries.all_contents() == set()


async def test_a_put_refused_for_its_status_changes_nothing(world: World) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    await world.operations.update("t1", op.id, {"status": "SUCCESSFUL"})
    before = await world.op(op)
    for body in (
        {"status": "PENDING", "description": "changed", "myNote": {"a": 1}},
        {"status": "BROKEN", "description": "changed"},
        {"status": "FAILED", "failureReason": 5, "myNote": {"a": 1}},
    ):
        with pytest.raises(ValidationFailed):
            await world.operations.update("t1", op.id, body)
    assert await world.op(op) == before


async def test_the_device_id_may_be_sent_back_as_a_number_and_a_no_op_announces_nothing(
    world: World,
) -> None:
    device = await world.device("d-1")
    op = await world.create({"deviceId": device, "c8y_Restart": {}})
    same = await world.operations.update(
        "t1", op.id, {"deviceId": int(device), "status": "PENDING"}
    )
    assert same == await world.op(op)
