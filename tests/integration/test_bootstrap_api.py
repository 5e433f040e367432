"""New device requests and device credentials over REST, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.bootstrap import PgRequests
from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import verify_password
from fleetgate.services.bootstrap import Bootstrap

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

BASE = TEST_BASE_URL
ADMIN = ("t1/admin", "admin-pw")
BOOT = ("t1/devicebootstrap", "boot-pw")
PATH = "/devicecontrol/newDeviceRequests"
REQUEST_TYPE = "application/vnd.com.nsn.cumulocity.newDeviceRequest+json"
ACCEPT = {"Accept": REQUEST_TYPE}


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
async def api(pool: asyncpg.Pool, broker: RecordingBroker) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t1")
    async with api_client(pool) as (app, c):
        services_of(app).bootstrap = Bootstrap(PgRequests(pool), broker)
        yield c


async def ask(api: httpx.AsyncClient, device_id: str) -> httpx.Response:
    return await api.post(
        "/devicecontrol/deviceCredentials", json={"id": device_id}, auth=BOOT, headers=ACCEPT
    )


async def test_the_whole_flow_as_the_seed_describes_it(
    api: httpx.AsyncClient, pool: asyncpg.Pool, broker: RecordingBroker
) -> None:
    created = await api.post(PATH, json={"id": "1234"}, auth=ADMIN, headers=ACCEPT)
    assert created.status_code == 201
    assert created.headers["content-type"].startswith(REQUEST_TYPE)
    assert created.json() == {
        "id": "1234",
        "status": "WAITING_FOR_CONNECTION",
        "self": f"{BASE}{PATH}/1234",
    }
    early = await api.put(f"{PATH}/1234", json={"status": "ACCEPTED"}, auth=ADMIN, headers=ACCEPT)
    assert early.status_code == 422
    assert "WAITING_FOR_CONNECTION → ACCEPTED" in early.json()["message"]

    assert (await ask(api, "1234")).status_code == 404
    got = await api.get(f"{PATH}/1234", auth=ADMIN)
    assert got.json()["status"] == "PENDING_ACCEPTANCE"
    assert (await ask(api, "1234")).status_code == 404

    accepted = await api.put(
        f"{PATH}/1234", json={"status": "ACCEPTED"}, auth=ADMIN, headers=ACCEPT
    )
    assert accepted.status_code == 200
    assert accepted.json()["status"] == "ACCEPTED"

    issued = await ask(api, "1234")
    assert issued.status_code == 201
    body = issued.json()
    assert body["id"] == "1234"
    assert body["tenantId"] == "t1"
    assert body["username"] == "device_1234"
    assert len(body["password"]) >= 22  # ≥ 128 bits of randomness, URL-safe base64
    assert body["self"].endswith("/devicecontrol/deviceCredentials/1234")
    stored = await pool.fetchval(
        "SELECT password_hash FROM app_user WHERE tenant_id = 't1' AND username = 'device_1234'"
    )
    assert body["password"] not in stored
    assert verify_password(body["password"], stored)
    assert broker.lines == [
        control.device_account("t1", "1234", stored),
        control.device("1234", "t1", True),
    ]
    # Handed out once: the request is gone.
    assert (await api.get(f"{PATH}/1234", auth=ADMIN)).status_code == 404
    assert (await ask(api, "1234")).status_code == 404
    device = await pool.fetchval(
        "SELECT count(*) FROM external_id WHERE type = 'c8y_Serial' AND value = '1234'"
    )
    assert device == 1


async def test_collection_paging_and_media_type(api: httpx.AsyncClient) -> None:
    for i in range(3):
        await api.post(PATH, json={"id": f"dev-{i}"}, auth=ADMIN, headers=ACCEPT)
    page = await api.get(PATH, params={"pageSize": 2, "withTotalPages": "true"}, auth=ADMIN)
    assert page.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.newDeviceRequestCollection+json"
    )
    body = page.json()
    assert [r["id"] for r in body["newDeviceRequests"]] == ["dev-0", "dev-1"]
    assert body["statistics"]["totalPages"] == 2
    assert "next" in body
    second = (await api.get(body["next"].removeprefix(BASE), auth=ADMIN)).json()
    assert [r["id"] for r in second["newDeviceRequests"]] == ["dev-2"]
    assert "prev" in second


async def test_refusals(api: httpx.AsyncClient) -> None:
    assert (await api.post(PATH, json={"id": "x" * 128}, auth=ADMIN)).status_code == 201
    too_long = await api.post(PATH, json={"id": "x" * 129}, auth=ADMIN)
    assert too_long.status_code == 422
    assert "128" in too_long.json()["message"]
    assert (await api.post(PATH, json={"id": "dup"}, auth=ADMIN)).status_code == 201
    assert (await api.post(PATH, json={"id": "dup"}, auth=ADMIN)).status_code == 409
    assert (await api.post(PATH, json={}, auth=ADMIN)).status_code == 422
    assert (await api.post(PATH, json={"id": "a/b"}, auth=ADMIN)).status_code == 422
    bad_status = await api.put(f"{PATH}/dup", json={"status": "DONE"}, auth=ADMIN)
    assert bad_status.status_code == 422
    assert (
        await api.put(f"{PATH}/nope", json={"status": "ACCEPTED"}, auth=ADMIN)
    ).status_code == 404
    # The bootstrap account can do nothing else; operators cannot ask for credentials.
    assert (await api.get(PATH, auth=BOOT)).status_code == 403
    assert (await api.post(PATH, json={"id": "z"}, auth=BOOT)).status_code == 403
    assert (await api.get("/user/currentUser", auth=BOOT)).status_code == 403
    assert (
        await api.post("/devicecontrol/deviceCredentials", json={"id": "dup"}, auth=ADMIN)
    ).status_code == 403


async def test_without_an_accept_header_post_and_put_answer_with_an_empty_body(
    api: httpx.AsyncClient,
) -> None:
    bare = await api.post(PATH, json={"id": "quiet"}, auth=ADMIN, headers={"Accept": ""})
    assert bare.status_code == 201
    assert bare.content == b""


async def test_delete_answers_200_as_in_the_seed(api: httpx.AsyncClient) -> None:
    await api.post(PATH, json={"id": "gone"}, auth=ADMIN)
    assert (await api.delete(f"{PATH}/gone", auth=ADMIN)).status_code == 200
    assert (await api.get(f"{PATH}/gone", auth=ADMIN)).status_code == 404
    assert (await api.delete(f"{PATH}/gone", auth=ADMIN)).status_code == 404


async def test_two_operators_accepting_at_once_and_two_asks_at_once(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await api.post(PATH, json={"id": "race"}, auth=ADMIN)
    await ask(api, "race")
    accepts = await asyncio.gather(
        *(api.put(f"{PATH}/race", json={"status": "ACCEPTED"}, auth=ADMIN) for _ in range(5))
    )
    assert [r.status_code for r in accepts] == [200] * 5
    asks = await asyncio.gather(*(ask(api, "race") for _ in range(5)))
    assert sorted(r.status_code for r in asks) == [201, 404, 404, 404, 404]
    users = await pool.fetchval("SELECT count(*) FROM app_user WHERE username = 'device_race'")
    assert users == 1
