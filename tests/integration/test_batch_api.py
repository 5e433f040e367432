"""Batch updates from a template over REST on PostgreSQL (issue 14): the round trip
(download from a device, edit two rows, break a third, upload → 2 valid / 1 invalid with
errmsg.txt naming row and column, confirm → exactly two devices changed), the optimistic
check, staging that any instance can confirm, expiry, and who may do what."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openpyxl
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.batch import PgBatchUpdates
from fleetgate.domain.batch_state import Claim
from fleetgate.services.batch import BatchUpdates
from fleetgate.sheets import XlsxWorkbooks

from conftest import TEST_BASE_URL, api_client, seed_tenants
from whole_api import ADMIN, WholeApi, whole_api, wire

pytestmark = pytest.mark.integration

BATCH = "/inventory/batchUpdates"
MO = "/inventory/managedObjects"
SENSOR = "acme_Sensor"
BATCH_MEDIA = "application/vnd.fleetgate.batchUpdate+json"
WATCHER = ("t1/watcher", "watch-it-pw")
USERS = "/user/t1/users"


def role_ref(role: str) -> dict[str, object]:
    return {"role": {"self": f"{TEST_BASE_URL}/user/roles/{role}"}}


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


async def make_device(
    client: httpx.AsyncClient, name: str, type: str = SENSOR, auth: Any = ADMIN, **fragments: Any
) -> str:
    created = await client.post(
        MO, auth=auth, json={"name": name, "type": type, "c8y_IsDevice": {}, **fragments}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def get_object(client: httpx.AsyncClient, object_id: str) -> dict[str, Any]:
    found = await client.get(f"{MO}/{object_id}", auth=ADMIN)
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


async def upload(
    client: httpx.AsyncClient,
    content: bytes,
    file_name: str = "Template_acme_Sensor.xlsx",
    type: str = SENSOR,
    auth: Any = ADMIN,
) -> httpx.Response:
    return await client.post(
        BATCH, params={"type": type}, auth=auth, files={"file": (file_name, content)}
    )


def xlsx_rows(content: bytes) -> list[list[Any]]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    assert book.sheetnames == ["devices"]
    return [list(row) for row in book.active.iter_rows(values_only=True)]  # type: ignore[union-attr]


def xlsx_of(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)  # type: ignore[union-attr]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_round_trip_from_a_device_two_edited_one_broken(api: WholeApi) -> None:
    client = api.client
    a = await make_device(
        client, "sensor A", c8y_Notes="roof", c8y_Position={"lat": 48.1, "lng": 11.5, "alt": 520}
    )
    b = await make_device(client, "sensor B", c8y_Hardware={"model": "S1", "revision": "1"})
    c = await make_device(client, "sensor C")
    d = await make_device(client, "sensor D")
    before = {i: await get_object(client, i) for i in (a, b, c, d)}

    template = await client.get(
        f"{BATCH}/template", params={"type": SENSOR, "deviceId": a}, auth=ADMIN
    )
    assert template.status_code == 200, template.text
    assert template.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert 'filename="Template_acme_Sensor.xlsx"' in template.headers["content-disposition"]
    rows = xlsx_rows(template.content)
    header = rows[0]
    assert header[:3] == ["id", "name", "c8y_Notes"]
    assert "c8y_Position.lat" in header
    assert "type" not in header
    example = dict(zip(header, rows[1], strict=True))
    assert example["id"] == a
    assert (example["name"], example["c8y_Notes"]) == ("sensor A", "roof")
    assert (example["c8y_Position.lat"], example["c8y_Position.alt"]) == (48.1, 520)
    assert len(rows) == 2

    col = {name: i for i, name in enumerate(header)}
    edited_a = list(rows[1])
    edited_a[col["name"]] = "sensor A (north roof)"
    edited_a[col["c8y_Notes"]] = "moved 2026-12-02"
    edited_b = [None] * len(header)
    edited_b[col["id"]] = int(b)
    edited_b[col["c8y_Hardware.revision"]] = "2"
    edited_b[col["c8y_Position.lat"]] = 52.52
    broken_c = [None] * len(header)
    broken_c[col["id"]] = c
    broken_c[col["c8y_Position.lat"]] = "north"
    staged = await upload(client, xlsx_of([header, edited_a, edited_b, broken_c]))
    assert staged.status_code == 201, staged.text
    assert staged.headers["content-type"].startswith(BATCH_MEDIA)
    body = staged.json()
    assert (body["numberOfRecords"], body["numberOfValid"], body["numberOfInvalid"]) == (3, 2, 1)
    assert body["status"] == "STAGED"
    assert body["invalidRecords"] == [
        {"row": 4, "column": "c8y_Position.lat", "cause": "'north' is not a number"}
    ]
    assert staged.headers["location"] == body["self"]

    errmsg = await client.get(f"{BATCH}/{body['id']}/errmsg.txt", auth=ADMIN)
    assert errmsg.status_code == 200
    assert errmsg.headers["content-type"].startswith("text/plain")
    assert errmsg.text == "row 4, column c8y_Position.lat: 'north' is not a number\n"

    # Nothing changes until the operator confirms.
    assert {i: await get_object(client, i) for i in (a, b, c, d)} == before

    confirmed = await client.post(f"{BATCH}/{body['id']}/confirm", auth=ADMIN)
    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()
    assert result["status"] == "APPLIED"
    assert result["confirmedBy"] == "admin"
    assert result["result"] == {
        "numberOfUpdated": 2,
        "numberOfUnchanged": 0,
        "numberOfFailed": 0,
        "failedRecords": [],
    }
    after = {i: await get_object(client, i) for i in (a, b, c, d)}
    changed = {i for i in after if after[i] != before[i]}
    assert changed == {a, b}
    assert after[a]["name"] == "sensor A (north roof)"
    assert after[a]["c8y_Notes"] == "moved 2026-12-02"
    assert after[a]["c8y_Position"] == {"lat": 48.1, "lng": 11.5, "alt": 520}
    assert after[b]["c8y_Hardware"] == {"model": "S1", "revision": "2"}
    assert after[b]["c8y_Position"] == {"lat": 52.52}
    assert after[b]["name"] == "sensor B"

    again = await client.post(f"{BATCH}/{body['id']}/confirm", auth=ADMIN)
    assert again.status_code == 409
    assert "applied already" in again.json()["message"]


async def test_csv_template_and_a_device_changed_since_the_upload(api: WholeApi) -> None:
    client = api.client
    a = await make_device(client, "sensor A")
    b = await make_device(client, "sensor B")
    template = await client.get(
        f"{BATCH}/template", params={"type": SENSOR, "format": "csv"}, auth=ADMIN
    )
    assert template.status_code == 200
    assert template.headers["content-type"].startswith("text/csv")
    header = template.text.splitlines()[0]
    assert template.text == header + "\r\n"
    assert header.startswith("id,name,c8y_Notes,")
    csv = f"id;name;c8y_Notes\n{a};renamed A;\n{b};;a note\n".encode()
    staged = await upload(client, csv, "devices.csv")
    assert staged.status_code == 201, staged.text
    assert staged.json()["numberOfValid"] == 2

    # Someone renames A after the upload: the record must not overwrite it unseen.
    put = await client.put(f"{MO}/{a}", auth=ADMIN, json={"name": "renamed by hand"})
    assert put.status_code == 200
    confirmed = await client.post(f"{BATCH}/{staged.json()['id']}/confirm", auth=ADMIN)
    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()["result"]
    assert (result["numberOfUpdated"], result["numberOfFailed"]) == (1, 1)
    [failed] = result["failedRecords"]
    assert (failed["row"], failed["deviceId"]) == (2, a)
    assert "changed since the upload" in failed["cause"]
    assert "'renamed by hand'" in failed["cause"]
    assert (await get_object(client, a))["name"] == "renamed by hand"
    assert (await get_object(client, b))["c8y_Notes"] == "a note"


async def test_another_instance_confirms_what_one_staged(
    api: WholeApi, pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    a = await make_device(api.client, "sensor A")
    staged = await upload(api.client, f"id,name\n{a},from elsewhere\n".encode(), "x.csv")
    assert staged.status_code == 201, staged.text
    async with api_client(pool) as (other_app, other):
        wire(other_app, pool, scratch_dir / "other-files")
        shown = await other.get(f"{BATCH}/{staged.json()['id']}", auth=ADMIN)
        assert shown.json()["status"] == "STAGED"
        confirmed = await other.post(f"{BATCH}/{staged.json()['id']}/confirm", auth=ADMIN)
        assert confirmed.status_code == 200, confirmed.text
    assert (await get_object(api.client, a))["name"] == "from elsewhere"


async def test_an_expired_upload_cannot_be_confirmed(api: WholeApi, pool: asyncpg.Pool) -> None:
    services_of(api.app).batch = BatchUpdates(
        PgBatchUpdates(pool), XlsxWorkbooks(), staged_for=timedelta(0)
    )
    a = await make_device(api.client, "sensor A")
    staged = await upload(api.client, f"id,name\n{a},late\n".encode(), "x.csv")
    assert staged.status_code == 201
    assert staged.json()["status"] == "EXPIRED"
    refused = await api.client.post(f"{BATCH}/{staged.json()['id']}/confirm", auth=ADMIN)
    assert refused.status_code == 409
    assert "expired" in refused.json()["message"]
    assert (await get_object(api.client, a))["name"] == "sensor A"


async def test_no_valid_record_nothing_to_confirm_and_discard(api: WholeApi) -> None:
    staged = await upload(api.client, b"id,name\n999999,x\n", "x.csv")
    assert staged.status_code == 201
    body = staged.json()
    assert (body["numberOfValid"], body["numberOfInvalid"]) == (0, 1)
    refused = await api.client.post(f"{BATCH}/{body['id']}/confirm", auth=ADMIN)
    assert refused.status_code == 422
    assert "no valid record" in refused.json()["message"]
    assert (await api.client.delete(f"{BATCH}/{body['id']}", auth=ADMIN)).status_code == 204
    gone = await api.client.get(f"{BATCH}/{body['id']}", auth=ADMIN)
    assert gone.status_code == 404
    assert gone.json()["error"] == "inventory/Not Found"


async def test_a_template_from_a_device_of_another_type_or_tenant(
    api: WholeApi, pool: asyncpg.Pool
) -> None:
    other_type = await make_device(api.client, "meter", type="acme_Meter")
    refused = await api.client.get(
        f"{BATCH}/template", params={"type": SENSOR, "deviceId": other_type}, auth=ADMIN
    )
    assert refused.status_code == 422
    assert "of type 'acme_Meter'" in refused.json()["message"]
    await seed_tenants(pool, "t2")
    theirs = await make_device(api.client, "theirs", auth=("t2/admin", "admin-pw"))
    hidden = await api.client.get(
        f"{BATCH}/template", params={"type": SENSOR, "deviceId": theirs}, auth=ADMIN
    )
    assert hidden.status_code == 404
    bad_format = await api.client.get(
        f"{BATCH}/template", params={"type": SENSOR, "format": "ods"}, auth=ADMIN
    )
    assert bad_format.status_code == 422
    no_type = await api.client.get(f"{BATCH}/template", auth=ADMIN)
    assert no_type.status_code == 422


async def test_a_watcher_reads_but_cannot_upload_confirm_or_discard(api: WholeApi) -> None:
    client = api.client
    created = await client.post(
        USERS, auth=ADMIN, json={"userName": "watcher", "password": WATCHER[1]}
    )
    assert created.status_code == 201, created.text
    given = await client.post(
        f"{USERS}/watcher/roles", auth=ADMIN, json=role_ref("ROLE_INVENTORY_READ")
    )
    assert given.status_code == 201, given.text
    a = await make_device(client, "sensor A")
    staged = await upload(client, f"id,name\n{a},by admin\n".encode(), "x.csv")
    batch_id = staged.json()["id"]

    template = await client.get(f"{BATCH}/template", params={"type": SENSOR}, auth=WATCHER)
    assert template.status_code == 200
    assert (await client.get(f"{BATCH}/{batch_id}", auth=WATCHER)).status_code == 200
    refused = [
        await upload(client, f"id,name\n{a},by watcher\n".encode(), "x.csv", auth=WATCHER),
        await client.post(f"{BATCH}/{batch_id}/confirm", auth=WATCHER),
        await client.delete(f"{BATCH}/{batch_id}", auth=WATCHER),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all(r.json()["error"] == "security/Forbidden" for r in refused)
    assert (await get_object(client, a))["name"] == "sensor A"
    shown = await client.get(f"{BATCH}/{batch_id}", auth=ADMIN)
    assert shown.json()["status"] == "STAGED"


async def test_a_confirmation_that_died_is_resumed_without_applying_twice(
    api: WholeApi, pool: asyncpg.Pool
) -> None:
    a = await make_device(api.client, "sensor A")
    b = await make_device(api.client, "sensor B")
    staged = await upload(api.client, f"id,c8y_Notes\n{a},one\n{b},two\n".encode(), "x.csv")
    batch_id = int(staged.json()["id"])
    store = PgBatchUpdates(pool)
    # An instance claims it, applies the first record and dies (its lease ends at once).
    now = datetime.now(UTC)
    assert await store.claim("t1", batch_id, "admin", now, timedelta(0)) is Claim.CLAIMED
    [first, _] = await store.pending(batch_id, 10)
    await store.apply("t1", batch_id, SENSOR, first)
    # Someone changes A's notes after that: applying A again would now fail.
    await api.client.put(f"{MO}/{a}", auth=ADMIN, json={"c8y_Notes": "by hand"})
    shown = await api.client.get(f"{BATCH}/{batch_id}", auth=ADMIN)
    assert shown.json()["status"] == "APPLYING"
    confirmed = await api.client.post(f"{BATCH}/{batch_id}/confirm", auth=ADMIN)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["result"]["numberOfUpdated"] == 2
    assert confirmed.json()["result"]["numberOfFailed"] == 0
    assert (await get_object(api.client, a))["c8y_Notes"] == "by hand"
    assert (await get_object(api.client, b))["c8y_Notes"] == "two"


async def test_a_confirmation_under_way_is_not_taken_twice(
    api: WholeApi, pool: asyncpg.Pool
) -> None:
    a = await make_device(api.client, "sensor A")
    staged = await upload(api.client, f"id,name\n{a},x\n".encode(), "x.csv")
    batch_id = int(staged.json()["id"])
    now = datetime.now(UTC)
    store = PgBatchUpdates(pool)
    assert await store.claim("t1", batch_id, "admin", now, timedelta(hours=1)) is Claim.CLAIMED
    busy = await api.client.post(f"{BATCH}/{batch_id}/confirm", auth=ADMIN)
    assert busy.status_code == 409
    assert "being applied" in busy.json()["message"]
    assert (await api.client.delete(f"{BATCH}/{batch_id}", auth=ADMIN)).status_code == 409
    assert (await get_object(api.client, a))["name"] == "sensor A"


async def test_a_nul_in_the_file_name_or_no_file_part_is_a_422(api: WholeApi) -> None:
    boundary = "b0undary"

    def body(disposition: str) -> bytes:
        return (
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\nid,name\r\n1,x\r\n"
            f"--{boundary}--\r\n"
        ).encode()

    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    for disposition, words in (
        ('form-data; name="file"; filename="dev\x00ices.csv"', "file name holds a NUL"),
        ('form-data; name="other"; filename="x.csv"', "no file part named file"),
    ):
        refused = await api.client.post(
            BATCH,
            params={"type": SENSOR},
            auth=ADMIN,
            content=body(disposition),
            headers=headers,
        )
        assert refused.status_code == 422, refused.text
        assert words in refused.json()["message"]
    not_multipart = await api.client.post(
        BATCH,
        params={"type": SENSOR},
        auth=ADMIN,
        content=b"id,name\n",
        headers={"Content-Type": "text/csv"},
    )
    assert not_multipart.status_code == 415
    assert not_multipart.json()["error"] == "general/unsupportedMediaType"


async def test_two_confirmations_at_once_apply_it_once(api: WholeApi) -> None:
    ids = [await make_device(api.client, f"sensor {i}") for i in range(20)]
    rows = "".join(f"{i},note {i}\n" for i in ids)
    staged = await upload(api.client, f"id,c8y_Notes\n{rows}".encode(), "x.csv")
    batch_id = staged.json()["id"]
    answers = await asyncio.gather(
        *(api.client.post(f"{BATCH}/{batch_id}/confirm", auth=ADMIN) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    [done] = [a for a in answers if a.status_code == 200]
    assert done.json()["result"]["numberOfUpdated"] == 20
    records = await api.pool.fetch(
        "SELECT outcome FROM batch_update_record WHERE batch_id = $1", int(batch_id)
    )
    assert [r["outcome"] for r in records] == ["UPDATED"] * 20
