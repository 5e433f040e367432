"""Operator users over REST against PostgreSQL: create, update, delete, role references
as Cumulocity's clients send them, a watcher who can watch and not change, the lockout
after failed logins and an admin's unlock, and bad input a 4xx with Cumulocity's body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from fleetgate.api.auth import ApiContext
from fleetgate.db.users import PgUsers
from fleetgate.domain.users import Role
from fleetgate.services.auth import Authenticator

from conftest import TEST_BASE_URL
from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration

USERS = "/user/t1/users"
USER = "application/vnd.com.nsn.cumulocity.user+json"
ROLE_REF = "application/vnd.com.nsn.cumulocity.roleReference+json"
ERROR = "application/vnd.com.nsn.cumulocity.error+json"
WATCHER = ("t1/watcher", "watch-it-pw")


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


def role_ref(role: str) -> dict[str, object]:
    """What Cumulocity's clients post: the role by its ``self``."""
    return {"role": {"self": f"{TEST_BASE_URL}/user/roles/{role}"}}


async def make_watcher(client: httpx.AsyncClient) -> None:
    created = await client.post(
        USERS,
        auth=ADMIN,
        json={"userName": "watcher", "password": WATCHER[1], "email": "w@example.com"},
        headers={"Content-Type": USER, "Accept": USER},
    )
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(USER)
    assert created.headers["location"] == f"{TEST_BASE_URL}{USERS}/watcher"
    body = created.json()
    assert (body["userName"], body["email"], body["enabled"]) == ("watcher", "w@example.com", True)
    assert body["effectiveRoles"] == []
    assert "password" not in body
    ref = await client.post(
        f"{USERS}/watcher/roles",
        auth=ADMIN,
        json=role_ref("ROLE_DEVICE_CONTROL_READ"),
        headers={"Content-Type": ROLE_REF},
    )
    assert ref.status_code == 201, ref.text
    assert ref.headers["content-type"].startswith(ROLE_REF)
    assert ref.json() == {
        "role": {
            "id": "ROLE_DEVICE_CONTROL_READ",
            "name": "ROLE_DEVICE_CONTROL_READ",
            "self": f"{TEST_BASE_URL}/user/roles/ROLE_DEVICE_CONTROL_READ",
        },
        "self": f"{TEST_BASE_URL}{USERS}/watcher/roles/ROLE_DEVICE_CONTROL_READ",
    }


async def test_a_watcher_reads_operations_and_cannot_change_anything(api: WholeApi) -> None:
    client = api.client
    await make_watcher(client)
    assert (await client.get("/devicecontrol/operations", auth=WATCHER)).status_code == 200
    refused = [
        await client.post("/devicecontrol/operations", auth=WATCHER, json={"deviceId": "1"}),
        await client.put("/devicecontrol/operations/1", auth=WATCHER, json={"status": "FAILED"}),
        await client.post(USERS, auth=WATCHER, json={"userName": "x", "password": "12345678"}),
        await client.post(
            f"{USERS}/watcher/roles", auth=WATCHER, json=role_ref("ROLE_TENANT_ADMIN")
        ),
        await client.get(USERS, auth=WATCHER),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.json()["error"] == "security/Forbidden" for r in refused)
    roles = await client.get(f"{USERS}/watcher/roles", auth=ADMIN)
    assert [ref["role"]["id"] for ref in roles.json()["references"]] == ["ROLE_DEVICE_CONTROL_READ"]
    me = await client.get("/user/currentUser", auth=WATCHER)
    assert me.status_code == 403  # it was given no ROLE_USER_MANAGEMENT_OWN_READ


async def test_operators_are_listed_apart_from_device_users(
    api: WholeApi, pool: asyncpg.Pool
) -> None:
    await make_watcher(api.client)
    await PgUsers(pool).ensure_user("t1", "device_d1", "x", [Role.DEVICE])
    listed = await api.client.get(USERS, auth=ADMIN)
    names = {u["userName"] for u in listed.json()["users"]}
    assert names == {"admin", "devicebootstrap", "watcher"}
    devices = await api.client.get(f"{USERS}?onlyDevices=true", auth=ADMIN)
    assert [u["userName"] for u in devices.json()["users"]] == ["device_d1"]
    # A device user's password and roles are the device flows' to change.
    refused = await api.client.put(
        f"{USERS}/device_d1", auth=ADMIN, json={"password": "a-new-password"}
    )
    assert refused.status_code == 422
    role = await api.client.post(
        f"{USERS}/device_d1/roles", auth=ADMIN, json=role_ref("ROLE_INVENTORY_READ")
    )
    assert role.status_code == 422


async def test_update_and_delete(api: WholeApi) -> None:
    client = api.client
    await make_watcher(client)
    changed = await client.put(
        f"{USERS}/watcher",
        auth=ADMIN,
        json={"password": "a-new-password", "firstName": "Wanda", "email": None},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["firstName"] == "Wanda"
    assert "email" not in body
    assert (await client.get("/devicecontrol/operations", auth=WATCHER)).status_code == 401
    new = ("t1/watcher", "a-new-password")
    assert (await client.get("/devicecontrol/operations", auth=new)).status_code == 200
    off = await client.put(f"{USERS}/watcher", auth=ADMIN, json={"enabled": False})
    assert off.json()["enabled"] is False
    assert (await client.get("/devicecontrol/operations", auth=new)).status_code == 401
    assert (await client.delete(f"{USERS}/watcher", auth=ADMIN)).status_code == 204
    assert (await client.get(f"{USERS}/watcher", auth=ADMIN)).status_code == 404


async def test_the_last_admin_role_of_oneself_stays(api: WholeApi) -> None:
    client = api.client
    gone = await client.delete(f"{USERS}/admin/roles/ROLE_TENANT_ADMIN", auth=ADMIN)
    assert gone.status_code == 204
    kept = await client.delete(f"{USERS}/admin/roles/ROLE_USER_MANAGEMENT_ADMIN", auth=ADMIN)
    assert kept.status_code == 422
    assert "last user administration role" in kept.json()["message"]


async def test_a_duplicate_is_409(api: WholeApi) -> None:
    await make_watcher(api.client)
    again = await api.client.post(
        USERS, auth=ADMIN, json={"userName": "watcher", "password": "another-pw"}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "user/Duplicate"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", USERS, {"userName": "a/b", "password": "long-enough"}),
        ("POST", USERS, {"userName": "a:b", "password": "long-enough"}),
        ("POST", USERS, {"userName": "x" * 1001, "password": "long-enough"}),
        ("POST", USERS, {"userName": "a\u0000b", "password": "long-enough"}),
        ("POST", USERS, {"userName": "device_99", "password": "long-enough"}),
        ("POST", USERS, {"userName": "ok", "password": "short"}),
        ("POST", USERS, {"userName": "ok", "password": 12345678}),
        ("POST", USERS, {"userName": "ok"}),
        ("POST", USERS, {"userName": "ok", "password": "long-enough", "enabled": "yes"}),
        ("POST", USERS, {"userName": "ok", "password": "long-enough", "email": 5}),
        ("POST", USERS, ["not", "an", "object"]),
        ("PUT", f"{USERS}/admin", {"userName": "renamed"}),
        ("PUT", f"{USERS}/admin", {"enabled": False}),
        ("POST", f"{USERS}/admin/roles", {"role": {"self": "http://x/user/roles/ROLE_NOPE"}}),
        ("POST", f"{USERS}/admin/roles", {"role": "ROLE_INVENTORY_READ"}),
        ("POST", f"{USERS}/admin/roles", {"role": {"id": "ROLE_DEVICE"}}),
        ("POST", f"{USERS}/admin/roles", {"role": {"id": "ROLE_TENANT_MANAGEMENT_ADMIN"}}),
    ],
)
async def test_bad_input_is_a_4xx_with_cumulocitys_body(
    api: WholeApi, method: str, path: str, body: object
) -> None:
    response = await api.client.request(method, path, auth=ADMIN, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(ERROR)
    assert set(response.json()) >= {"error", "message"}


async def test_missing_users_and_roles_are_404(api: WholeApi) -> None:
    client = api.client
    for response in (
        await client.put(f"{USERS}/ghost", auth=ADMIN, json={"enabled": True}),
        await client.post(f"{USERS}/ghost/roles", auth=ADMIN, json=role_ref("ROLE_INVENTORY_READ")),
        await client.delete(f"{USERS}/admin/roles/ROLE_NOPE", auth=ADMIN),
        await client.get("/user/roles/ROLE_NOPE", auth=ADMIN),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "user/Not Found"
    roles = await client.get("/user/roles?pageSize=100", auth=ADMIN)
    assert "ROLE_DEVICE_CONTROL_READ" in [r["id"] for r in roles.json()["roles"]]


async def test_failed_logins_lock_the_account_until_an_admin_enables_it(
    api: WholeApi, pool: asyncpg.Pool
) -> None:
    client = api.client
    await make_watcher(client)
    counting = Authenticator(PgUsers(pool))
    api.app.state.context = ApiContext(counting, TEST_BASE_URL)
    wrong = ("t1/watcher", "not-the-password")
    for _ in range(5):
        assert (await client.get("/devicecontrol/operations", auth=wrong)).status_code == 401
    hashes = counting.hashes
    locked = await client.get("/devicecontrol/operations", auth=WATCHER)
    assert locked.status_code == 401
    assert "locked after too many failed logins" in locked.json()["message"]
    # A flood of guesses against the locked account costs no scrypt at all.
    await asyncio.gather(*(client.get("/devicecontrol/operations", auth=wrong) for _ in range(20)))
    assert counting.hashes == hashes
    shown = (await client.get(f"{USERS}/watcher", auth=ADMIN)).json()
    assert "fleetgate_lockedUntil" in shown
    row = await pool.fetchrow(
        "SELECT failed_logins, locked_until > now() AS locked FROM app_user"
        " WHERE tenant_id = 't1' AND username = 'watcher'"
    )
    assert (row["failed_logins"], row["locked"]) == (5, True)
    unlocked = await client.put(f"{USERS}/watcher", auth=ADMIN, json={"enabled": True})
    assert unlocked.status_code == 200
    assert "fleetgate_lockedUntil" not in unlocked.json()
    assert (await client.get("/devicecontrol/operations", auth=WATCHER)).status_code == 200


async def test_failures_counted_by_two_instances_add_up(api: WholeApi, pool: asyncpg.Pool) -> None:
    """Two service instances (two authenticators) share one count in PostgreSQL."""
    from fleetgate.domain.errors import AuthenticationFailed
    from fleetgate.domain.users import Login

    await make_watcher(api.client)
    one, two = Authenticator(PgUsers(pool)), Authenticator(PgUsers(pool))

    async def fail(auth: Authenticator) -> None:
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate(Login("t1", "watcher", "wrong-password"))

    await asyncio.gather(*(fail(a) for a in (one, two, one, two, one)))
    with pytest.raises(AuthenticationFailed, match="locked"):
        await two.authenticate(Login("t1", "watcher", WATCHER[1]))


async def test_removing_both_own_admin_roles_at_once_leaves_one(api: WholeApi) -> None:
    client = api.client
    answers = await asyncio.gather(
        client.delete(f"{USERS}/admin/roles/ROLE_TENANT_ADMIN", auth=ADMIN),
        client.delete(f"{USERS}/admin/roles/ROLE_USER_MANAGEMENT_ADMIN", auth=ADMIN),
    )
    assert sorted(a.status_code for a in answers) == [204, 422]
    assert (await client.get(USERS, auth=ADMIN)).status_code == 200


async def test_enabling_a_device_user_also_unlocks_it(api: WholeApi, pool: asyncpg.Pool) -> None:
    await PgUsers(pool).ensure_user("t1", "device_d1", "x", [Role.DEVICE])
    await pool.execute(
        "UPDATE app_user SET failed_logins = 5, locked_until = now() + interval '1 hour'"
        " WHERE username = 'device_d1'"
    )
    assert (
        "fleetgate_lockedUntil" in (await api.client.get(f"{USERS}/device_d1", auth=ADMIN)).json()
    )
    enabled = await api.client.put(f"{USERS}/device_d1", auth=ADMIN, json={"enabled": True})
    assert enabled.status_code == 200
    assert "fleetgate_lockedUntil" not in enabled.json()
    row = await pool.fetchrow(
        "SELECT failed_logins, locked_until FROM app_user WHERE username = 'device_d1'"
    )
    assert (row["failed_logins"], row["locked_until"]) == (0, None)
