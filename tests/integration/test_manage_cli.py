"""``fleetgate certs|requests|users`` and ``fleetgate devices list|show|enable|disable|
delete|children`` against the whole API on PostgreSQL (in process): what a table shows,
what ``--json`` prints, and which fleetgate error (hence exit status) a refusal raises."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.cli import _parser
from fleetgate.domain.errors import AccessDenied, Conflict, FleetgateError, NotFound
from fleetgate.pki import generate_ca
from fleetgate.watch.bulk import BulkProgress
from fleetgate.watch.bulk_command import (
    ProgressDisplay,
    check_outcome,
    create_body,
    repository_url,
    wait_for_bulk,
)
from fleetgate.watch.client import Endpoint, bulk_request
from fleetgate.watch.devices_command import devices_command
from fleetgate.watch.manage_command import bulk_list, manage_command, ops_action
from fleetgate.watch.text_table import (
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_ALLOWED,
    EXIT_NOT_FOUND,
    EXIT_PARTLY_FAILED,
    PartlyFailed,
    exit_status,
)

from conftest import TEST_BASE_URL
from waiting import eventually
from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


async def run(
    api: WholeApi, *argv: str, auth: tuple[str, str] = ADMIN, out: io.StringIO | None = None
) -> str:
    """The command's standard output (also in ``out``, for a command that then raises)."""
    args = _parser().parse_args(list(argv))
    out = io.StringIO() if out is None else out
    transport = httpx.ASGITransport(app=api.app)
    endpoint = Endpoint(TEST_BASE_URL, auth[0], auth[1])
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE_URL, auth=auth) as client:
        if args.command == "devices":
            await devices_command(args, endpoint, client, out)
        elif args.command == "ops" and args.ops_command == "bulk":
            await bulk_list(args, client, out)
        elif args.command == "ops":
            await ops_action(args, endpoint, out, client)
        else:
            await manage_command(args, endpoint, client, out)
    return out.getvalue()


async def refused(api: WholeApi, *argv: str, auth: tuple[str, str] = ADMIN) -> FleetgateError:
    with pytest.raises(FleetgateError) as caught:
        await run(api, *argv, auth=auth)
    return caught.value


async def device(api: WholeApi, name: str, **more: Any) -> str:
    made = await api.client.post(
        "/inventory/managedObjects",
        auth=ADMIN,
        json={"name": name, "type": "acme_Meter", "c8y_IsDevice": {}, **more},
    )
    assert made.status_code == 201, made.text
    object_id = str(made.json()["id"])
    serial = await api.client.post(
        f"/identity/globalIds/{object_id}/externalIds",
        auth=ADMIN,
        json={"type": "c8y_Serial", "externalId": name},
    )
    assert serial.status_code == 201, serial.text
    return object_id


async def test_certificates_added_listed_disabled_deleted(api: WholeApi, scratch_dir: Path) -> None:
    pem = scratch_dir / "factory-root.pem"
    pem.write_bytes(generate_ca("Factory Root").cert_pem())
    said = await run(api, "certs", "add", str(pem), "--auto-registration")
    assert said.startswith("trusted ")
    assert "Factory Root" in said
    fingerprint = said.split()[1]
    table = (await run(api, "certs", "list")).splitlines()
    assert table[0].split() == [
        "FINGERPRINT",
        "NAME",
        "STATUS",
        "AUTO-REGISTRATION",
        "SUBJECT",
        "NOT",
        "AFTER",
    ]
    assert table[1].split()[:4] == [fingerprint, "factory-root", "ENABLED", "yes"]
    assert len(table) == 2
    assert (
        await run(api, "certs", "disable", fingerprint) == f"certificate {fingerprint}: DISABLED\n"
    )
    listed = json.loads(await run(api, "certs", "--json", "list"))
    assert [c["status"] for c in listed["certificates"]] == ["DISABLED"]
    again = await refused(api, "certs", "add", str(pem))
    assert isinstance(again, Conflict)
    assert exit_status(again) == EXIT_CONFLICT
    assert await run(api, "certs", "delete", fingerprint) == f"deleted certificate {fingerprint}\n"
    gone = await refused(api, "certs", "enable", fingerprint)
    assert isinstance(gone, NotFound)
    assert exit_status(gone) == EXIT_NOT_FOUND
    assert (await run(api, "certs", "list")).splitlines()[1:] == []


async def test_a_request_listed_accepted_and_one_deleted(api: WholeApi) -> None:
    for name in ("meter-1", "meter-2"):
        made = await api.client.post(
            "/devicecontrol/newDeviceRequests", auth=ADMIN, json={"id": name}
        )
        assert made.status_code == 201, made.text
    table = (await run(api, "requests", "list")).splitlines()
    assert [line.split() for line in table] == [
        ["ID", "STATUS"],
        ["meter-1", "WAITING_FOR_CONNECTION"],
        ["meter-2", "WAITING_FOR_CONNECTION"],
    ]
    # Not asked for its credentials yet: the API's 422, exit status 1.
    early = await refused(api, "requests", "accept", "meter-1")
    assert type(early) is FleetgateError
    assert exit_status(early) == EXIT_FAILED
    assert "has not asked for its credentials yet" in early.message
    asked = await api.client.post(
        "/devicecontrol/deviceCredentials",
        json={"id": "meter-1"},
        auth=("t1/devicebootstrap", "boot-pw"),
    )
    assert asked.status_code == 404, asked.text  # not yet accepted: the device polls on
    accepted = await run(api, "requests", "accept", "meter-1")
    assert accepted == "request meter-1: ACCEPTED\n"
    assert await run(api, "requests", "delete", "meter-2", "--json") == "{}\n"
    listed = json.loads(await run(api, "requests", "list", "--json"))
    assert [(r["id"], r["status"]) for r in listed["newDeviceRequests"]] == [
        ("meter-1", "ACCEPTED")
    ]


async def test_users_created_with_roles_changed_and_deleted(api: WholeApi) -> None:
    said = await run(
        api,
        "users",
        "create",
        "ops-anna",
        "--new-password",
        "anna-s-password",
        "--role",
        "ROLE_INVENTORY_READ",
    )
    assert said == "user ops-anna: ROLE_INVENTORY_READ\n"
    changed = await run(
        api,
        "users",
        "roles",
        "ops-anna",
        "--add",
        "ROLE_INVENTORY_ADMIN",
        "--remove",
        "ROLE_INVENTORY_READ",
    )
    assert changed == "user ops-anna: ROLE_INVENTORY_ADMIN\n"
    rows = {line.split()[0]: line for line in (await run(api, "users", "list")).splitlines()}
    assert rows["USER"].split() == ["USER", "ENABLED", "EMAIL", "ROLES"]
    assert rows["ops-anna"].split() == ["ops-anna", "yes", "ROLE_INVENTORY_ADMIN"]
    # Anna may read and change the inventory, not manage users: refused, exit status 4.
    denied = await refused(api, "users", "list", auth=("t1/ops-anna", "anna-s-password"))
    assert isinstance(denied, AccessDenied)
    assert exit_status(denied) == EXIT_NOT_ALLOWED
    assert "ROLE_USER_MANAGEMENT_READ" in denied.message
    assert await run(api, "users", "delete", "ops-anna") == "deleted user ops-anna\n"
    assert "ops-anna" not in await run(api, "users", "list")


async def test_devices_listed_filtered_disabled_enabled_and_deleted(api: WholeApi) -> None:
    gateway = await device(api, "gw-1", type="acme_Gateway")
    meter = await device(api, "meter-9")
    child = await api.client.post(
        f"/inventory/managedObjects/{gateway}/childDevices",
        auth=ADMIN,
        json={"managedObject": {"id": meter}},
    )
    assert child.status_code == 201, child.text
    table = (await run(api, "devices", "list")).splitlines()
    assert table[0].split() == ["ID", "NAME", "TYPE", "LIFECYCLE", "REASON"]
    assert sorted(line.split()[1] for line in table[1:]) == ["gw-1", "meter-9"]
    typed = (await run(api, "devices", "list", "--type", "acme_Gateway")).splitlines()
    assert [line.split()[:3] for line in typed[1:]] == [[gateway, "gw-1", "acme_Gateway"]]
    children = (await run(api, "devices", "children", gateway)).splitlines()
    assert [line.split()[:2] for line in children[1:]] == [[meter, "meter-9"]]
    assert await run(api, "devices", "disable", gateway) == f"device {gateway}: DISABLED\n"
    disabled = await run(api, "devices", "list", "--lifecycle", "disabled", "--json")
    assert {d["id"] for d in json.loads(disabled)["managedObjects"]} == {gateway, meter}
    assert await run(api, "devices", "enable", gateway) == f"device {gateway}: INACTIVE\n"
    shown = await run(api, "devices", "show", meter)
    assert any(line.split()[:2] == ["name", "meter-9"] for line in shown.splitlines())
    assert await run(api, "devices", "delete", meter) == f"deleted device {meter}\n"
    missing = await refused(api, "devices", "show", meter)
    assert isinstance(missing, NotFound)
    assert exit_status(missing) == EXIT_NOT_FOUND


async def test_an_operation_created_listed_shown_and_cancelled(api: WholeApi) -> None:
    meter = await device(api, "meter-5", c8y_SupportedOperations=["c8y_Firmware"])
    said = await run(
        api, "ops", "create", "--device", meter, "--firmware", "fw,2.0,https://example.com/fw.bin"
    )
    assert said.startswith("operation ")
    assert said.endswith(": PENDING (c8y_Firmware)\n")
    op_id = said.split()[1].rstrip(":")
    table = (await run(api, "ops", "list", "--device", meter)).splitlines()
    assert table[0].split() == ["ID", "DEVICE", "COMMAND", "STATUS", "CREATED", "FAILURE"]
    assert [line.split()[:4] for line in table[1:]] == [[op_id, meter, "c8y_Firmware", "PENDING"]]
    assert (await run(api, "ops", "list", "--status", "failed")).splitlines()[1:] == []
    cancelled = await run(api, "ops", "cancel", op_id, "--reason", "wrong firmware")
    assert cancelled == f"operation {op_id}: FAILED (wrong firmware)\n"
    listed = json.loads(await run(api, "ops", "list", "--status", "FAILED", "--json"))
    assert [op["id"] for op in listed["operations"]] == [op_id]
    shown = json.loads(await run(api, "ops", "show", op_id, "--json"))
    assert shown["c8y_Firmware"]["version"] == "2.0"
    assert shown["failureReason"] == "wrong firmware"
    missing = await refused(api, "ops", "show", "999999")
    assert isinstance(missing, NotFound)


async def test_a_profile_created_listed_and_applied(api: WholeApi, scratch_dir: Path) -> None:
    content = scratch_dir / "thermo.json"
    firmware = {"name": "thermo-fw", "version": "2.0", "url": "https://example.com/t.bin"}
    content.write_text(json.dumps({"firmware": firmware}))
    said = await run(api, "profiles", "create", "thermo 2", "--content", str(content))
    assert said.startswith("profile ")
    assert said.endswith(": thermo 2\n")
    profile_id = said.split()[1].rstrip(":")
    typed = await run(api, "profiles", "create", "meters", "--device-type", "acme_Meter")
    table = (await run(api, "profiles", "list")).splitlines()
    assert table[0].split() == ["ID", "NAME", "DEVICE", "TYPE"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    assert rows[profile_id] == ["thermo", "2"]
    assert rows[typed.split()[1].rstrip(":")] == ["meters", "acme_Meter"]
    thermo = await device(api, "thermo-1", c8y_SupportedOperations=["c8y_DeviceProfile"])
    applied = json.loads(
        await run(api, "profiles", "apply", profile_id, "--device", thermo, "--json")
    )
    assert applied["status"] == "PENDING"
    assert (applied["profileId"], applied["profileName"]) == (profile_id, "thermo 2")
    assert applied["c8y_DeviceProfile"] == {"firmware": firmware}
    not_a_profile = await refused(api, "profiles", "apply", thermo, "--device", thermo)
    assert isinstance(not_a_profile, NotFound)


async def test_bulk_operations_listed(api: WholeApi) -> None:
    meter = await device(api, "meter-7", c8y_SupportedOperations=["c8y_Firmware"])
    group = await api.client.post(
        "/inventory/managedObjects",
        auth=ADMIN,
        json={"name": "meters", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": {}},
    )
    group_id = str(group.json()["id"])
    added = await api.client.post(
        f"/inventory/managedObjects/{group_id}/childAssets",
        auth=ADMIN,
        json={"managedObject": {"id": meter}},
    )
    assert added.status_code == 201, added.text
    firmware = {"name": "fw", "version": "3", "url": "https://example.com/fw3.bin"}
    made = await api.client.post(
        "/devicecontrol/bulkoperations",
        auth=ADMIN,
        json={
            "groupId": group_id,
            "startDate": "2030-01-01T00:00:00Z",
            "creationRamp": 1,
            "operationPrototype": {"c8y_Firmware": firmware},
        },
    )
    assert made.status_code == 201, made.text
    table = (await run(api, "ops", "bulk", "list")).splitlines()
    assert table[0].split() == [
        "ID", "GROUP", "COMMAND", "STATUS", "STATE", "TARGETS",
        "PENDING", "EXECUTING", "SUCCESSFUL", "FAILED",
    ]  # fmt: skip
    assert table[1].split()[:3] == [made.json()["id"], group_id, "c8y_Firmware"]
    assert len(table) == 2
    listed = json.loads(await run(api, "ops", "bulk", "list", "--json"))
    assert [b["id"] for b in listed["bulkOperations"]] == [made.json()["id"]]


async def test_credentials_imported_from_a_csv_file(api: WholeApi, scratch_dir: Path) -> None:
    csv = scratch_dir / "devices.csv"
    csv.write_text(
        "ID;CREDENTIALS;TYPE;NAME\n"
        "imp-1;imp-1-password;acme_Meter;Meter 1\n"
        "imp-2;short;acme_Meter;Meter 2\n"
        "imp-3;imp-3-password;acme_Meter;Meter 3\n"
    )
    # A failed row: the counts are printed, then the command fails with exit status 7.
    out = io.StringIO()
    with pytest.raises(PartlyFailed) as partly:
        await run(api, "credentials", "import", str(csv), out=out)
    assert exit_status(partly.value) == EXIT_PARTLY_FAILED
    assert str(partly.value) == "1 of 3 rows failed"
    said = out.getvalue().splitlines()
    assert said[0] == "3 devices: 2 created, 0 credentials updated, 1 failed"
    assert said[1].startswith("  line 3: imp-2;***;acme_Meter;Meter 2: ")
    assert "password" in said[1]
    # Without the bad row every row is taken: exit status 0, the JSON as the API gave it.
    csv.write_text(
        "ID;CREDENTIALS;TYPE;NAME\n"
        "imp-1;imp-1-password;acme_Meter;Meter 1\n"
        "imp-3;imp-3-password;acme_Meter;Meter 3\n"
    )
    again = json.loads(await run(api, "credentials", "import", str(csv), "--json"))
    assert again["numberOfCreated"] == 0
    assert again["numberOfFailed"] == 0
    assert {u["deviceId"] for u in again["credentialUpdatedList"]} == {"imp-1", "imp-3"}
    found = await api.client.get("/identity/externalIds/c8y_Serial/imp-3", auth=ADMIN)
    assert found.status_code == 200, found.text


async def test_firmware_uploaded_as_versions_and_listed(api: WholeApi, scratch_dir: Path) -> None:
    image = scratch_dir / "thermo-2.0.bin"
    image.write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    said = await run(
        api, "repo", "firmware", "upload", str(image), "--name", "thermo-fw", "--version", "2.0",
        "--device-type", "thermo",
    )  # fmt: skip
    assert said.startswith("firmware thermo-fw 2.0: firmware ")
    assert said.endswith(f" ({image.stat().st_size} bytes)\n")
    firmware_id = said.split()[4].rstrip(",")
    binary_id = said.split()[8]
    stored = await api.client.get(f"/inventory/binaries/{binary_id}", auth=ADMIN)
    assert stored.content == image.read_bytes()
    argv = ["--json", "firmware", "upload", str(image), "--name", "thermo-fw", "--version", "2.1"]
    second = json.loads(await run(api, "repo", *argv))
    assert second["firmwareId"] == firmware_id  # the same firmware, one more version
    assert second["managedObject"]["c8y_Firmware"]["version"] == "2.1"
    table = (await run(api, "repo", "firmware", "list")).splitlines()
    assert table[0].split() == ["ID", "NAME", "DEVICE", "TYPE", "VERSIONS"]
    assert table[1].split() == [firmware_id, "thermo-fw", "thermo", "2.0", "2.1"]


async def test_software_uploaded_as_versions_and_listed(api: WholeApi, scratch_dir: Path) -> None:
    package = scratch_dir / "agent-1.0.deb"
    package.write_bytes(b"!<arch>\n" + bytes(range(256)) * 20)
    said = await run(
        api, "repo", "software", "upload", str(package), "--name", "agent", "--version", "1.0",
        "--device-type", "thermo", "--software-type", "apt",
    )  # fmt: skip
    assert said.startswith("software agent 1.0: software ")
    assert said.endswith(f" ({package.stat().st_size} bytes)\n")
    software_id = said.split()[4].rstrip(",")
    binary_id = said.split()[8]
    stored = await api.client.get(f"/inventory/binaries/{binary_id}", auth=ADMIN)
    assert stored.content == package.read_bytes()
    made = (await api.client.get(f"/inventory/managedObjects/{software_id}", auth=ADMIN)).json()
    assert (made["type"], made["softwareType"], made["c8y_Filter"]) == (
        "c8y_Software", "apt", {"type": "thermo"},
    )  # fmt: skip
    argv = ["--json", "software", "upload", str(package), "--name", "agent", "--version", "1.1"]
    second = json.loads(await run(api, "repo", *argv))
    assert second["softwareId"] == software_id  # the same software, one more version
    assert second["managedObject"]["type"] == "c8y_SoftwareBinary"
    assert second["managedObject"]["c8y_Software"]["version"] == "1.1"
    assert second["managedObject"]["c8y_Software"]["url"].endswith(
        f"/inventory/binaries/{second['binary']['id']}"
    )
    table = (await run(api, "repo", "software", "list")).splitlines()
    assert table[0].split() == ["ID", "NAME", "DEVICE", "TYPE", "VERSIONS"]
    assert table[1].split() == [software_id, "agent", "thermo", "1.0", "1.1"]
    assert len(table) == 2  # firmware is not software
    listed = json.loads(await run(api, "repo", "software", "list", "--json"))
    assert [item["versions"] for item in listed["managedObjects"]] == ["1.0 1.1"]


async def test_configuration_files_uploaded_and_listed(api: WholeApi, scratch_dir: Path) -> None:
    config = scratch_dir / "sshd_config"
    config.write_text("PermitRootLogin no\n")
    said = await run(
        api, "repo", "configuration", "upload", str(config), "--name", "ssh hardening",
        "--configuration-type", "ssh", "--device-type", "thermo", "--description", "no root",
    )  # fmt: skip
    assert said.startswith("configuration ssh hardening: entry ")
    assert said.endswith(f" ({config.stat().st_size} bytes)\n")
    entry_id, binary_id = said.split()[4].rstrip(","), said.split()[6]
    stored = await api.client.get(f"/inventory/binaries/{binary_id}", auth=ADMIN)
    assert stored.content == config.read_bytes()
    second = json.loads(
        await run(api, "repo", "configuration", "upload", str(config), "--name", "plain", "--json")
    )
    assert second["managedObject"]["type"] == "c8y_ConfigurationDump"
    assert "deviceType" not in second["managedObject"]
    assert second["managedObject"]["url"].endswith(f"/inventory/binaries/{second['binary']['id']}")
    table = (await run(api, "repo", "configuration", "list")).splitlines()
    assert table[0].split()[:6] == ["ID", "NAME", "CONFIGURATION", "TYPE", "DEVICE", "TYPE"]
    assert len(table) == 3
    [row] = [line for line in table if line.startswith(f"{entry_id} ")]
    assert "ssh hardening" in row
    assert row.split()[3:5] == ["ssh", "thermo"]
    assert row.endswith(f"/inventory/binaries/{binary_id}")
    # An entry needs a name: the API's 422 on an empty one is exit status 1.
    with pytest.raises(FleetgateError) as refused:
        await run(api, "repo", "configuration", "upload", str(config), "--name", "")
    assert exit_status(refused.value) == EXIT_FAILED


async def test_bulk_create_wait_follows_until_the_end(api: WholeApi) -> None:
    """``ops bulk create --wait``'s loop on the in-process API: it shows the SCHEDULED bulk
    operation, goes on reading it, and ends on CANCELED (exit status 7) once cancelled."""
    meter = await device(api, "meter-9", c8y_SupportedOperations=["c8y_Firmware"])
    group = await api.client.post(
        "/inventory/managedObjects",
        auth=ADMIN,
        json={"name": "waited", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": {}},
    )
    group_id = str(group.json()["id"])
    await api.client.post(
        f"/inventory/managedObjects/{group_id}/childAssets",
        auth=ADMIN,
        json={"managedObject": {"id": meter}},
    )
    args = _parser().parse_args(
        ["ops", "bulk", "create", "--group", group_id, "--start", "2030-01-01T00:00:00Z",
         "--firmware", "fw,3,https://example.com/fw3.bin", "--wait"]
    )  # fmt: skip
    shown = io.StringIO()
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE_URL, auth=ADMIN) as client:
        made = await bulk_request(client, "POST", "", create_body(args))
        assert made is not None
        waiting = asyncio.create_task(
            wait_for_bulk(
                client, BulkProgress.from_json(made), ProgressDisplay(shown), interval=0.05
            )
        )
        await eventually(lambda: "SCHEDULED" in shown.getvalue(), "the first progress line")
        assert not waiting.done()  # a SCHEDULED bulk operation has not finished
        await bulk_request(client, "DELETE", f"/{made['id']}")
        async with asyncio.timeout(120):  # a bound, not a measurement
            ended = await waiting
    assert ended.general_status == "CANCELED"
    assert shown.getvalue().splitlines()[-1].split("\t")[:3] == ["bulk", made["id"], "CANCELED"]
    with pytest.raises(PartlyFailed) as caught:
        check_outcome(ended)
    assert exit_status(caught.value) == EXIT_PARTLY_FAILED


async def test_a_firmware_version_s_url_from_the_repository(
    api: WholeApi, scratch_dir: Path
) -> None:
    """``ops bulk create --firmware NAME,VERSION`` (no URL) takes the repository's."""
    image = scratch_dir / "fw-3.bin"
    image.write_bytes(b"\x7fELF" + bytes(range(256)) * 8)
    argv = ["repo", "--json", "firmware", "upload", str(image), "--name", "acme-fw"]
    uploaded = json.loads(await run(api, *argv, "--version", "3"))
    await run(api, *argv, "--version", "4")
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE_URL, auth=ADMIN) as client:
        url = await repository_url(client, "acme-fw", "3")
        assert url == uploaded["managedObject"]["c8y_Firmware"]["url"]
        assert url.endswith(f"/inventory/binaries/{uploaded['binary']['id']}")
        assert await repository_url(client, "acme-fw", "4") != url
        with pytest.raises(NotFound, match="firmware acme-fw 5 is not in the firmware repo"):
            await repository_url(client, "acme-fw", "5")
        with pytest.raises(NotFound):
            await repository_url(client, "other-fw", "3")
