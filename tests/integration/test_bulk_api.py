"""Bulk device credentials over the REST API, against the real PostgreSQL.

``POST /devicecontrol/bulkNewDeviceRequests`` with a CSV file; the broker is a recording
fake that also checks, at every push, that what it is told is already committed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.api.routes import bulk as bulk_route
from fleetgate.api.services import services_of
from fleetgate.db.bulk import PgBulkCredentials
from fleetgate.domain import broker_control as control
from fleetgate.domain.passwords import verify_password
from fleetgate.services.bulk import BulkCredentials, BulkLimits

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

BASE = TEST_BASE_URL
ADMIN = ("t1/admin", "admin-pw")
MANAGEMENT = ("management/admin", "mgmt-pw")
URL = "/devicecontrol/bulkNewDeviceRequests"
MEDIA = "application/vnd.com.nsn.cumulocity.bulkNewDeviceRequest+json"

SEED_EXAMPLE = """\
ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL
id_101;abcd1234;type_of_device;Device 101;111111111;;csv device/subgroup0;1
id_102;abcd1234;type_of_device;Device 102;222222222;;csv device/subgroup0;0
id_111;abcd1234;type_of_device;Device 111;333333333;c8y_Imei;csv device1/subgroup1;0
id_112;abcd1234;type_of_device;Device 112;444444444;;csv device1/subgroup1;1
id_121;abcd1234;type_of_device;Device 121;555555555;;csv device1/subgroup2;1
id_122;abcd1234;type_of_device;Device 122;;;csv device1/subgroup2;
id_131;abcd1234;type_of_device;Device 131;;;csv device1/subgroup3;
"""


class CommitCheckingBroker(RecordingBroker):
    """Records pushes, and asserts that every device user pushed is already committed."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__()
        self.pool = pool
        self.pushes: list[list[str]] = []

    async def push(self, lines: list[str]) -> None:
        for line in lines:
            if line.startswith("device "):
                _, device_id, tenant, _ = line.split(" ")
                visible = await self.pool.fetchval(
                    "SELECT count(*) FROM app_user WHERE tenant_id = $1 AND username = $2",
                    control.decode_field(tenant),
                    "device_" + control.decode_field(device_id),
                )
                assert visible == 1, f"pushed before commit: {line}"
        self.pushes.append(list(lines))
        await super().push(lines)


@pytest.fixture
async def broker(pool: asyncpg.Pool) -> CommitCheckingBroker:
    return CommitCheckingBroker(pool)


@pytest.fixture
async def service(pool: asyncpg.Pool, broker: CommitCheckingBroker) -> BulkCredentials:
    await seed_tenants(pool, "t1", "t2", bootstrap_password="bootstrap-pw")
    return BulkCredentials(PgBulkCredentials(pool), broker, limits=BulkLimits(batch_rows=3))


@pytest.fixture
async def api(service: BulkCredentials, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(pool) as (app, c):
        services_of(app).bulk = service
        yield c


async def upload(
    api: httpx.AsyncClient, content: str | bytes, auth: tuple[str, str] = ADMIN
) -> httpx.Response:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return await api.post(URL, files={"file": ("devices.csv", data, "text/plain")}, auth=auth)


async def device(pool: asyncpg.Pool, device_id: str, tenant: str = "t1") -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT m.* FROM external_id e JOIN managed_object m ON m.id = e.managed_object_id"
        " WHERE e.tenant_id = $1 AND e.type = 'c8y_Serial' AND e.value = $2",
        tenant,
        device_id,
    )
    assert row is not None, f"no device {device_id}"
    return {**dict(row), "fragments": json.loads(row["fragments"])}


async def password_hash(pool: asyncpg.Pool, device_id: str, tenant: str = "t1") -> str:
    value = await pool.fetchval(
        "SELECT password_hash FROM app_user WHERE tenant_id = $1 AND username = $2",
        tenant,
        f"device_{device_id}",
    )
    assert isinstance(value, str)
    return value


async def groups(pool: asyncpg.Pool) -> set[str]:
    """Every group as its path, ``top/sub``."""
    rows = await pool.fetch(
        """
        WITH RECURSIVE g(id, path) AS (
            SELECT id, name FROM managed_object WHERE fragments ? 'c8y_IsDeviceGroup'
            UNION ALL
            SELECT m.id, g.path || '/' || m.name FROM g
              JOIN managed_object_child c ON c.parent_id = g.id AND c.kind = 'childAssets'
              JOIN managed_object m ON m.id = c.child_id AND m.fragments ? 'c8y_IsDeviceSubgroup'
        ) SELECT path FROM g
        """
    )
    return {r["path"] for r in rows}


async def parent_path(pool: asyncpg.Pool, object_id: int) -> list[str]:
    names: list[str] = []
    current = object_id
    while True:
        row = await pool.fetchrow(
            "SELECT m.id, m.name FROM managed_object_child c JOIN managed_object m"
            " ON m.id = c.parent_id WHERE c.child_id = $1 AND c.kind = 'childAssets'",
            current,
        )
        if row is None:
            return list(reversed(names))
        names.append(row["name"])
        current = row["id"]


async def test_the_seed_example_creates_devices_groups_and_fragments(
    api: httpx.AsyncClient, pool: asyncpg.Pool, broker: CommitCheckingBroker
) -> None:
    response = await upload(api, SEED_EXAMPLE)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(MEDIA)
    assert response.json() == {
        "numberOfAll": 7,
        "numberOfCreated": 7,
        "numberOfFailed": 0,
        "numberOfSuccessful": 7,
        "credentialUpdatedList": [],
        "failedCreationList": [],
    }
    assert await groups(pool) == {
        "csv device",
        "csv device/subgroup0",
        "csv device1",
        "csv device1/subgroup1",
        "csv device1/subgroup2",
        "csv device1/subgroup3",
    }
    d101 = await device(pool, "id_101")
    assert (d101["name"], d101["type"], d101["owner"]) == (
        "Device 101",
        "type_of_device",
        "device_id_101",
    )
    assert d101["fragments"]["c8y_IsDevice"] == {}
    assert d101["fragments"]["c8y_Mobile"] == {"iccid": "111111111"}
    assert d101["fragments"]["c8y_SupportedOperations"] == ["c8y_Command"]
    assert await parent_path(pool, d101["id"]) == ["csv device", "subgroup0"]
    d102 = await device(pool, "id_102")
    assert "c8y_SupportedOperations" not in d102["fragments"]
    assert await parent_path(pool, d102["id"]) == ["csv device", "subgroup0"]
    d122 = await device(pool, "id_122")
    assert "c8y_Mobile" not in d122["fragments"]
    assert await parent_path(pool, d122["id"]) == ["csv device1", "subgroup2"]
    # IDTYPE c8y_Imei: that external id, and c8y_Serial (the broker identity) beside it.
    d111 = await device(pool, "id_111")
    types = await pool.fetch(
        "SELECT type FROM external_id WHERE managed_object_id = $1 ORDER BY type", d111["id"]
    )
    assert [r["type"] for r in types] == ["c8y_Imei", "c8y_Serial"]
    for device_id in ("id_101", "id_131"):
        assert verify_password("abcd1234", await password_hash(pool, device_id))
    roles = await pool.fetchval(
        "SELECT roles FROM app_user WHERE tenant_id = 't1' AND username = 'device_id_112'"
    )
    assert sorted(roles) == ["ROLE_DEVICE", "ROLE_USER_MANAGEMENT_OWN_READ"]
    # One push per batch of 3 rows, each after its rows were committed.
    assert [len(p) for p in broker.pushes] == [6, 6, 2]
    h = await password_hash(pool, "id_101")
    assert broker.pushes[0][:2] == [
        control.device("id_101", "t1", True),
        control.device_account("t1", "id_101", h),
    ]


async def test_the_same_file_again_updates_credentials_and_reuses_groups(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    assert (await upload(api, SEED_EXAMPLE)).status_code == 201
    again = SEED_EXAMPLE.replace("abcd1234", "newpass99")
    response = await upload(api, again)
    body = response.json()
    assert (body["numberOfCreated"], body["numberOfSuccessful"]) == (0, 7)
    assert body["credentialUpdatedList"][0] == {
        "bulkNewDeviceStatus": "CREDENTIAL_UPDATED",
        "deviceId": "id_101",
    }
    assert len(body["credentialUpdatedList"]) == 7
    assert len(await groups(pool)) == 6
    group_objects = await pool.fetchval(
        "SELECT count(*) FROM managed_object WHERE fragments ?| array['c8y_IsDeviceGroup',"
        " 'c8y_IsDeviceSubgroup']"
    )
    assert group_objects == 6
    stored = await password_hash(pool, "id_111")
    assert verify_password("newpass99", stored)
    assert not verify_password("abcd1234", stored)
    assert (await device(pool, "id_101"))["fragments"]["c8y_SupportedOperations"] == ["c8y_Command"]


async def test_an_existing_device_keeps_its_operations_and_gains_the_shell(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = "ID,CREDENTIALS\nmeter-1,firstpass1\n"
    assert (await upload(api, first)).json()["numberOfCreated"] == 1
    meter = await device(pool, "meter-1")
    assert (meter["name"], meter["type"]) == ("meter-1", "c8y_MQTTDevice")
    await pool.execute(
        "UPDATE managed_object SET fragments = fragments || $2::jsonb WHERE id = $1",
        meter["id"],
        json.dumps({"c8y_SupportedOperations": ["c8y_Restart", "c8y_Command"]}),
    )
    response = await upload(api, "ID,CREDENTIALS,TYPE,NAME,SHELL\nmeter-1,secondpass2,,,1\n")
    assert response.json()["credentialUpdatedList"] == [
        {"bulkNewDeviceStatus": "CREDENTIAL_UPDATED", "deviceId": "meter-1"}
    ]
    meter = await device(pool, "meter-1")
    assert meter["name"] == "meter-1"
    assert meter["fragments"]["c8y_SupportedOperations"] == ["c8y_Restart", "c8y_Command"]
    assert verify_password("secondpass2", await password_hash(pool, "meter-1"))


async def test_a_bom_crlf_and_lower_case_headers_are_accepted(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content = b"\xef\xbb\xbfid,Credentials\r\nbom-1,abcd1234x\r\nbom-2,abcd1234y\r\n"
    body = (await upload(api, content)).json()
    assert (body["numberOfAll"], body["numberOfCreated"]) == (2, 2)
    assert verify_password("abcd1234y", await password_hash(pool, "bom-2"))


async def test_quoted_fields_hold_separators_quotes_and_line_breaks(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content = 'ID;CREDENTIALS;TYPE;NAME\n"q-1";"pa;ss""wd1";"t;1";"Hall 3;\nnorth"\n'
    body = (await upload(api, content)).json()
    assert body["numberOfCreated"] == 1, body
    q1 = await device(pool, "q-1")
    assert (q1["type"], q1["name"]) == ("t;1", "Hall 3;\nnorth")
    assert verify_password('pa;ss"wd1', await password_hash(pool, "q-1"))


async def test_a_tab_separated_file_works(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    body = (await upload(api, "ID\tCREDENTIALS\ntab-1\tabc,d;1234\n")).json()
    assert body["numberOfCreated"] == 1
    assert verify_password("abc,d;1234", await password_hash(pool, "tab-1"))


async def test_a_row_with_another_separator_fails_alone(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content = "ID;CREDENTIALS;TYPE;NAME\nok-1;abcd1234;t;n\nbad-1,abcd1234,t,n\nok-2;abcd1234;t;n\n"
    body = (await upload(api, content)).json()
    assert (body["numberOfAll"], body["numberOfCreated"], body["numberOfFailed"]) == (3, 2, 1)
    assert body["failedCreationList"] == [
        {
            "bulkNewDeviceStatus": "FAILED",
            "failureReason": "the row has 1 values but the header names 4 columns",
            "line": "line 3",
        }
    ]
    assert await pool.fetchval("SELECT count(*) FROM external_id WHERE value LIKE 'bad%'") == 0


async def test_a_missing_mandatory_column_refuses_the_whole_file(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM managed_object")
    response = await upload(api, "ID;NAME;TYPE\nx-1;n;t\n")
    assert response.status_code == 422
    assert response.json()["error"] == "general/validationError"
    assert "CREDENTIALS" in response.json()["message"]
    assert await pool.fetchval("SELECT count(*) FROM managed_object") == before


async def test_device_columns_without_type_and_name_refuse_the_file(
    api: httpx.AsyncClient,
) -> None:
    response = await upload(api, "ID,CREDENTIALS,PATH\nx-1,abcd1234,g\n")
    assert response.status_code == 422
    assert "PATH need the columns TYPE and NAME" in response.json()["message"]


async def test_a_header_without_a_separator_is_refused(api: httpx.AsyncClient) -> None:
    response = await upload(api, "ID CREDENTIALS\nx abcd1234\n")
    assert response.status_code == 422
    assert "separator" in response.json()["message"]


async def test_duplicate_ids_in_one_file_the_first_wins(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content = "ID,CREDENTIALS\ndup-1,firstpass1\nother,abcd1234\ndup-1,secondpass2\n"
    body = (await upload(api, content)).json()
    assert (body["numberOfCreated"], body["numberOfFailed"]) == (2, 1)
    assert body["failedCreationList"] == [
        {
            "bulkNewDeviceStatus": "FAILED",
            "deviceId": "dup-1",
            "failureReason": "duplicate id in file: dup-1 was first given on line 2",
            "line": "line 4: dup-1,***",
        }
    ]
    assert verify_password("firstpass1", await password_hash(pool, "dup-1"))


async def test_unknown_columns_are_ignored(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    content = "ID,CREDENTIALS,COLOUR,TYPE,NAME\nu-1,abcd1234,red,pump,Pump 1\n"
    body = (await upload(api, content)).json()
    assert body["numberOfCreated"] == 1
    u1 = await device(pool, "u-1")
    assert (u1["type"], u1["name"]) == ("pump", "Pump 1")
    assert "COLOUR" not in json.dumps(u1["fragments"]).upper()


@pytest.mark.parametrize("content", ["", "\r\n", "ID;CREDENTIALS\n", "ID;CREDENTIALS\n\n\n"])
async def test_an_empty_file_is_refused(api: httpx.AsyncClient, content: str) -> None:
    response = await upload(api, content)
    assert response.status_code == 422
    assert "empty" in response.json()["message"] or "no rows" in response.json()["message"]


async def test_a_weak_password_fails_its_row(api: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    content = "ID,CREDENTIALS\nw-1,short\nw-2,12345678\nw-3,with space1\nw-4,goodpass1\n"
    body = (await upload(api, content)).json()
    reasons = {f["deviceId"]: f["failureReason"] for f in body["failedCreationList"]}
    assert reasons == {
        "w-1": "the password must have 8 to 32 characters",
        "w-2": "the password cannot be only digits",
        "w-3": reasons["w-3"],
    }
    assert reasons["w-3"].startswith("the password may only hold letters, digits")
    assert all("short" not in f["line"] for f in body["failedCreationList"])
    assert body["numberOfCreated"] == 1
    count = await pool.fetchval("SELECT count(*) FROM app_user WHERE username LIKE 'device_w-%'")
    assert count == 1


async def test_the_tenant_column_is_ignored_for_an_ordinary_tenant(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    body = (await upload(api, "ID,CREDENTIALS,TENANT\nten-1,abcd1234,t2\n")).json()
    assert body["numberOfCreated"] == 1
    assert (await device(pool, "ten-1", "t1"))["owner"] == "device_ten-1"
    assert await pool.fetchval("SELECT count(*) FROM external_id WHERE tenant_id = 't2'") == 0


async def test_the_management_tenant_creates_devices_in_the_tenant_named(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    missing = await upload(api, "ID,CREDENTIALS\nm-1,abcd1234\n", auth=MANAGEMENT)
    assert missing.status_code == 422
    assert "TENANT" in missing.json()["message"]
    content = "ID,CREDENTIALS,TENANT\nm-1,abcd1234,t2\nm-2,abcd1234,nosuch\nm-3,abcd1234,\n"
    body = (await upload(api, content, auth=MANAGEMENT)).json()
    assert body["numberOfCreated"] == 1
    assert [f["failureReason"] for f in body["failedCreationList"]] == [
        "the tenant nosuch does not exist",
        "TENANT is empty (the management tenant must name the device's tenant)",
    ]
    assert verify_password("abcd1234", await password_hash(pool, "m-1", "t2"))


async def test_a_device_id_used_in_another_tenant_fails(
    api: httpx.AsyncClient,
) -> None:
    assert (await upload(api, "ID,CREDENTIALS\nshared,abcd1234\n")).json()["numberOfCreated"] == 1
    other = ("t2/admin", "admin-pw")
    body = (await upload(api, "ID,CREDENTIALS\nshared,abcd1234\n", auth=other)).json()
    assert body["numberOfFailed"] == 1
    assert "in use in another tenant" in body["failedCreationList"][0]["failureReason"]


async def test_ids_that_cannot_be_client_ids_fail(
    api: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    content = (
        'ID,CREDENTIALS\na/b,abcd1234\n"a b",abcd1234\nmac:01,abcd1234\n,abcd1234\nok,abcd1234\n'
    )
    body = (await upload(api, content)).json()
    assert (body["numberOfCreated"], body["numberOfFailed"]) == (1, 4)
    reasons = [f["failureReason"] for f in body["failedCreationList"]]
    assert "MQTT client id" in reasons[0]
    assert "MQTT client id" in reasons[1]
    assert "user name" in reasons[2]
    assert reasons[3] == "ID is empty"
    assert "deviceId" not in body["failedCreationList"][3]


async def test_bytes_that_are_not_utf8_fail_their_row(api: httpx.AsyncClient) -> None:
    body = (await upload(api, b"ID,CREDENTIALS\nx\xff,abcd1234\ny,abcd1234\n")).json()
    assert (body["numberOfCreated"], body["numberOfFailed"]) == (1, 1)
    assert body["failedCreationList"][0]["failureReason"] == "the row is not valid UTF-8"


async def test_a_user_without_device_control_admin_is_refused(api: httpx.AsyncClient) -> None:
    response = await upload(api, SEED_EXAMPLE, auth=("t1/devicebootstrap", "bootstrap-pw"))
    assert response.status_code == 403


async def test_an_upload_over_the_limit_is_413(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_route, "MAX_UPLOAD", 1000)
    response = await upload(api, "ID,CREDENTIALS\n" + "x,abcd1234\n" * 200)
    assert response.status_code == 413
    assert response.json()["error"] == "general/requestEntityTooLarge"


async def test_a_body_that_is_not_multipart_is_415(api: httpx.AsyncClient) -> None:
    response = await api.post(URL, content=SEED_EXAMPLE, auth=ADMIN)
    assert response.status_code == 415


async def test_new_credentials_for_a_disabled_device_leave_it_disabled(
    api: httpx.AsyncClient, pool: asyncpg.Pool, broker: CommitCheckingBroker
) -> None:
    """Decision 0012: the device user follows its device, whatever path writes the user."""
    made = await pool.fetchval(
        "INSERT INTO managed_object (tenant_id, name, fragments, disabled)"
        " VALUES ('t1', 'off-1', '{\"c8y_IsDevice\": {}}', true) RETURNING id"
    )
    await pool.execute("INSERT INTO external_id VALUES ('t1', 'c8y_Serial', 'off-1', $1)", made)
    assert (await upload(api, "ID,CREDENTIALS\noff-1,newpass99\n")).status_code == 201
    enabled = await pool.fetchval(
        "SELECT enabled FROM app_user WHERE tenant_id = 't1' AND username = 'device_off-1'"
    )
    assert enabled is False
    assert control.device("off-1", "t1", False) in broker.lines
    assert not any(line.startswith("account device t1/device_off-1") for line in broker.lines)
