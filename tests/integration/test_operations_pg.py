"""Operations against the real PostgreSQL, through the REST API and the device-message
handler the device link feeds. The device link itself is a recording fake here; the
end-to-end tests run the same paths through a real mosquitto and real devices."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from fleetgate.db.users import PgUsers
from fleetgate.domain.device_messages import Incoming

from conftest import TEST_BASE_URL
from operations_world import ADMIN, OTHER, World, world
from waiting import eventually

__all__ = ["world"]  # the fixture

pytestmark = pytest.mark.integration


def firmware(url: str, version: str = "1.2.0") -> dict[str, str]:
    return {"name": "thermo-fw", "version": version, "url": url}


async def test_firmware_operation_round_trip_updates_the_device(world: World) -> None:
    device = await world.device("d-1")
    url = await world.upload("fw.bin", b"firmware" * 1000)
    created = await world.create({"deviceId": device, "c8y_Firmware": firmware(url)})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.operation+json"
    )
    op = created.json()
    assert op["status"] == "PENDING"
    assert op["deviceId"] == device
    assert op["deviceName"] == "d-1"
    assert op["c8y_Firmware"] == firmware(url)
    assert op["description"] == 'Update firmware to: "thermo-fw" (version: 1.2.0)'

    [command] = world.link.take("fg/d/d-1/op/cmd")
    assert command["id"] == op["id"]
    assert command["type"] == "c8y_Firmware"
    payload = command["payload"]
    assert isinstance(payload, dict)
    assert payload["url"] == url
    file = payload["file"]
    assert file["size"] == 8000
    assert len(file["sha256"]) == 64
    signed = urlsplit(file["url"])
    assert signed.path == f"/files/{url.rsplit('/', 1)[1]}"
    assert parse_qs(signed.query)["device"] == ["d-1"]
    download = await world.api.get(file["url"])
    assert download.status_code == 200
    assert download.content == b"firmware" * 1000

    await world.report("d-1", op["id"], "EXECUTING")
    assert (await world.op(op["id"]))["status"] == "EXECUTING"
    await world.report("d-1", op["id"], "SUCCESSFUL")
    done = await world.op(op["id"])
    assert done["status"] == "SUCCESSFUL"
    assert "failureReason" not in done
    assert (await world.mo(device))["c8y_Firmware"] == firmware(url)
    assert world.link.take("fg/d/d-1/error") == []


async def test_duplicates_are_silent_and_backward_moves_are_refused(world: World) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    assert op["status"] == "PENDING"
    await world.report("d-1", op["id"], "EXECUTING")
    await world.report("d-1", op["id"], "EXECUTING")
    assert world.link.take("fg/d/d-1/error") == []
    await world.report("d-1", op["id"], "FAILED", "disk full")
    await world.report("d-1", op["id"], "EXECUTING")
    await world.report("d-1", op["id"], "SUCCESSFUL")
    final = await world.op(op["id"])
    assert (final["status"], final["failureReason"]) == ("FAILED", "disk full")
    errors = world.link.take("fg/d/d-1/error")
    assert [e["error"] for e in errors] == ["operations/illegalTransition"] * 2
    assert errors[0]["message"] == (
        f"Operation {op['id']} is FAILED; it cannot move to EXECUTING (allowed: nothing: it is"
        " final)"
    )
    assert errors[0]["id"] == op["id"]


async def test_operations_the_device_did_not_declare_are_refused(world: World) -> None:
    device = await world.device("d-2", supported=["c8y_Restart"])
    refused = await world.create(
        {"deviceId": device, "c8y_Firmware": firmware("http://elsewhere/fw.bin")}
    )
    assert refused.status_code == 422
    assert refused.json()["message"] == (
        "The device does not support c8y_Firmware (its c8y_SupportedOperations: c8y_Restart)"
    )
    assert world.link.messages == []
    assert (await world.create({"deviceId": device, "c8y_Restart": {}})).status_code == 201


async def test_bad_requests_are_clear(world: World) -> None:
    device = await world.device("d-1")
    cases = [
        ({"c8y_Restart": {}}, 422, "deviceId"),
        ({"deviceId": "999999", "c8y_Restart": {}}, 404, "Device 999999 not found"),
        ({"deviceId": device, "c8y_Firmware": {"name": "x"}}, 422, "c8y_Firmware.version"),
        ({"deviceId": device, "c8y_Firmware": firmware(f"{TEST_BASE_URL}/inventory/binaries/99")},
         422, "No such file"),
        ({"deviceId": device, "c8y_Firmware": firmware("u"), "description": 5}, 422, "description"),
    ]  # fmt: skip
    for body, status, message in cases:
        response = await world.create(body)
        assert response.status_code == status, (body, response.text)
        assert message in response.json()["message"]
    response = await world.api.post(
        "/devicecontrol/operations", content=b"[1]", auth=ADMIN,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422
    assert world.link.messages == []


async def test_bad_device_messages_are_answered_on_the_error_topic(world: World) -> None:
    device_1 = await world.device("d-1")
    await world.device("d-2")
    op = (await world.create({"deviceId": device_1, "c8y_Restart": {}})).json()
    world.link.take("fg/d/d-1/op/cmd")
    await world.send("d-2", "op/status", b"not json")
    await world.send("d-2", "op/status", {"id": op["id"], "status": "DONE"})
    await world.send("d-2", "op/status", {"status": "EXECUTING"})
    await world.report("d-2", op["id"], "EXECUTING")  # d-1's operation
    await world.report("d-2", "424242", "EXECUTING")
    errors = world.link.take("fg/d/d-2/error")
    assert [e["error"] for e in errors] == ["operations/badRequest"] * 3 + [
        "operations/notFound"
    ] * 2
    assert all(e["topic"] == "fg/d/d-2/op/status" for e in errors)
    assert "status must be one of" in str(errors[1]["message"])
    assert (await world.op(op["id"]))["status"] == "PENDING"


async def test_a_declaration_before_the_registration_waits_for_it(world: World) -> None:
    message = Incoming("fg/d/d-new/inventory", b'{"type": "late"}')
    assert await world.messages.handle([message]) == [message]
    assert world.link.messages == []  # not refused: the link hands it back later
    await world.device("d-new")
    assert await world.messages.handle([message]) == []
    ext = await world.api.get("/identity/externalIds/c8y_Serial/d-new", auth=ADMIN)
    assert (await world.mo(ext.json()["managedObject"]["id"]))["type"] == "late"
    ghost = Incoming("fg/d/ghost/inventory", b"{}", deferrals=60)
    assert await world.messages.handle([ghost]) == []
    [error] = world.link.take("fg/d/ghost/error")
    assert error["message"] == "Device ghost is not registered"


async def test_the_stream_shows_what_one_batch_committed_once(world: World) -> None:
    """The stream follows the database's change log: two moves of one operation in one
    batch (one transaction) show as the state it committed, once, with its position."""
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    from fleetgate.services.operations import FeedFilter

    feed = world.operations.feed
    created = await world.pool.fetchval("SELECT max(position) FROM operation_change")

    def caught_up() -> bool:
        return feed.position >= created

    await eventually(caught_up, "the feed has read the creation")
    watching = feed.watch(FeedFilter("t1"))
    first = asyncio.ensure_future(anext(watching))
    await asyncio.sleep(0)
    batch = [
        Incoming("fg/d/d-1/op/status", json.dumps(body).encode())
        for body in (
            {"id": op["id"], "status": "EXECUTING", "failureReason": "not a failure"},
            {"id": op["id"], "status": "SUCCESSFUL"},
        )
    ]
    await world.messages.handle(batch)
    position, changed = await asyncio.wait_for(first, 30)
    assert (changed.id, changed.status, changed.failure_reason) == (
        int(op["id"]),
        "SUCCESSFUL",
        None,
    )
    assert position == await world.pool.fetchval("SELECT max(position) FROM operation_change")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(watching), 1.5)  # nothing else
    await watching.aclose()
    assert (await world.op(op["id"]))["status"] == "SUCCESSFUL"


async def test_failed_without_a_reason_gets_one(world: World) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    await world.report("d-1", op["id"], "FAILED")
    assert (await world.op(op["id"]))["failureReason"] == "The device gave no reason"


async def test_operator_status_moves_use_the_same_table(world: World) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    path = f"/devicecontrol/operations/{op['id']}"
    cancelled = await world.api.put(
        path, json={"status": "FAILED", "failureReason": "Cancelled"}, auth=ADMIN
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["failureReason"] == "Cancelled"
    back = await world.api.put(path, json={"status": "PENDING"}, auth=ADMIN)
    assert back.status_code == 422
    assert back.json()["message"].startswith(f"Operation {op['id']} is FAILED; it cannot move")
    bad = await world.api.put(path, json={"status": "BROKEN"}, auth=ADMIN)
    assert bad.status_code == 422
    note = await world.api.put(path, json={"myNote": {"text": "x"}}, auth=ADMIN)
    assert note.status_code == 200
    assert note.json()["myNote"] == {"text": "x"}
    changed = await world.api.put(path, json={"c8y_Restart": {"now": True}}, auth=ADMIN)
    assert changed.status_code == 422
    await world.report("d-1", op["id"], "SUCCESSFUL")  # the device is too late
    assert (await world.op(op["id"]))["status"] == "FAILED"


async def test_software_update_changes_the_software_list(world: World) -> None:
    device = await world.device("d-1")
    installed = [{"name": "agent", "version": "1.0", "url": ""}, {"name": "old", "version": "0.1"}]
    await world.send("d-1", "inventory", {"c8y_SoftwareList": installed})
    url = await world.upload("agent.deb", b"deb")
    changes = [
        {"name": "agent", "version": "2.0", "url": url, "action": "install"},
        {"name": "old", "action": "delete"},
    ]
    op = (await world.create({"deviceId": device, "c8y_SoftwareUpdate": changes})).json()
    [command] = world.link.take("fg/d/d-1/op/cmd")
    payload = command["payload"]
    assert isinstance(payload, list)
    assert payload[0]["file"]["size"] == 3
    assert "file" not in payload[1]
    await world.report("d-1", op["id"], "SUCCESSFUL")
    assert (await world.mo(device))["c8y_SoftwareList"] == [
        {"name": "agent", "version": "2.0", "url": url}
    ]


async def _config_dump(
    world: World, url: str, *, config_type: str | None, device_type: str | None
) -> None:
    body: dict[str, Any] = {"name": "cfg", "type": "c8y_ConfigurationDump", "url": url}
    if config_type:
        body["configurationType"] = config_type
    if device_type:
        body["deviceType"] = device_type
    created = await world.api.post("/inventory/managedObjects", json=body, auth=ADMIN)
    assert created.status_code == 201, created.text


async def test_sending_configuration_offers_only_matching_files(world: World) -> None:
    device = await world.device("d-1", type="thermo")
    ssh = await world.upload("ssh.conf", b"Port 22")
    agent = await world.upload("agent.conf", b"x=1")
    other_device = await world.upload("other.conf", b"y=1")
    untyped = await world.upload("any.conf", b"z=1")
    await _config_dump(world, ssh, config_type="ssh", device_type="thermo")
    await _config_dump(world, agent, config_type="agent", device_type=None)
    await _config_dump(world, other_device, config_type="ssh", device_type="pump")
    await _config_dump(world, untyped, config_type=None, device_type=None)

    async def send(url: str, config_type: str) -> httpx.Response:
        body = {"deviceId": device, "c8y_DownloadConfigFile": {"type": config_type, "url": url}}
        return await world.create(body)

    assert (await send(ssh, "ssh")).status_code == 201
    assert (await send(untyped, "ssh")).status_code == 201
    wrong_type = await send(agent, "ssh")
    assert wrong_type.status_code == 422
    assert "configuration type 'agent', not 'ssh'" in wrong_type.json()["message"]
    wrong_device = await send(other_device, "ssh")
    assert "device type 'pump', not 'thermo'" in wrong_device.json()["message"]
    outside = await send("http://elsewhere/x.conf", "ssh")
    assert "is not a file of the configuration repository" in outside.json()["message"]

    op = (await send(ssh, "ssh")).json()
    await world.report("d-1", op["id"], "SUCCESSFUL")
    applied = (await world.mo(device))["c8y_Configuration_ssh"]
    assert applied["url"] == ssh
    assert applied["operationId"] == op["id"]


async def test_one_open_snapshot_request_per_configuration_type(world: World) -> None:
    device = await world.device("d-1", type="thermo")

    async def ask(config_type: str) -> httpx.Response:
        return await world.create(
            {"deviceId": device, "c8y_UploadConfigFile": {"type": config_type}}
        )

    first = await ask("ssh")
    assert first.status_code == 201
    second = await ask("ssh")
    assert second.status_code == 409
    assert "already PENDING or EXECUTING" in second.json()["message"]
    assert (await ask("agent")).status_code == 201  # another type is fine
    unsupported = await ask("vpn")
    assert unsupported.status_code == 422
    assert "does not support configuration type 'vpn'" in unsupported.json()["message"]
    op = first.json()
    await world.report("d-1", op["id"], "EXECUTING")
    assert (await ask("ssh")).status_code == 409

    [command, _] = world.link.take("fg/d/d-1/op/cmd")
    upload = command["upload"]
    assert isinstance(upload, dict)
    assert upload["method"] == "PUT"
    tampered = str(upload["url"]).replace("device=d-1", "device=d-2")
    assert (await world.api.put(tampered, content=b"x")).status_code == 403
    stored = await world.api.put(upload["url"], content=b"PermitRootLogin no\n")
    assert stored.status_code == 201, stored.text
    await world.report("d-1", op["id"], "SUCCESSFUL")
    assert (await world.op(op["id"]))["status"] == "SUCCESSFUL"

    dumps = (
        await world.api.get(
            "/inventory/managedObjects?type=c8y_ConfigurationDump&pageSize=100", auth=ADMIN
        )
    ).json()["managedObjects"]
    [dump] = dumps
    assert (dump["deviceType"], dump["configurationType"]) == ("thermo", "ssh")
    content = await world.api.get(dump["url"].removeprefix(TEST_BASE_URL), auth=ADMIN)
    assert content.content == b"PermitRootLogin no\n"
    assert (await ask("ssh")).status_code == 201  # no longer open: a new one is fine
    late = await world.api.put(upload["url"], content=b"late")
    assert late.status_code == 409


async def test_a_snapshot_request_without_an_upload_fails(world: World) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_UploadConfigFile": {"type": "ssh"}})).json()
    await world.report("d-1", op["id"], "SUCCESSFUL")
    final = await world.op(op["id"])
    assert final["status"] == "FAILED"
    assert final["failureReason"] == "The device reported SUCCESSFUL without uploading the snapshot"


async def test_sync_resends_open_operations_oldest_first(world: World) -> None:
    device = await world.device("d-1")
    ids = [(await world.create({"deviceId": device, "c8y_Restart": {}})).json()["id"]
           for _ in range(3)]  # fmt: skip
    await world.report("d-1", ids[1], "SUCCESSFUL")
    await world.report("d-1", ids[2], "EXECUTING")
    world.link.take("fg/d/d-1/op/cmd")
    await world.send("d-1", "op/sync", {})
    resent = world.link.take("fg/d/d-1/op/cmd")
    assert [c["id"] for c in resent] == [ids[0], ids[2]]


async def test_undispatched_operations_are_sent_at_start(world: World, pool: asyncpg.Pool) -> None:
    device = await world.device("d-1")
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    world.link.take("fg/d/d-1/op/cmd")
    await pool.execute("UPDATE operation SET dispatched_at = NULL")  # as if we died after commit
    await world.operations.dispatch_undispatched()
    assert [c["id"] for c in world.link.take("fg/d/d-1/op/cmd")] == [op["id"]]
    await world.operations.dispatch_undispatched()
    assert world.link.take("fg/d/d-1/op/cmd") == []


async def test_open_operations_time_out(world: World, pool: asyncpg.Pool) -> None:
    device = await world.device("d-1")
    pending = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    executing = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    await world.report("d-1", executing["id"], "EXECUTING")
    await pool.execute("UPDATE operation SET status_time = now() - interval '2 hours'")
    timed_out = await world.operations.sweep(pending_after=3 * 3600, executing_after=3600)
    assert [o.id for o in timed_out] == [int(executing["id"])]
    op = await world.op(executing["id"])
    assert (op["status"], op["failureReason"]) == (
        "FAILED",
        "Timed out: EXECUTING for more than 3600 s",
    )
    assert (await world.op(pending["id"]))["status"] == "PENDING"
    await world.report("d-1", executing["id"], "SUCCESSFUL")
    assert (await world.op(executing["id"]))["status"] == "FAILED"


async def test_listing_filters_and_paging(world: World) -> None:
    d1 = await world.device("d-1")
    d2 = await world.device("d-2")
    made = []
    for device in (d1, d2, d1):
        made.append((await world.create({"deviceId": device, "c8y_Restart": {}})).json()["id"])
    await world.report("d-1", made[0], "SUCCESSFUL")

    async def ids(query: str) -> list[str]:
        response = await world.api.get(f"/devicecontrol/operations?{query}", auth=ADMIN)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(
            "application/vnd.com.nsn.cumulocity.operationCollection+json"
        )
        return [o["id"] for o in response.json()["operations"]]

    assert await ids("pageSize=10") == made
    assert await ids("pageSize=10&revert=true") == made[::-1]
    assert await ids(f"deviceId={d1}") == [made[0], made[2]]
    assert await ids("status=PENDING") == made[1:]
    assert await ids("status=SUCCESSFUL&status=PENDING") == made
    assert await ids("fragmentType=c8y_Restart") == made
    assert await ids("fragmentType=c8y_Firmware") == []
    assert await ids("dateFrom=2000-01-01T00:00:00Z&dateTo=2999-01-01T00:00:00Z") == made
    assert await ids("dateTo=2000-01-01T00:00:00Z") == []
    page = (await world.api.get("/devicecontrol/operations?pageSize=2&withTotalPages=true",
                                auth=ADMIN)).json()  # fmt: skip
    assert page["statistics"]["totalPages"] == 2
    assert "next" in page
    bad = await world.api.get("/devicecontrol/operations?status=NOPE", auth=ADMIN)
    assert bad.status_code == 422
    bad = await world.api.get("/devicecontrol/operations?dateFrom=yesterday", auth=ADMIN)
    assert bad.status_code == 422


async def test_tenants_see_only_their_own_operations_and_files(world: World) -> None:
    d1 = await world.device("d-1")
    await world.device("d-9", tenant="t2")
    url = await world.upload("fw.bin", b"fw")
    op = (await world.create({"deviceId": d1, "c8y_Firmware": firmware(url)})).json()
    assert (
        await world.api.get(f"/devicecontrol/operations/{op['id']}", auth=OTHER)
    ).status_code == 404
    listed = (await world.api.get("/devicecontrol/operations", auth=OTHER)).json()
    assert listed["operations"] == []
    put = await world.api.put(f"/devicecontrol/operations/{op['id']}",
                              json={"status": "FAILED"}, auth=OTHER)  # fmt: skip
    assert put.status_code == 404
    foreign_device = await world.create({"deviceId": d1, "c8y_Restart": {}}, auth=OTHER)
    assert foreign_device.status_code == 404
    ext = await world.api.get("/identity/externalIds/c8y_Serial/d-9", auth=OTHER)
    d9 = str(ext.json()["managedObject"]["id"])
    foreign_file = await world.create({"deviceId": d9, "c8y_Firmware": firmware(url)}, auth=OTHER)
    assert foreign_file.status_code == 422
    assert "No such file" in foreign_file.json()["message"]
    await world.report("d-9", op["id"], "EXECUTING")  # t2's device, t1's operation
    assert (await world.op(op["id"]))["status"] == "PENDING"


async def test_roles(world: World, pool: asyncpg.Pool) -> None:
    device = await world.device("d-1")
    reader = ("t1/reader", "reader-pw-1234")
    from fleetgate.domain.passwords import hash_password
    from fleetgate.domain.users import Role

    await PgUsers(pool).ensure_user(
        "t1", "reader", hash_password("reader-pw-1234"), frozenset({Role.DEVICE_CONTROL_READ})
    )
    op = (await world.create({"deviceId": device, "c8y_Restart": {}})).json()
    assert (await world.op(op["id"], auth=reader))["id"] == op["id"]
    assert (
        await world.create({"deviceId": device, "c8y_Restart": {}}, auth=reader)
    ).status_code == 403
    assert (await world.api.get("/devicecontrol/operations")).status_code == 401
