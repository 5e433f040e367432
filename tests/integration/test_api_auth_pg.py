"""The REST API's authentication against the real user store in PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from conftest import TEST_BASE_URL, api_client, seed_tenants

pytestmark = pytest.mark.integration

BASE = TEST_BASE_URL
ERROR_TYPE = "application/vnd.com.nsn.cumulocity.error+json"


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t7")
    async with api_client(pool) as (_, c):
        yield c


async def test_current_user_answers_as_cumulocity(client: httpx.AsyncClient) -> None:
    response = await client.get("/user/currentUser", auth=("t7/admin", "admin-pw"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.currentUser+json"
    )
    body = response.json()
    assert body["userName"] == body["id"] == "admin"
    assert body["self"] == f"{BASE}/user/currentUser"
    roles = {r["id"] for r in body["effectiveRoles"]}
    assert {"ROLE_DEVICE_CONTROL_ADMIN", "ROLE_DEVICE_CONTROL_READ"} <= roles
    assert "ROLE_DEVICE_BOOTSTRAP" not in roles
    assert all(r["name"] == r["id"] for r in body["effectiveRoles"])


async def test_current_tenant_names_the_callers_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get("/tenant/currentTenant", auth=("t7/admin", "admin-pw"))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "t7"
    assert body["allowCreateTenants"] is False
    management = await client.get("/tenant/currentTenant", auth=("management/admin", "mgmt-pw"))
    assert management.json()["name"] == "management"
    assert management.json()["allowCreateTenants"] is True


@pytest.mark.parametrize(
    "auth",
    [
        ("t7/admin", "wrong"),
        ("t7/ghost", "admin-pw"),
        ("t8/admin", "admin-pw"),
        ("management/admin", "admin-pw"),
    ],
)
async def test_wrong_credentials_get_401_with_cumulocitys_error_body(
    client: httpx.AsyncClient, auth: tuple[str, str]
) -> None:
    response = await client.get("/user/currentUser", auth=auth)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(ERROR_TYPE)
    assert response.headers["www-authenticate"].startswith("Basic")
    body = response.json()
    assert body["error"] == "security/Unauthorized"
    assert body["message"] == "Invalid credentials! : Bad credentials"
    assert set(body) == {"error", "message", "info"}


async def test_no_credentials_and_no_tenant_are_401_with_a_reason(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/user/currentUser")
    assert missing.status_code == 401
    assert "authentication is required" in missing.json()["message"]
    no_tenant = await client.get("/user/currentUser", auth=("admin", "admin-pw"))
    assert no_tenant.status_code == 401
    assert "<tenant>/<username>" in no_tenant.json()["message"]


async def test_the_bootstrap_account_can_do_nothing_else(client: httpx.AsyncClient) -> None:
    for path in ("/user/currentUser", "/tenant/currentTenant"):
        response = await client.get(path, auth=("t7/devicebootstrap", "boot-pw"))
        assert response.status_code == 403
        assert response.json()["error"] == "security/Forbidden"


async def test_a_disabled_user_is_locked_out_at_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    assert (await client.get("/user/currentUser", auth=("t7/admin", "admin-pw"))).status_code == 200
    await pool.execute("UPDATE app_user SET enabled = false WHERE username = 'admin'")
    response = await client.get("/user/currentUser", auth=("t7/admin", "admin-pw"))
    assert response.status_code == 401
    assert "locked" in response.json()["message"]


async def test_passwords_are_stored_as_memory_hard_hashes(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    rows = await pool.fetch("SELECT password_hash FROM app_user")
    assert rows
    for row in rows:
        assert row["password_hash"].startswith("scrypt:14:8:1:")
        assert "admin-pw" not in row["password_hash"]


async def test_unknown_paths_answer_in_cumulocitys_error_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing", auth=("t7/admin", "admin-pw"))
    assert response.status_code == 404
    assert response.json()["error"] == "general/notFound"
