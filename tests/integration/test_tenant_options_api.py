"""``/tenant/options`` against PostgreSQL: Cumulocity's shapes, media types and roles,
fleetgate's own option checked, other categories stored as given, bad input a 4xx."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.migrations import MIGRATIONS_DIR, migrate
from fleetgate.db.tenant_options import PgTenantOptions
from fleetgate.db.users import PgUsers
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role
from fleetgate.services.tenant_options import TenantOptions

from conftest import TEST_BASE_URL, api_client, seed_tenants

pytestmark = pytest.mark.integration

ADMIN = ("t1/admin", "admin-pw")
READER = ("t1/reader", "reader-pw")
OPTION = "application/vnd.com.nsn.cumulocity.option+json"
GATEWAYS = "/tenant/options/fleetgate.gateways/childAutoRegistration"


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    await seed_tenants(pool, "t1", "t2")
    await PgUsers(pool).ensure_user(
        "t1", "reader", hash_password("reader-pw", log2_n=4), [Role.OPTION_MANAGEMENT_READ]
    )
    async with api_client(pool) as (app, client):
        services_of(app).tenant_options = TenantOptions(PgTenantOptions(pool))
        yield client


async def test_an_option_is_created_read_listed_updated_and_deleted(
    api: httpx.AsyncClient,
) -> None:
    body = {"category": "alarm.type.mapping", "key": "temp_too_high", "value": "CRITICAL|hot"}
    created = await api.post(
        "/tenant/options", json=body, auth=ADMIN, headers={"Content-Type": OPTION}
    )
    assert created.status_code == 200  # Cumulocity's answer to a POST here
    assert created.headers["content-type"].startswith(OPTION)
    self_url = f"{TEST_BASE_URL}/tenant/options/alarm.type.mapping/temp_too_high"
    assert created.json() == {**body, "self": self_url}
    shown = await api.get("/tenant/options/alarm.type.mapping/temp_too_high", auth=READER)
    assert (shown.status_code, shown.json()) == (200, created.json())

    await api.post("/tenant/options", json={**body, "key": "cold"}, auth=ADMIN)
    listed = await api.get("/tenant/options?pageSize=1&withTotalPages=true", auth=READER)
    assert listed.headers["content-type"].startswith(
        "application/vnd.com.nsn.cumulocity.optionCollection+json"
    )
    page = listed.json()
    assert [o["key"] for o in page["options"]] == ["cold"]
    assert page["statistics"]["totalElements"] == 2
    assert page["next"].endswith("currentPage=2")
    category = await api.get("/tenant/options/alarm.type.mapping", auth=READER)
    assert category.json() == {"cold": "CRITICAL|hot", "temp_too_high": "CRITICAL|hot"}

    updated = await api.put(
        "/tenant/options/alarm.type.mapping/cold", json={"value": "MAJOR|cold"}, auth=ADMIN
    )
    assert (updated.status_code, updated.json()["value"]) == (200, "MAJOR|cold")
    again = await api.post("/tenant/options", json={**body, "value": "NONE|x"}, auth=ADMIN)
    assert again.json()["value"] == "NONE|x"  # a POST of an existing option replaces it

    assert (
        await api.delete("/tenant/options/alarm.type.mapping/cold", auth=ADMIN)
    ).status_code == 204
    gone = await api.get("/tenant/options/alarm.type.mapping/cold", auth=ADMIN)
    assert gone.status_code == 404
    assert gone.json()["error"] == "options/Not Found"
    assert (
        await api.delete("/tenant/options/alarm.type.mapping/cold", auth=ADMIN)
    ).status_code == 404
    missing = await api.put("/tenant/options/a/b", json={"value": "v"}, auth=ADMIN)
    assert missing.status_code == 404


async def test_a_reader_cannot_write_and_options_stay_in_their_tenant(
    api: httpx.AsyncClient,
) -> None:
    body = {"category": "c", "key": "k", "value": "v"}
    assert (await api.post("/tenant/options", json=body, auth=READER)).status_code == 403
    assert (await api.post("/tenant/options", json=body, auth=ADMIN)).status_code == 200
    for method in ("PUT", "DELETE"):
        refused = await api.request(method, "/tenant/options/c/k", json={"value": "x"}, auth=READER)
        assert refused.status_code == 403, method
        assert refused.json()["error"] == "security/Forbidden"
    assert (await api.get("/tenant/options/c/k", auth=("t2/admin", "admin-pw"))).status_code == 404
    assert (await api.get("/tenant/options", auth=("t2/admin", "admin-pw"))).json()["options"] == []
    bootstrap = ("t1/devicebootstrap", "boot-pw")
    assert (await api.get("/tenant/options", auth=bootstrap)).status_code == 403
    assert (await api.get("/tenant/options")).status_code == 401


async def test_the_gateway_option_takes_only_true_or_false(api: httpx.AsyncClient) -> None:
    option = {"category": "fleetgate.gateways", "key": "childAutoRegistration"}
    for value in ("yes", "FALSE", "", True, 0):
        refused = await api.post("/tenant/options", json={**option, "value": value}, auth=ADMIN)
        assert refused.status_code == 422, value
        assert refused.json()["error"] == "general/validationError"
    stored = await api.post("/tenant/options", json={**option, "value": "false"}, auth=ADMIN)
    assert stored.json()["value"] == "false"
    assert (await api.put(GATEWAYS, json={"value": "maybe"}, auth=ADMIN)).status_code == 422
    assert (await api.put(GATEWAYS, json={"value": "true"}, auth=ADMIN)).json()["value"] == "true"
    unknown = {"category": "fleetgate.gateways", "key": "childAutoRegistratoin", "value": "true"}
    misspelt = await api.post("/tenant/options", json=unknown, auth=ADMIN)
    assert misspelt.status_code == 422
    assert "childAutoRegistration" in misspelt.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/tenant/options", b"", 400),
        ("POST", "/tenant/options", b"[1]", 422),
        ("POST", "/tenant/options", b'{"category": "c", "key": "k"}', 422),
        ("POST", "/tenant/options", b'{"category": "c\\u0000", "key": "k", "value": "v"}', 422),
        ("POST", "/tenant/options", b'{"category": "a/b", "key": "k", "value": "v"}', 422),
        ("POST", "/tenant/options", b'{"category": "c", "key": "k", "value": NaN}', 400),
        ("PUT", "/tenant/options/c/k", b'{"value": "v", "category": "d"}', 422),
        ("PUT", "/tenant/options/c/k", b'{"value": 1}', 422),
        ("GET", "/tenant/options/c%00/k", b"", 422),
        ("GET", "/tenant/options/" + "x" * 300, b"", 422),
        ("GET", "/tenant/options?pageSize=0", b"", 422),
    ],
)
async def test_bad_requests_are_4xx_with_cumulocitys_error_body(
    api: httpx.AsyncClient, method: str, path: str, body: bytes, status: int
) -> None:
    await api.post("/tenant/options", json={"category": "c", "key": "k", "value": "v"}, auth=ADMIN)
    response = await api.request(
        method, path, content=body, auth=ADMIN, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "message", "info"}


async def test_administrators_seeded_before_the_options_get_their_roles(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Migration 0015 gives the option roles to every user holding ROLE_TENANT_ADMIN."""
    for sql in sorted(MIGRATIONS_DIR.glob("00*.sql")):
        if sql.name < "0015":
            shutil.copy(sql, tmp_path / sql.name)
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn, tmp_path)
        await conn.execute("INSERT INTO tenant (id) VALUES ('t1')")
        await conn.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles) VALUES"
            " ('t1', 'admin', 'x', '{ROLE_TENANT_ADMIN,ROLE_INVENTORY_READ}'),"
            " ('t1', 'reader', 'x', '{ROLE_INVENTORY_READ}')"
        )
        await migrate(conn)
        roles = dict(await conn.fetch("SELECT username, roles FROM app_user ORDER BY username"))
        assert roles == {
            "admin": [
                "ROLE_INVENTORY_READ", "ROLE_OPTION_MANAGEMENT_ADMIN",
                "ROLE_OPTION_MANAGEMENT_READ", "ROLE_TENANT_ADMIN",
            ],
            "reader": ["ROLE_INVENTORY_READ"],
        }  # fmt: skip
    finally:
        await conn.close()
