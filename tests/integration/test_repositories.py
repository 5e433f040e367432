"""Firmware, software and configuration repositories: managed objects with child additions,
on the real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.files.store import FileStore
from fleetgate.services.binaries import Binaries
from fleetgate.services.broker import removed_device_lines
from fleetgate.services.devices import Devices

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

ADMIN = ("t1/admin", "admin-pw")
OTHER = ("t2/admin", "admin-pw")
OBJECTS = "/inventory/managedObjects"
MO = "application/vnd.com.nsn.cumulocity.managedObject+json"
REFERENCE = "application/vnd.com.nsn.cumulocity.managedObjectReference+json"
REFERENCES = "application/vnd.com.nsn.cumulocity.managedObjectReferenceCollection+json"


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
async def api(
    pool: asyncpg.Pool, scratch_dir: Path, broker: RecordingBroker
) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t1", "t2")
    binaries = Binaries(PgBinaries(pool), FileStore(scratch_dir / "files"))
    devices = Devices(
        PgInventory(pool),
        PgIdentity(pool),
        PgUsers(pool),
        PgDevices(pool),
        broker,
        is_transient=is_transient,
        files_released=binaries.release,
    )
    async with api_client(pool) as (app, client):
        services_of(app).devices = devices
        services_of(app).binaries = binaries
        yield client


async def create(api: httpx.AsyncClient, body: dict[str, Any], auth: Any = ADMIN) -> str:
    response = await api.post(OBJECTS, json=body, auth=auth)
    assert response.status_code == 201, response.text
    object_id: str = response.json()["id"]
    return object_id


async def add_version(
    api: httpx.AsyncClient, parent: str, body: dict[str, Any], auth: Any = ADMIN
) -> httpx.Response:
    return await api.post(
        f"{OBJECTS}/{parent}/childAdditions",
        content=json.dumps(body),
        headers={"content-type": MO, "accept": REFERENCE},
        auth=auth,
    )


async def upload(api: httpx.AsyncClient, data: bytes, name: str, auth: Any = ADMIN) -> str:
    boundary = "b"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="object"\r\n\r\n'
            f'{{"name": "{name}"}}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await api.post(
        "/inventory/binaries",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        auth=auth,
    )
    assert response.status_code == 201, response.text
    binary_id: str = response.json()["id"]
    return binary_id


async def test_a_firmware_with_two_versions(api: httpx.AsyncClient) -> None:
    firmware = await create(
        api,
        {
            "type": "c8y_Firmware",
            "name": "pump-os",
            "description": "pump firmware",
            "c8y_Filter": {"type": "pump"},
        },
    )
    image = await upload(api, b"image 1.0", "pump-os-1.0.bin")
    versions = []
    for version, url in (
        ("1.0.0", f"{TEST_BASE_URL}/inventory/binaries/{image}"),
        ("1.1.0", "https://downloads.example.com/pump-os-1.1.bin"),
    ):
        added = await add_version(
            api,
            firmware,
            {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": version, "url": url}},
        )
        assert added.status_code == 201, added.text
        assert added.headers["content-type"].startswith(REFERENCE)
        reference = added.json()
        assert reference["managedObject"]["c8y_Firmware"]["version"] == version
        child_id = reference["managedObject"]["id"]
        assert reference["self"] == (
            f"{TEST_BASE_URL}{OBJECTS}/{firmware}/childAdditions/{child_id}"
        )
        versions.append(child_id)

    listed = await api.get(f"{OBJECTS}/{firmware}/childAdditions?withTotalPages=true", auth=ADMIN)
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith(REFERENCES)
    body = listed.json()
    assert [r["managedObject"]["id"] for r in body["references"]] == versions
    assert body["statistics"]["totalElements"] == 2
    first_page = await api.get(f"{OBJECTS}/{firmware}/childAdditions?pageSize=1", auth=ADMIN)
    assert [r["managedObject"]["id"] for r in first_page.json()["references"]] == versions[:1]
    assert "currentPage=2" in first_page.json()["next"]

    shown = (await api.get(f"{OBJECTS}/{firmware}", auth=ADMIN)).json()
    assert shown["childAdditions"]["self"] == f"{TEST_BASE_URL}{OBJECTS}/{firmware}/childAdditions"
    assert [r["managedObject"]["id"] for r in shown["childAdditions"]["references"]] == versions
    assert shown["childAdditions"]["references"][0]["managedObject"]["self"] == (
        f"{TEST_BASE_URL}{OBJECTS}/{versions[0]}"
    )
    assert shown["childDevices"]["references"] == []
    version = (await api.get(f"{OBJECTS}/{versions[0]}", auth=ADMIN)).json()
    parents = version["additionParents"]["references"]
    assert [(p["managedObject"]["id"], p["managedObject"]["name"]) for p in parents] == [
        (firmware, "pump-os")
    ]
    # Collections show them too, as Cumulocity does (withChildren=true by default);
    # withChildren=false leaves the children out.
    page = (await api.get(f"{OBJECTS}?type=c8y_Firmware", auth=ADMIN)).json()
    listed = page["managedObjects"][0]["childAdditions"]["references"]
    assert [r["managedObject"]["id"] for r in listed] == versions
    lean = (await api.get(f"{OBJECTS}?type=c8y_Firmware&withChildren=false", auth=ADMIN)).json()
    assert "childAdditions" not in lean["managedObjects"][0]
    assert lean["managedObjects"][0]["additionParents"]["references"] == []


async def test_software_and_configuration_entries(api: httpx.AsyncClient) -> None:
    software = await create(
        api,
        {
            "type": "c8y_Software",
            "name": "nginx",
            "softwareType": "apt",
            "c8y_Filter": {"type": "gateway"},
        },
    )
    added = await add_version(
        api,
        software,
        {
            "type": "c8y_SoftwareBinary",
            "c8y_Software": {"version": "1.25.3", "url": "https://pkgs.example/nginx.deb"},
        },
    )
    assert added.status_code == 201
    dump = await upload(api, b"[main]\nrate=5\n", "pump.ini")
    config = await api.post(
        OBJECTS,
        json={
            "type": "c8y_ConfigurationDump",
            "name": "default pump config",
            "description": "factory settings",
            "deviceType": "pump",
            "configurationType": "pump.ini",
            "url": f"/inventory/binaries/{dump}",
        },
        auth=ADMIN,
    )
    assert config.status_code == 201, config.text
    assert config.json()["configurationType"] == "pump.ini"


async def test_repository_entries_are_checked_as_a_user_expects(api: httpx.AsyncClient) -> None:
    firmware = await create(api, {"type": "c8y_Firmware", "name": "fw"})
    other_tenant_binary = await upload(api, b"theirs", "theirs.bin", auth=OTHER)

    async def refused(response: httpx.Response, *words: str) -> None:
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        for word in words:
            assert word in message, message

    await refused(await api.post(OBJECTS, json={"type": "c8y_Firmware"}, auth=ADMIN), "name")
    await refused(
        await api.post(OBJECTS, json={"type": "c8y_Software", "name": " "}, auth=ADMIN), "name"
    )
    await refused(await add_version(api, firmware, {"type": "c8y_FirmwareBinary"}), "c8y_Firmware")
    await refused(
        await add_version(
            api, firmware, {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1"}}
        ),
        "c8y_Firmware.url",
    )
    await refused(
        await add_version(
            api,
            firmware,
            {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": 2, "url": "http://x/y"}},
        ),
        "c8y_Firmware.version",
    )
    await refused(
        await add_version(
            api,
            firmware,
            {"type": "c8y_SoftwareBinary", "c8y_Software": {"url": "http://x/y"}},
        ),
        "c8y_Software.version",
    )
    await refused(
        await api.post(OBJECTS, json={"type": "c8y_ConfigurationDump", "name": "cfg"}, auth=ADMIN),
        "url",
    )
    await refused(
        await api.post(
            OBJECTS,
            json={"type": "c8y_ConfigurationDump", "url": "http://x/cfg"},
            auth=ADMIN,
        ),
        "name",
    )
    for missing in ("999999", other_tenant_binary):
        await refused(
            await add_version(
                api,
                firmware,
                {
                    "type": "c8y_FirmwareBinary",
                    "c8y_Firmware": {"version": "1", "url": f"/inventory/binaries/{missing}"},
                },
            ),
            f"binary {missing}",
        )
    # Updates are checked on the object they make.
    version = (
        await add_version(
            api,
            firmware,
            {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1", "url": "http://x/1"}},
        )
    ).json()["managedObject"]["id"]
    await refused(
        await api.put(f"{OBJECTS}/{version}", json={"c8y_Firmware": {"version": "2"}}, auth=ADMIN),
        "c8y_Firmware.url",
    )
    await refused(await api.put(f"{OBJECTS}/{firmware}", json={"name": None}, auth=ADMIN), "name")
    fine = await api.put(
        f"{OBJECTS}/{version}",
        json={"c8y_Firmware": {"version": "2", "url": "http://x/2"}},
        auth=ADMIN,
    )
    assert fine.status_code == 200
    # Nothing was left behind by the refused versions.
    listed = (await api.get(f"{OBJECTS}/{firmware}/childAdditions", auth=ADMIN)).json()
    assert [r["managedObject"]["id"] for r in listed["references"]] == [version]


async def test_child_additions_are_added_listed_and_removed(api: httpx.AsyncClient) -> None:
    parent = await create(api, {"name": "parent"})
    child = await create(api, {"name": "child"})
    url = f"{OBJECTS}/{parent}/childAdditions"
    added = await api.post(
        url,
        json={"managedObject": {"id": child}},
        headers={"content-type": REFERENCE},
        auth=ADMIN,
    )
    assert added.status_code == 201
    assert added.json()["managedObject"]["name"] == "child"
    again = await api.post(url, json={"managedObject": {"id": child}}, auth=ADMIN)
    assert again.status_code == 201
    one = await api.get(f"{url}/{child}", auth=ADMIN)
    assert one.status_code == 200
    assert one.json()["managedObject"]["id"] == child
    assert one.json()["self"] == f"{TEST_BASE_URL}{url}/{child}"
    listed = (await api.get(url, auth=ADMIN)).json()
    assert [r["managedObject"]["id"] for r in listed["references"]] == [child]

    assert (
        await api.post(url, json={"managedObject": {"id": parent}}, auth=ADMIN)
    ).status_code == 422
    missing = await api.post(url, json={"managedObject": {"id": "999999"}}, auth=ADMIN)
    assert missing.status_code == 404
    bad = await api.post(
        url, json={"managedObject": {}}, headers={"content-type": REFERENCE}, auth=ADMIN
    )
    assert bad.status_code == 422

    assert (await api.delete(f"{url}/{child}", auth=ADMIN)).status_code == 204
    assert (await api.delete(f"{url}/{child}", auth=ADMIN)).status_code == 404
    assert (await api.get(f"{url}/{child}", auth=ADMIN)).status_code == 404
    assert (await api.get(f"{OBJECTS}/{child}", auth=ADMIN)).status_code == 200
    assert (await api.get(f"{OBJECTS}/999999/childAdditions", auth=ADMIN)).status_code == 404
    assert (await add_version(api, "999999", {"name": "orphan"})).status_code == 404


async def test_child_additions_stay_within_a_tenant(api: httpx.AsyncClient) -> None:
    mine = await create(api, {"name": "mine"})
    theirs = await create(api, {"name": "theirs"}, auth=OTHER)
    url = f"{OBJECTS}/{mine}/childAdditions"
    assert (
        await api.post(url, json={"managedObject": {"id": theirs}}, auth=ADMIN)
    ).status_code == 404
    assert (
        await api.post(
            f"{OBJECTS}/{theirs}/childAdditions", json={"managedObject": {"id": mine}}, auth=ADMIN
        )
    ).status_code == 404
    await api.post(
        url, json={"managedObject": {"id": await create(api, {"name": "c"})}}, auth=ADMIN
    )
    assert (await api.get(url, auth=OTHER)).status_code == 404
    assert (await add_version(api, mine, {"name": "x"}, auth=OTHER)).status_code == 404


async def test_force_cascade_deletes_a_firmware_with_its_versions(
    api: httpx.AsyncClient, broker: RecordingBroker, pool: asyncpg.Pool
) -> None:
    firmware = await create(api, {"type": "c8y_Firmware", "name": "fw"})
    versions = [
        (
            await add_version(
                api,
                firmware,
                {
                    "type": "c8y_FirmwareBinary",
                    "c8y_Firmware": {"version": v, "url": f"http://x/{v}"},
                },
            )
        ).json()["managedObject"]["id"]
        for v in ("1", "2")
    ]
    # A version's own addition (its binary) goes too; an unrelated object stays.
    image = await upload(api, b"image", "image.bin")
    await api.post(
        f"{OBJECTS}/{versions[0]}/childAdditions", json={"managedObject": {"id": image}}, auth=ADMIN
    )
    bystander = await create(api, {"name": "bystander"})

    plain = await create(api, {"type": "c8y_Firmware", "name": "plain"})
    kept = (
        await add_version(
            api,
            plain,
            {"type": "c8y_FirmwareBinary", "c8y_Firmware": {"version": "1", "url": "http://x"}},
        )
    ).json()["managedObject"]["id"]
    assert (await api.delete(f"{OBJECTS}/{plain}", auth=ADMIN)).status_code == 204
    assert (await api.get(f"{OBJECTS}/{kept}", auth=ADMIN)).status_code == 200

    deleted = await api.delete(f"{OBJECTS}/{firmware}?forceCascade=true", auth=ADMIN)
    assert deleted.status_code == 204
    for gone in (firmware, *versions, image):
        assert (await api.get(f"{OBJECTS}/{gone}", auth=ADMIN)).status_code == 404
    assert (await api.get(f"{OBJECTS}/{bystander}", auth=ADMIN)).status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM binary_file") == 0
    assert broker.lines == []


async def test_force_cascade_tells_the_broker_about_deleted_devices(
    api: httpx.AsyncClient, broker: RecordingBroker
) -> None:
    parent = await create(api, {"name": "site"})
    device = await create(api, {"name": "pump", "c8y_IsDevice": {}})
    await api.post(
        f"/identity/globalIds/{device}/externalIds",
        json={"type": "c8y_Serial", "externalId": "pump-9"},
        auth=ADMIN,
    )
    assert broker.lines == [control.device("pump-9", "t1", True)]
    await api.post(
        f"{OBJECTS}/{parent}/childAdditions", json={"managedObject": {"id": device}}, auth=ADMIN
    )
    assert (
        await api.delete(f"{OBJECTS}/{parent}?forceCascade=true", auth=ADMIN)
    ).status_code == 204
    assert broker.lines[-3:] == removed_device_lines("t1", "pump-9")
    assert (await api.get("/user/t1/users/device_pump-9", auth=ADMIN)).status_code == 404
