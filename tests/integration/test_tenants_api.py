"""``/tenant/tenants`` against PostgreSQL: the management tenant's admin creates, lists,
changes, suspends, reactivates and deletes tenants; nobody else may; a suspended tenant's
users get 401 with the reason; a deletion takes everything the tenant owns, its files too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fleetgate.api.auth import ApiContext
from fleetgate.db.users import PgUsers
from fleetgate.services.auth import Authenticator

from conftest import TEST_BASE_URL
from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration

TENANTS = "/tenant/tenants"
TENANT = "application/vnd.com.nsn.cumulocity.tenant+json"
COLLECTION = "application/vnd.com.nsn.cumulocity.tenantCollection+json"
ERROR = "application/vnd.com.nsn.cumulocity.error+json"
MANAGER = ("management/admin", "mgmt-pw")
B_ADMIN = ("acme/boss", "boss-pw-123")
NEW_B = {
    "id": "acme",
    "company": "ACME Corp",
    "domain": "acme.example",
    "adminName": "boss",
    "adminPass": B_ADMIN[1],
    "adminEmail": "boss@acme.example",
    "contactName": "Wile E.",
}


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        # a fresh authenticator per test module state: the cache must not hide a suspension
        whole.app.state.context = ApiContext(Authenticator(PgUsers(pool)), TEST_BASE_URL)
        yield whole


async def create_b(api: WholeApi) -> dict[str, Any]:
    response = await api.client.post(
        TENANTS, json=NEW_B, auth=MANAGER, headers={"Content-Type": TENANT}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_gives_a_tenant_whose_admin_and_bootstrap_user_work(api: WholeApi) -> None:
    client = api.client
    created = await client.post(TENANTS, json=NEW_B, auth=MANAGER)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith(TENANT)
    assert created.headers["location"] == f"{TEST_BASE_URL}{TENANTS}/acme"
    body = created.json()
    assert {k: body[k] for k in ("id", "status", "company", "domain", "adminName")} == {
        "id": "acme",
        "status": "ACTIVE",
        "company": "ACME Corp",
        "domain": "acme.example",
        "adminName": "boss",
    }
    assert "adminPass" not in body
    assert body["allowCreateTenants"] is False
    bootstrap = body["fleetgate_bootstrap"]
    assert bootstrap["userName"] == "devicebootstrap"
    # B's admin works in B, and only B
    me = await client.get("/user/currentUser", auth=B_ADMIN)
    assert me.status_code == 200, me.text
    assert (await client.get("/tenant/currentTenant", auth=B_ADMIN)).json()["name"] == "acme"
    assert (await client.get("/user/acme/users", auth=B_ADMIN)).status_code == 200
    assert (await client.get("/user/t1/users", auth=B_ADMIN)).status_code == 403
    # its bootstrap user authenticates with the password answered once, as a bootstrap user
    boot = ("acme/devicebootstrap", bootstrap["password"])
    assert (await client.get("/devicecontrol/newDeviceRequests", auth=boot)).status_code == 403
    assert (await client.get("/user/currentUser", auth=boot)).status_code == 403
    assert (await client.get("/user/currentUser", auth=(boot[0], "wrong-pw-1"))).status_code == 401
    # the broker learnt the bootstrap account
    assert any(
        line.startswith("account bootstrap acme/devicebootstrap ")
        for line in api.fakes.broker.lines
    )


async def test_list_and_get_in_cumulocitys_shapes(api: WholeApi) -> None:
    await create_b(api)
    listed = await api.client.get(f"{TENANTS}?withTotalPages=true&pageSize=2", auth=MANAGER)
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith(COLLECTION)
    body = listed.json()
    assert [t["id"] for t in body["tenants"]] == ["management", "t1"]
    assert body["statistics"]["totalElements"] == 3
    assert "next" in body
    second = await api.client.get(f"{TENANTS}?pageSize=2&currentPage=2", auth=MANAGER)
    assert [t["id"] for t in second.json()["tenants"]] == ["acme"]
    one = await api.client.get(f"{TENANTS}/acme", auth=MANAGER)
    assert one.headers["content-type"].startswith(TENANT)
    assert one.json()["contactName"] == "Wile E."
    missing = await api.client.get(f"{TENANTS}/nope", auth=MANAGER)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith(ERROR)


async def test_update_changes_what_is_given(api: WholeApi) -> None:
    await create_b(api)
    changed = await api.client.put(
        f"{TENANTS}/acme",
        json={"company": "ACME Ltd", "contactPhone": "+48 123 456 7890", "contactName": None},
        auth=MANAGER,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["company"], body["contactPhone"]) == ("ACME Ltd", "+48 123 456 7890")
    assert "contactName" not in body
    # adminPass and adminEmail change the admin user too (Cumulocity); adminName is ignored
    changed = await api.client.put(
        f"{TENANTS}/acme",
        json={"adminPass": "a new boss pw", "adminEmail": "new@acme.example", "adminName": "x"},
        auth=MANAGER,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["adminName"] == "boss"
    assert (await api.client.get("/user/currentUser", auth=B_ADMIN)).status_code == 401
    me = await api.client.get("/user/currentUser", auth=("acme/boss", "a new boss pw"))
    assert me.status_code == 200
    assert me.json()["email"] == "new@acme.example"
    assert body["domain"] == "acme.example"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", TENANTS, None),
        ("POST", TENANTS, {**NEW_B, "id": "other", "domain": "o.example"}),
        ("GET", f"{TENANTS}/acme", None),
        ("PUT", f"{TENANTS}/acme", {"status": "SUSPENDED"}),
        ("DELETE", f"{TENANTS}/acme", None),
        ("GET", f"{TENANTS}/management", None),
    ],
)
@pytest.mark.parametrize("who", ["t1 admin", "acme admin"])
async def test_nobody_but_the_management_tenant_manages_tenants(
    api: WholeApi, method: str, path: str, body: dict[str, Any] | None, who: str
) -> None:
    await create_b(api)
    auth = ADMIN if who == "t1 admin" else B_ADMIN
    response = await api.client.request(method, path, json=body, auth=auth)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "security/Forbidden"
    after = await api.client.get(f"{TENANTS}/acme", auth=MANAGER)
    assert after.json()["status"] == "ACTIVE"
    assert (await api.client.get(f"{TENANTS}/other", auth=MANAGER)).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**NEW_B, "id": "acme"}, 409, "acme exists"),
        ({**NEW_B, "id": "other"}, 409, "acme.example is used"),
        ({**NEW_B, "id": "Bad/Id"}, 422, "lowercase letter"),
        ({**NEW_B, "id": "a\u0000b"}, 422, "NUL"),
        ({**NEW_B, "id": "x" * 63}, 422, "lowercase letter"),
        ({**NEW_B, "id": "other", "domain": "bad domain"}, 422, "domain must be"),
        ({**NEW_B, "id": "other", "domain": "o.example", "adminPass": "x"}, 422, "adminPass"),
        ({**NEW_B, "id": "other", "domain": "o.example", "colour": 1}, 422, "colour"),
    ],
)
async def test_bad_or_taken_creations_are_refused_with_cumulocitys_body(
    api: WholeApi, body: dict[str, Any], status: int, message: str
) -> None:
    await create_b(api)
    response = await api.client.post(TENANTS, json=body, auth=MANAGER)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(ERROR)
    assert message in response.json()["message"]
    listed = await api.client.get(f"{TENANTS}?pageSize=100", auth=MANAGER)
    assert sorted(t["id"] for t in listed.json()["tenants"]) == ["acme", "management", "t1"]


async def test_suspended_tenants_users_get_401_with_the_reason_until_reactivated(
    api: WholeApi,
) -> None:
    await create_b(api)
    assert (await api.client.get("/user/currentUser", auth=B_ADMIN)).status_code == 200
    suspended = await api.client.put(f"{TENANTS}/acme", json={"status": "SUSPENDED"}, auth=MANAGER)
    assert suspended.status_code == 200
    assert suspended.json()["status"] == "SUSPENDED"
    assert api.fakes.broker.lines[-1] == "tenant acme 0"
    refused = await api.client.get("/user/currentUser", auth=B_ADMIN)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith(ERROR)
    assert refused.json()["error"] == "security/Unauthorized"
    assert "tenant acme is suspended" in refused.json()["message"]
    # other tenants are untouched
    assert (await api.client.get("/user/currentUser", auth=ADMIN)).status_code == 200
    back = await api.client.put(f"{TENANTS}/acme", json={"status": "ACTIVE"}, auth=MANAGER)
    assert back.json()["status"] == "ACTIVE"
    assert api.fakes.broker.lines[-1] == "tenant acme 1"
    assert (await api.client.get("/user/currentUser", auth=B_ADMIN)).status_code == 200


@pytest.mark.parametrize(("method", "body"), [("PUT", {"status": "SUSPENDED"}), ("DELETE", None)])
async def test_the_management_tenant_is_never_suspended_nor_deleted(
    api: WholeApi, method: str, body: dict[str, Any] | None
) -> None:
    response = await api.client.request(method, f"{TENANTS}/management", json=body, auth=MANAGER)
    assert response.status_code == 422, response.text
    assert (await api.client.get("/user/currentUser", auth=MANAGER)).status_code == 200


async def test_deleting_a_tenant_takes_all_it_owns_and_nothing_of_others(
    api: WholeApi, pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    from test_binaries import stored_files, upload

    client = api.client
    await create_b(api)
    # B owns a device (with its id and device user), an operation, a binary, an option,
    # a new device request; t1 owns a binary of the same content and one of its own
    device = await client.post(
        "/inventory/managedObjects",
        json={"name": "d", "c8y_IsDevice": {}, "c8y_SupportedOperations": ["c8y_Restart"]},
        auth=B_ADMIN,
    )
    device_id = device.json()["id"]
    ext = await client.post(
        f"/identity/globalIds/{device_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": "acme-dev-1"},
        auth=B_ADMIN,
    )
    assert ext.status_code == 201, ext.text
    op = await client.post(
        "/devicecontrol/operations",
        json={"deviceId": device_id, "c8y_Restart": {}},
        auth=B_ADMIN,
    )
    assert op.status_code == 201, op.text
    await upload(client, b"shared content", auth=B_ADMIN, name="a", type="t")
    await upload(client, b"only acme's", auth=B_ADMIN, name="b", type="t")
    await upload(client, b"shared content", name="c", type="t")
    option = await client.post(
        "/tenant/options", json={"category": "c", "key": "k", "value": "v"}, auth=B_ADMIN
    )
    assert option.status_code in (200, 201), option.text
    request = await client.post(
        "/devicecontrol/newDeviceRequests", json={"id": "acme-new-1"}, auth=B_ADMIN
    )
    assert request.status_code == 201, request.text
    files = scratch_dir / "files"
    assert len(stored_files(files)) == 2

    deleted = await client.delete(f"{TENANTS}/acme", auth=MANAGER)
    assert deleted.status_code == 204, deleted.text
    for table in (
        "tenant",
        "app_user",
        "managed_object",
        "external_id",
        "operation",
        "operation_change",
        "tenant_option",
        "new_device_request",
        "trusted_certificate",
    ):
        column = "id" if table == "tenant" else "tenant_id"
        left = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = 'acme'")  # noqa: S608
        assert left == 0, table
    # the broker was told, the device id's session discarded, the unused file removed
    assert "tenant acme 0" in api.fakes.broker.lines
    assert "acme-dev-1" in api.fakes.broker.discarded
    assert api.fakes.trust_changes.calls[-1] == "acme"
    assert len(stored_files(files)) == 1
    t1_binaries = await client.get("/inventory/binaries", auth=ADMIN)
    assert [b["name"] for b in t1_binaries.json()["managedObjects"]] == ["c"]
    assert (await client.get("/user/currentUser", auth=B_ADMIN)).status_code == 401
    assert (await client.get(f"{TENANTS}/acme", auth=MANAGER)).status_code == 404
    # a tenant of the same id can be made again, from nothing
    again = await create_b(api)
    assert again["id"] == "acme"
    devices = await client.get("/inventory/managedObjects", auth=B_ADMIN)
    assert devices.json()["managedObjects"] == []


async def test_a_crash_after_the_deletions_commit_is_repaired_from_the_database(
    api: WholeApi, pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    """Decision 0013's table: with the cleanup never run (the process died after the
    commit), the next full state holds nothing of the tenant, the released device id is
    still to discard, and the start's garbage collection removes its file."""
    from test_binaries import stored_files, upload
    from test_trust_api import pem

    from fleetgate.api.services import services_of
    from fleetgate.db.tenants import PgTenants
    from fleetgate.domain.tenants import DeletedTenant
    from fleetgate.pki import generate_ca
    from fleetgate.services.broker import full_state
    from fleetgate.services.tenants import Tenants

    client, services = api.client, services_of(api.app)
    await create_b(api)
    trusted = await client.post(
        "/tenant/tenants/acme/trusted-certificates",
        auth=B_ADMIN,
        json={"name": "ca", "certInPemFormat": pem(generate_ca("acme CA")), "status": "ENABLED"},
    )
    assert trusted.status_code == 201, trusted.text
    device = await client.post(
        "/inventory/managedObjects", json={"name": "d", "c8y_IsDevice": {}}, auth=B_ADMIN
    )
    ext = await client.post(
        f"/identity/globalIds/{device.json()['id']}/externalIds",
        json={"type": "c8y_Serial", "externalId": "acme-dev-2"},
        auth=B_ADMIN,
    )
    assert ext.status_code == 201, ext.text
    await upload(client, b"acme only", auth=B_ADMIN, name="a", type="t")
    await upload(client, b"t1 only", name="b", type="t")
    assert services.trust is not None
    assert services.devices is not None
    assert services.binaries is not None

    async def state() -> list[str]:
        assert services.trust is not None
        tenants = Tenants(PgTenants(pool), api.fakes.broker, bootstrap_username="devicebootstrap")
        return await full_state(PgUsers(pool), tenants.broker_state, services.trust.broker_state)

    await client.put(f"{TENANTS}/acme", json={"status": "SUSPENDED"}, auth=MANAGER)
    before = await state()
    assert "tenant acme 0" in before
    assert any(" acme/devicebootstrap " in line for line in before)
    assert any(line.startswith("ca ") and " acme " in line for line in before)

    async def crash(deleted: DeletedTenant) -> None:
        raise SystemExit  # the process dies here: nothing after the commit runs

    services.tenants = Tenants(
        PgTenants(pool),
        api.fakes.broker,
        bootstrap_username="devicebootstrap",
        after_deletion=crash,
    )
    with pytest.raises(SystemExit):
        await services.tenants.delete("acme")
    assert await pool.fetchval("SELECT count(*) FROM tenant WHERE id = 'acme'") == 0
    files = scratch_dir / "files"
    assert len(stored_files(files)) == 2  # the tenant's file is still there
    # what the next start does: a full state without the tenant …
    after = await state()
    assert not [line for line in after if "acme" in line]
    assert any(" t1/devicebootstrap " in line for line in after)
    # … the released device id's broker session is discarded before it …
    await services.devices.discard_released_sessions()
    assert "acme-dev-2" in api.fakes.broker.discarded
    assert await pool.fetchval("SELECT count(*) FROM device_session_release") == 0
    # … and the file no binary names any more goes, the other tenant's stays
    assert await services.binaries.collect_garbage() == 1
    assert len(stored_files(files)) == 1
    kept = await client.get("/inventory/binaries", auth=ADMIN)
    assert [b["name"] for b in kept.json()["managedObjects"]] == ["b"]
