"""A gateway's tree over REST against PostgreSQL (docs/api.md, "Child devices: a
gateway's tree"): attach, list, detach, attach to another gateway; one gateway per device
(409 naming it, races included), one level, devices that connect only; what is remembered
of removed children; the tree in managed objects, in list filters and in deletions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.db.users import PgUsers
from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role

from conftest import TEST_BASE_URL, seed_tenants
from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration

READER = ("t1/reader", "reader-pw")
REFERENCE = "application/vnd.com.nsn.cumulocity.managedObjectReference+json"
REFERENCES = "application/vnd.com.nsn.cumulocity.managedObjectReferenceCollection+json"
MO = f"{TEST_BASE_URL}/inventory/managedObjects"


@pytest.fixture
async def world(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, tmp_path) as api:
        await seed_tenants(pool, "t2")
        await PgUsers(pool).ensure_user(
            "t1", "reader", hash_password("reader-pw", log2_n=4), [Role.INVENTORY_READ]
        )
        yield api


async def device(api: httpx.AsyncClient, serial: str | None, auth: Any = ADMIN) -> str:
    """A device (with ``serial`` as its c8y_Serial when given); its id."""
    made = await api.post(
        "/inventory/managedObjects", json={"name": serial, "c8y_IsDevice": {}}, auth=auth
    )
    object_id: str = made.json()["id"]
    if serial is not None:
        added = await api.post(
            f"/identity/globalIds/{object_id}/externalIds",
            json={"type": "c8y_Serial", "externalId": serial},
            auth=auth,
        )
        assert added.status_code == 201, added.text
    return object_id


async def attach(api: httpx.AsyncClient, gateway: str, child: str, **kw: Any) -> httpx.Response:
    kw.setdefault("auth", ADMIN)
    return await api.post(
        f"/inventory/managedObjects/{gateway}/childDevices",
        json={"managedObject": {"id": child}},
        **kw,
    )


async def removed(pool: asyncpg.Pool, gateway: str) -> list[tuple[str, str | None, str]]:
    rows = await pool.fetch(
        "SELECT device_id, removed_by, how FROM removed_child WHERE gateway_id = $1"
        " ORDER BY device_id",
        int(gateway),
    )
    return [(r["device_id"], r["removed_by"], r["how"]) for r in rows]


async def test_attach_list_detach_and_attach_to_another_gateway(world: WholeApi) -> None:
    api = world.client
    gw1, gw2, child = [await device(api, s) for s in ("gw-1", "gw-2", "child-1")]
    attached = await attach(api, gw1, child, headers={"Content-Type": REFERENCE})
    assert attached.status_code == 201
    assert attached.headers["content-type"].startswith(REFERENCE)
    body = attached.json()
    assert body["self"] == f"{MO}/{gw1}/childDevices/{child}"
    assert (body["managedObject"]["id"], body["managedObject"]["name"]) == (child, "child-1")
    assert world.fakes.broker.lines[-1] == control.child("child-1", "gw-1")  # no own login
    again = await attach(api, gw1, child)
    assert (again.status_code, again.json()) == (201, body)  # nothing changes

    listed = await api.get(f"/inventory/managedObjects/{gw1}/childDevices", auth=READER)
    assert listed.headers["content-type"].startswith(REFERENCES)
    assert [r["managedObject"]["id"] for r in listed.json()["references"]] == [child]
    one = await api.get(f"/inventory/managedObjects/{gw1}/childDevices/{child}", auth=READER)
    assert (one.status_code, one.json()) == (200, body)

    taken = await attach(api, gw2, child)
    assert taken.status_code == 409
    assert taken.json()["error"] == "inventory/Conflict"
    message = taken.json()["message"]
    assert f"already a child device of gateway {gw1} (device gw-1)" in message
    assert f"Managed object {child} (device child-1)" in message

    detached = await api.delete(f"/inventory/managedObjects/{gw1}/childDevices/{child}", auth=ADMIN)
    assert detached.status_code == 204
    assert (await api.get(f"/inventory/managedObjects/{child}", auth=ADMIN)).status_code == 200
    gone = await api.get(f"/inventory/managedObjects/{gw1}/childDevices/{child}", auth=ADMIN)
    assert (gone.status_code, gone.json()["error"]) == (404, "inventory/Not Found")
    assert await removed(world.pool, gw1) == [("child-1", "admin", "detached")]
    assert world.fakes.broker.lines[-1] == control.child_remove("child-1")
    shown = (await api.get(f"/inventory/managedObjects/{child}", auth=ADMIN)).json()
    assert shown["fleetgate_Connection"]["reason"] == "detached from gateway gw-1"
    again_gone = await api.delete(
        f"/inventory/managedObjects/{gw1}/childDevices/{child}", auth=ADMIN
    )
    assert again_gone.status_code == 404

    assert (await attach(api, gw2, child)).status_code == 201
    assert await removed(world.pool, gw2) == []
    await api.delete(f"/inventory/managedObjects/{gw2}/childDevices/{child}", auth=ADMIN)
    assert (await attach(api, gw1, child)).status_code == 201  # back: no longer removed
    assert await removed(world.pool, gw1) == []
    assert await removed(world.pool, gw2) == [("child-1", "admin", "detached")]


async def test_two_gateways_racing_for_one_child_end_in_one_409(world: WholeApi) -> None:
    api = world.client
    child = await device(api, "child-1")
    for round_ in range(5):
        gateways = [await device(api, f"gw-{round_}-{i}") for i in range(4)]
        answers = await asyncio.gather(*(attach(api, g, child) for g in gateways))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409, 409], [a.text for a in answers]
        [winner] = [g for g, a in zip(gateways, answers, strict=True) if a.status_code == 201]
        for answer in answers:
            if answer.status_code == 409:
                assert f"gateway {winner} (device " in answer.json()["message"]
        await api.delete(f"/inventory/managedObjects/{winner}/childDevices/{child}", auth=ADMIN)


async def test_a_reference_made_by_another_writer_meanwhile_is_the_same_409(
    world: WholeApi, pool: asyncpg.Pool
) -> None:
    """The unique index has the last word: a writer that did not lock (here plain SQL,
    committed while our attachment waits on the index) makes it a 409, never a 500."""
    api = world.client
    gw1, gw2, child = [await device(api, s) for s in ("gw-1", "gw-2", "child-1")]
    async with pool.acquire() as other:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO managed_object_child (parent_id, kind, child_id)"
            " VALUES ($1, 'childDevices', $2)",
            int(gw1),
            int(child),
        )
        racing = asyncio.create_task(attach(api, gw2, child))
        await asyncio.sleep(0.5)  # our attachment now waits for the index entry
        assert not racing.done()
        await tx.commit()
        answer = await racing
    assert answer.status_code == 409, answer.text
    assert f"already a child device of gateway {gw1} (device gw-1)" in answer.json()["message"]


async def test_only_devices_that_connect_and_only_one_level(world: WholeApi) -> None:
    api = world.client
    gw, child, grandchild = [await device(api, s) for s in ("gw", "child", "grandchild")]
    no_serial = await device(api, None)
    plain = (await api.post("/inventory/managedObjects", json={"name": "p"}, auth=ADMIN)).json()
    cases = [
        (gw, no_serial, "cannot be a child device: it is not a device that connects"),
        (no_serial, child, "cannot be a gateway: it is not a device that connects"),
        (gw, plain["id"], "it is not a device that connects"),
        (gw, gw, "cannot be its own child device"),
    ]
    for gateway, kid, message in cases:
        refused = await attach(api, gateway, kid)
        assert refused.status_code == 422, refused.text
        assert message in refused.json()["message"]
    assert (await attach(api, gw, child)).status_code == 201
    as_gateway = await attach(api, child, grandchild)
    assert as_gateway.status_code == 422
    assert (
        f"is a child device of gateway {gw}, so it cannot be a gateway"
        in (as_gateway.json()["message"])
    )
    as_child = await attach(api, grandchild, gw)
    assert as_child.status_code == 422
    assert (
        "is a gateway with 1 child device(s), so it cannot be a child device"
        in (as_child.json()["message"])
    )
    assert "one level of gateways" in as_child.json()["message"]


async def test_the_tree_stays_in_its_tenant_and_needs_its_roles(world: WholeApi) -> None:
    api = world.client
    gw, child = await device(api, "gw"), await device(api, "child")
    theirs = await device(api, "theirs", auth=("t2/admin", "admin-pw"))
    for gateway, kid in ((gw, theirs), (theirs, child), (gw, "999999")):
        refused = await attach(api, gateway, kid)
        assert (refused.status_code, refused.json()["error"]) == (404, "inventory/Not Found")
    assert (await attach(api, gw, child, auth=READER)).status_code == 403
    assert (await attach(api, gw, child)).status_code == 201
    t2 = ("t2/admin", "admin-pw")
    assert (
        await api.get(f"/inventory/managedObjects/{gw}/childDevices", auth=t2)
    ).status_code == 404
    detach = f"/inventory/managedObjects/{gw}/childDevices/{child}"
    assert (await api.delete(detach, auth=READER)).status_code == 403
    assert (await api.delete(detach, auth=t2)).status_code == 404
    assert (await api.delete(detach, auth=ADMIN)).status_code == 204


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"managedObject": {"id": "abc"}}', "application/json"),
        (b'{"managedObject": {"id": "99999999999999999999"}}', "application/json"),
        (b'{"managedObject": {"id": true}}', "application/json"),
        (b'{"managedObject": {}}', REFERENCE),
        (b'{"managedObject": "5"}', "application/json"),
        (b'{"name": "new child", "c8y_IsDevice": {}}', "application/json"),
        (b'{"name": "new child"}', "application/vnd.com.nsn.cumulocity.managedObject+json"),
        (b"[]", "application/json"),
    ],
)
async def test_bad_attachments_are_422_with_cumulocitys_error_body(
    world: WholeApi, body: bytes, content_type: str
) -> None:
    gw = await device(world.client, "gw")
    answer = await world.client.post(
        f"/inventory/managedObjects/{gw}/childDevices",
        content=body,
        headers={"Content-Type": content_type},
        auth=ADMIN,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "general/validationError"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/inventory/managedObjects/x/childDevices"),
        ("GET", "/inventory/managedObjects/1/childDevices/0"),
        ("GET", "/inventory/managedObjects/1/childDevices?pageSize=2001"),
        ("DELETE", "/inventory/managedObjects/1/childDevices/%C2%B3"),
        ("GET", "/inventory/managedObjects/1/childAssets/99999999999999999999"),
    ],
)
async def test_bad_ids_are_422(world: WholeApi, method: str, path: str) -> None:
    answer = await world.client.request(method, path, auth=ADMIN)
    assert answer.status_code == 422, answer.text


async def test_operators_set_a_gateways_child_auto_registration(world: WholeApi) -> None:
    api = world.client
    gw = await device(api, "gw")
    url = f"/inventory/managedObjects/{gw}"
    off = {"fleetgate_Gateway": {"childAutoRegistration": False}}
    put = await api.put(url, json=off, auth=ADMIN)
    assert (put.status_code, put.json()["fleetgate_Gateway"]) == (200, off["fleetgate_Gateway"])
    for bad in ({"childAutoRegistration": "false"}, {}, [], {"childAutoRegistration": None}):
        refused = await api.put(url, json={"fleetgate_Gateway": bad}, auth=ADMIN)
        assert refused.status_code == 422, bad
        assert "fleetgate_Gateway must be" in refused.json()["message"]
    shown = (await api.get(url, auth=ADMIN)).json()
    assert shown["fleetgate_Gateway"] == {"childAutoRegistration": False}
    removed_setting = await api.put(url, json={"fleetgate_Gateway": None}, auth=ADMIN)
    assert "fleetgate_Gateway" not in removed_setting.json()


async def test_gateways_list_their_children_and_children_their_gateway(world: WholeApi) -> None:
    api = world.client
    gw, c1, c2 = [await device(api, s) for s in ("gw", "c1", "c2")]
    for child in (c2, c1):
        await attach(api, gw, child)
    shown = (await api.get(f"/inventory/managedObjects/{gw}", auth=READER)).json()
    assert shown["childDevices"]["self"] == f"{MO}/{gw}/childDevices"
    assert shown["childDevices"]["references"] == [
        {
            "managedObject": {"id": kid, "name": name, "self": f"{MO}/{kid}"},
            "self": f"{MO}/{gw}/childDevices/{kid}",
        }
        for kid, name in ((c1, "c1"), (c2, "c2"))
    ]
    assert shown["deviceParents"]["references"] == []
    child = (await api.get(f"/inventory/managedObjects/{c1}", auth=READER)).json()
    assert child["deviceParents"]["references"] == [
        {
            "managedObject": {"id": gw, "name": "gw", "self": f"{MO}/{gw}"},
            "self": f"{MO}/{gw}/childDevices/{c1}",
        }
    ]
    lean = await api.get(f"/inventory/managedObjects/{gw}?withChildren=false", auth=READER)
    assert "childDevices" not in lean.json()
    assert "deviceParents" in lean.json()
    nameless = await api.get(f"/inventory/managedObjects/{gw}?skipChildrenNames=true", auth=READER)
    assert "name" not in nameless.json()["childDevices"]["references"][0]["managedObject"]

    # Lists show the same, read for the whole page in one more query.
    page = (await api.get("/inventory/managedObjects?pageSize=10", auth=READER)).json()
    by_id = {o["id"]: o for o in page["managedObjects"]}
    assert by_id[gw]["childDevices"] == shown["childDevices"]
    assert by_id[c1]["deviceParents"] == child["deviceParents"]


async def test_device_lists_find_gateways_and_the_children_of_one(world: WholeApi) -> None:
    api = world.client
    gw1, gw2 = await device(api, "gw-1"), await device(api, "gw-2")
    c1, c2, c3, alone = [await device(api, s) for s in ("c1", "c2", "c3", "alone")]
    for gateway, child in ((gw1, c1), (gw1, c2), (gw2, c3)):
        await attach(api, gateway, child)

    async def ids(query: str) -> list[str]:
        answer = await api.get(f"/inventory/managedObjects?pageSize=100&{query}", auth=READER)
        assert answer.status_code == 200, answer.text
        return [o["id"] for o in answer.json()["managedObjects"]]

    assert await ids("hasChildDevices=true") == [gw1, gw2]
    assert await ids("hasChildDevices=false&fragmentType=c8y_IsDevice") == [c1, c2, c3, alone]
    assert await ids(f"deviceParentId={gw1}") == [c1, c2]
    assert await ids(f"deviceParentId={gw1}&withTotalPages=true&pageSize=1") == [c1]
    assert await ids(f"childDeviceId={c3}") == [gw2]  # Cumulocity's: the child's parent
    assert await ids("onlyRoots=true") == [gw1, gw2, alone]
    counted = await api.get(
        f"/inventory/managedObjects?deviceParentId={gw1}&withTotalPages=true", auth=READER
    )
    assert counted.json()["statistics"]["totalElements"] == 2
    for bad in (
        "deviceParentId=x",
        "childDeviceId=0",
        "childAssetId=-1",
        "hasChildDevices=maybe",
        "onlyRoots=2",
        "withChildren=nope",
        "skipChildrenNames=",
    ):
        refused = await api.get(f"/inventory/managedObjects?{bad}", auth=READER)
        assert refused.status_code == 422, bad
        assert refused.json()["error"] == "general/validationError"


async def test_deleting_a_gateway_with_and_without_cascade(world: WholeApi) -> None:
    api = world.client
    gw, c1, c2 = [await device(api, s) for s in ("gw", "c1", "c2")]
    for child in (c1, c2):
        await attach(api, gw, child)
    world.fakes.broker.lines.clear()
    assert (await api.delete(f"/inventory/managedObjects/{gw}", auth=ADMIN)).status_code == 204
    assert control.child_remove("c1") in world.fakes.broker.lines
    assert control.child_remove("c2") in world.fakes.broker.lines
    for child, serial in ((c1, "c1"), (c2, "c2")):
        shown = (await api.get(f"/inventory/managedObjects/{child}", auth=ADMIN)).json()
        assert shown["deviceParents"]["references"] == []
        assert shown["fleetgate_Connection"]["reason"] == "detached from gateway gw"
        ext = await api.get(f"/identity/externalIds/c8y_Serial/{serial}", auth=ADMIN)
        assert ext.status_code == 200

    gw2 = await device(api, "gw-2")
    for child in (c1, c2):
        assert (await attach(api, gw2, child)).status_code == 201
    world.fakes.broker.discarded.clear()
    gone = await api.delete(
        f"/inventory/managedObjects/{gw2}?cascade=true&withDeviceUser=true", auth=ADMIN
    )
    assert gone.status_code == 204
    for object_id in (gw2, c1, c2):
        assert (
            await api.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)
        ).status_code == 404
    for serial in ("gw-2", "c1", "c2"):
        ext = await api.get(f"/identity/externalIds/c8y_Serial/{serial}", auth=ADMIN)
        assert ext.status_code == 404
    assert sorted(world.fakes.broker.discarded) == ["c1", "c2", "gw-2"]
    assert await world.pool.fetchval("SELECT count(*) FROM removed_child") == 0


async def test_a_deleted_child_is_remembered_by_its_gateway(world: WholeApi) -> None:
    api = world.client
    gw, c1, c2 = [await device(api, s) for s in ("gw", "c1", "c2")]
    for child in (c1, c2):
        await attach(api, gw, child)
    assert (await api.delete(f"/inventory/managedObjects/{c1}", auth=ADMIN)).status_code == 204
    deleted = await api.delete(f"/inventory/managedObjects/{c2}?cascade=true", auth=ADMIN)
    assert deleted.status_code == 204
    assert await removed(world.pool, gw) == [("c1", "admin", "deleted"), ("c2", "admin", "deleted")]
    children = (await api.get(f"/inventory/managedObjects/{gw}/childDevices", auth=ADMIN)).json()
    assert children["references"] == []
    # The same id as a new device attached again: the gateway may speak for it again.
    again = await device(api, "c1")
    assert (await attach(api, gw, again)).status_code == 201
    assert await removed(world.pool, gw) == [("c2", "admin", "deleted")]


@pytest.mark.parametrize("query", ["cascade=maybe", "forceCascade=2", "withDeviceUser=x"])
async def test_bad_deletion_parameters_are_422(world: WholeApi, query: str) -> None:
    gw = await device(world.client, "gw")
    answer = await world.client.delete(f"/inventory/managedObjects/{gw}?{query}", auth=ADMIN)
    assert answer.status_code == 422
    assert (
        await world.client.get(f"/inventory/managedObjects/{gw}", auth=ADMIN)
    ).status_code == 200
