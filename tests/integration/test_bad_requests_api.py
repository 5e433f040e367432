"""Bad requests against the whole API on the real PostgreSQL: each one a 4xx with
Cumulocity's error body, never a 500, and nothing written. The repros of issue 9 first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration

ERROR_MEDIA = "application/vnd.com.nsn.cumulocity.error+json"


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(ERROR_MEDIA)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "info"}
    if code is not None:
        assert body["error"] == code
    return body


async def rows(pool: asyncpg.Pool) -> dict[str, int]:
    """How many rows each table of the operator's data holds."""
    counts = {}
    for table in ("managed_object", "external_id", "operation", "trusted_certificate"):
        counts[table] = int(await pool.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    counts["app_user"] = int(await pool.fetchval("SELECT count(*) FROM app_user"))
    return counts


# --- ids: ASCII digits, 1 to 2^63-1 -----------------------------------------------------

BAD_IDS = ["%C2%B3", "%D9%A3", "%EF%BC%91", "0", "-1", "1.0", "9223372036854775808", "1e3"]
ID_PATHS = [
    "/inventory/managedObjects/{id}",
    "/inventory/managedObjects/{id}/childAdditions",
    "/inventory/managedObjects/1/childAdditions/{id}",
    "/inventory/binaries/{id}",
    "/devicecontrol/operations/{id}",
    "/identity/globalIds/{id}/externalIds",
    "/devicecontrol/deadLetters/{id}",
]


@pytest.mark.parametrize("path", ID_PATHS)
async def test_an_id_that_is_not_ascii_digits_in_range_is_a_422(api: WholeApi, path: str) -> None:
    for bad in BAD_IDS:
        response = await api.client.get(path.format(id=bad), auth=ADMIN)
        body = assert_error(response, 422, "general/validationError")
        assert "id" in body["message"]


async def test_ids_in_query_parameters_and_bodies_use_the_same_parser(api: WholeApi) -> None:
    before = await rows(api.pool)
    for url in (
        "/inventory/managedObjects?ids=1,%C2%B3",
        "/inventory/binaries?ids=9223372036854775808",
        "/devicecontrol/operations?deviceId=%C2%B3",
        "/devicecontrol/operations?bulkOperationId=0",
    ):
        assert_error(await api.client.get(url, auth=ADMIN), 422)
    for device_id in ("\u00b3", "99999999999999999999", 0, True, 1.5):
        response = await api.client.post(
            "/devicecontrol/operations",
            json={"deviceId": device_id, "c8y_Restart": {}},
            auth=ADMIN,
        )
        assert_error(response, 422)
    parent = await api.client.post("/inventory/managedObjects", json={"name": "p"}, auth=ADMIN)
    response = await api.client.post(
        f"/inventory/managedObjects/{parent.json()['id']}/childAdditions",
        json={"managedObject": {"id": "\u00b3"}},
        auth=ADMIN,
    )
    assert_error(response, 422)
    after = await rows(api.pool)
    assert after == {**before, "managed_object": before["managed_object"] + 1}


# --- paging: currentPage bounded so that the offset fits a bigint -----------------------

COLLECTIONS = [
    "/inventory/managedObjects",
    "/inventory/binaries",
    "/inventory/managedObjects/{parent}/childAdditions",
    "/devicecontrol/operations",
    "/devicecontrol/newDeviceRequests",
    "/devicecontrol/deadLetters",
    "/user/t1/users",
    "/tenant/tenants/t1/trusted-certificates",
]


async def test_every_collection_refuses_pages_past_the_last_possible_one(api: WholeApi) -> None:
    parent = await api.client.post("/inventory/managedObjects", json={"name": "p"}, auth=ADMIN)
    parent_id = parent.json()["id"]
    for path in COLLECTIONS:
        url = path.format(parent=parent_id)
        for query in (
            "currentPage=9223372036854775807",
            "currentPage=1000000000001",
            "currentPage=%C2%B3",
            "pageSize=%C2%B3",
            "pageSize=99999999999999999999999",
            "withTotalPages=maybe",
        ):
            response = await api.client.get(f"{url}?{query}", auth=ADMIN)
            assert_error(response, 422, "general/validationError")
        last = await api.client.get(f"{url}?currentPage=1000000000000&pageSize=2000", auth=ADMIN)
        assert last.status_code == 200, (url, last.text)


# --- signed URLs: anyone can send them ---------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "device=d&expires=99999999999&signature=%C3%A9",
        "device=d&expires=99999999999&signature=" + "%C3%A9" * 64,
        "device=d&expires=%D9%A3&signature=" + "ab" * 32,
        "device=d&expires=99999999999999999999999999&signature=" + "ab" * 32,
        "device=d&expires=1&signature=" + "ab" * 32,
        "expires=99999999999&signature=" + "ab" * 32,
        "",
    ],
)
async def test_a_malformed_signed_url_is_a_403_for_downloads_and_uploads(
    api: WholeApi, query: str
) -> None:
    before = await rows(api.pool)
    for path in ("/files/1", "/files/%C2%B3", "/files/9223372036854775808"):
        assert_error(await api.client.get(f"{path}?{query}"), 403, "security/Forbidden")
    for path in ("/files/snapshots/1", "/files/snapshots/%C2%B3"):
        response = await api.client.put(f"{path}?{query}", content=b"snapshot")
        assert_error(response, 403, "security/Forbidden")
    assert await rows(api.pool) == before


# --- text PostgreSQL cannot store: NUL, lone surrogates; NaN/Infinity; depth -------------

#: Bodies every JSON route refuses before anything is stored, and the status.
UNSTORABLE_BODIES: list[tuple[bytes, int]] = [
    (b'{"name": "a\\u0000b"}', 422),
    (b'{"name": "ok", "c8y_Notes": {"text": "\\u0000"}}', 422),
    (b'{"name": "ok", "c8y_\\u0000": {}}', 422),
    (b'{"name": "ok", "c8y_List": ["a", "\\ud800"]}', 422),
    (b'{"name": "ok", "c8y_Value": NaN}', 400),
    (b'{"name": "ok", "c8y_Value": Infinity}', 400),
    (b'{"name": "ok", "c8y_Value": 1e400}', 422),
    (b'{"name": "ok", "c8y_Deep": ' + b"[" * 70 + b"]" * 70 + b"}", 422),
    (
        b'{"id": "dev\\u0000", "status": "ENABLED", "type": "c8y_Serial", "externalId": "\\u0000"}',
        422,
    ),
]


async def json_routes(api: WholeApi) -> list[tuple[str, str]]:
    """(method, path) of every route that reads a JSON body, with ids that exist."""
    made = await api.client.post("/inventory/managedObjects", json={"name": "p"}, auth=ADMIN)
    object_id = made.json()["id"]
    return [
        ("POST", "/inventory/managedObjects"),
        ("PUT", f"/inventory/managedObjects/{object_id}"),
        ("POST", f"/inventory/managedObjects/{object_id}/childAdditions"),
        ("POST", f"/identity/globalIds/{object_id}/externalIds"),
        ("PUT", "/user/t1/users/devicebootstrap"),
        ("POST", "/devicecontrol/newDeviceRequests"),
        ("PUT", "/devicecontrol/newDeviceRequests/some-device"),
        ("POST", "/devicecontrol/operations"),
        ("POST", "/tenant/tenants/t1/trusted-certificates"),
    ]


async def test_no_json_route_stores_what_postgresql_refuses(api: WholeApi) -> None:
    routes = await json_routes(api)
    before = await rows(api.pool)
    for method, path in routes:
        for raw, status in UNSTORABLE_BODIES:
            response = await api.client.request(
                method,
                path,
                content=raw,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                auth=ADMIN,
            )
            assert_error(response, status)
    assert await rows(api.pool) == before
    assert api.fakes.broker.lines == []
    assert api.fakes.trust_changes.calls == []


async def test_device_credentials_refuse_unstorable_ids(api: WholeApi) -> None:
    response = await api.client.post(
        "/devicecontrol/deviceCredentials",
        content=b'{"id": "dev\\u0000"}',
        headers={"Content-Type": "application/json"},
        auth=("t1/devicebootstrap", "boot-pw"),
    )
    assert_error(response, 422)


@pytest.mark.parametrize(
    "url",
    [
        "/inventory/managedObjects?type=a%00b",
        "/inventory/managedObjects?fragmentType=%00",
        "/inventory/managedObjects?owner=x%00",
        "/inventory/binaries?type=%00",
        "/devicecontrol/operations?fragmentType=c8y_%00",
        "/devicecontrol/operations?status=PENDING%00",
        "/devicecontrol/operations?dateFrom=2020-01-01T00:00:00Z%00",
        "/inventory/managedObjects?x%00=1",
        "/identity/externalIds/c8y_Serial/a%00b",
        "/identity/externalIds/c8y%00/abc",
        "/user/t1/users/a%00b",
        "/user/t1%00/users",
        "/devicecontrol/newDeviceRequests/a%00b",
        "/tenant/tenants/t1/trusted-certificates/%00",
        "/files/1?device=%00&expires=99999999999&signature=" + "ab" * 32,
    ],
)
async def test_a_nul_in_a_path_or_query_value_is_a_422(api: WholeApi, url: str) -> None:
    body = assert_error(await api.client.get(url, auth=ADMIN), 422, "general/validationError")
    assert "NUL" in body["message"]
    if url.startswith(("/identity", "/user/t1/users/", "/devicecontrol/newDevice")):
        assert_error(await api.client.delete(url, auth=ADMIN), 422)


async def test_a_nul_in_basic_credentials_is_a_401(api: WholeApi) -> None:
    for login in (("t1/admin\x00", "admin-pw"), ("t1\x00/admin", "x"), ("t1/admin", "pw\x00")):
        response = await api.client.get("/inventory/managedObjects", auth=login)
        assert_error(response, 401, "security/Unauthorized")


async def test_an_upload_refuses_unstorable_names_and_types(api: WholeApi) -> None:
    before = await rows(api.pool)
    for headers in (
        b'Content-Disposition: form-data; name="file"; filename="fw\x00.bin"',
        b'Content-Disposition: form-data; name="file"; filename="fw.bin"\r\n'
        b"Content-Type: application/x\x00y",
    ):
        body = b"--B\r\n" + headers + b"\r\n\r\ndata\r\n--B--\r\n"
        response = await api.client.post(
            "/inventory/binaries",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=B"},
            auth=ADMIN,
        )
        assert_error(response, 422)
    for files in (
        {"object": (None, b'{"name": "\\u0000"}'), "file": ("fw.bin", b"data")},
        {"object": (None, b'{"name": "fw", "c8y_V": NaN}'), "file": ("fw.bin", b"data")},
        {"object": (None, b'{"name": "fw", "c8y_V": 1e999}'), "file": ("fw.bin", b"data")},
    ):
        response = await api.client.post("/inventory/binaries", files=files, auth=ADMIN)
        assert_error(response, 422)
    assert await rows(api.pool) == before


async def test_external_ids_longer_than_the_table_holds_are_a_422(api: WholeApi) -> None:
    made = await api.client.post("/inventory/managedObjects", json={"name": "p"}, auth=ADMIN)
    url = f"/identity/globalIds/{made.json()['id']}/externalIds"
    for body in (
        {"type": "t" * 1001, "externalId": "x"},
        {"type": "t", "externalId": "x" * 1001},
        {"type": "", "externalId": "x"},
        {"type": "t", "externalId": 5},
    ):
        assert_error(await api.client.post(url, json=body, auth=ADMIN), 422)
    ok = await api.client.post(
        url, json={"type": "t" * 1000, "externalId": "\u00e9" * 1000}, auth=ADMIN
    )
    assert ok.status_code == 201, ok.text


# --- 404: each API names its own code, as Cumulocity's do (docs/api.md, Errors) -------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/inventory/managedObjects/424242", "inventory/Not Found"),
        ("/inventory/managedObjects/424242/childAdditions", "inventory/Not Found"),
        ("/inventory/binaries/424242", "inventory/Not Found"),
        ("/identity/globalIds/424242/externalIds", "inventory/Not Found"),
        ("/identity/externalIds/c8y_Serial/nobody", "identity/Not Found"),
        ("/user/t1/users/nobody", "user/Not Found"),
        ("/devicecontrol/operations/424242", "devicecontrol/Not Found"),
        ("/devicecontrol/newDeviceRequests/nobody", "devicecontrol/Not Found"),
        ("/tenant/tenants/t1/trusted-certificates/" + "ab" * 20, "general/notFound"),
        ("/no/such/path", "general/notFound"),
    ],
)
async def test_not_found_codes_are_the_documented_ones(api: WholeApi, url: str, code: str) -> None:
    assert_error(await api.client.get(url, auth=ADMIN), 404, code)
