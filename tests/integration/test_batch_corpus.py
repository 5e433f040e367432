"""The bad batch-update files (tests/corpora/bad_batch_files.py) against the whole API on
the real PostgreSQL: each gets a 4xx with Cumulocity's error body naming the problem
(nothing staged), or stages with its one record invalid and named in errmsg.txt; none
is a 500 and none changes a device."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from conftest import seed_tenants
from corpora.bad_batch_files import CASES, BadFile, Devices, InvalidRecord, Refused
from whole_api import ADMIN, WholeApi, fresh_pool, whole_api

pytestmark = pytest.mark.integration

ERROR_MEDIA = "application/vnd.com.nsn.cumulocity.error+json"
INFO = "https://cumulocity.com/guides/reference/rest-implementation/#error-reporting"


@pytest.fixture(scope="module")
async def world(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[WholeApi, Devices]]:
    files = Path(tmp_path_factory.mktemp("files"))
    async with fresh_pool(postgres_admin_url) as pool, whole_api(pool, files) as whole:
        await seed_tenants(pool, "t2")

        async def made(body: dict[str, Any], auth: Any = ADMIN) -> str:
            created = await whole.client.post("/inventory/managedObjects", auth=auth, json=body)
            assert created.status_code == 201, created.text
            return str(created.json()["id"])

        devices = Devices(
            sensor=await made({"name": "s", "type": "acme_Sensor", "c8y_IsDevice": {}}),
            meter=await made({"name": "m", "type": "acme_Meter", "c8y_IsDevice": {}}),
            foreign=await made(
                {"name": "f", "type": "acme_Sensor", "c8y_IsDevice": {}},
                auth=("t2/admin", "admin-pw"),
            ),
            group=await made({"name": "g", "type": "acme_Sensor", "c8y_IsDeviceGroup": {}}),
        )
        yield whole, devices


async def snapshot(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(
        "SELECT id, name, type, fragments::text, last_updated FROM managed_object ORDER BY id"
    )
    return [tuple(r) for r in rows]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 15
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_bad_file_gets_a_clear_answer(
    world: tuple[WholeApi, Devices], case: BadFile
) -> None:
    api, devices = world
    before = await snapshot(api.pool)
    staged_before = await api.pool.fetchval("SELECT count(*) FROM batch_update")
    answer = await api.client.post(
        "/inventory/batchUpdates",
        params={"type": "acme_Sensor"},
        auth=ADMIN,
        files={"file": (case.file_name, case.content(devices))},
    )
    expect = (
        case.expect if isinstance(case.expect, Refused | InvalidRecord) else case.expect(devices)
    )
    if isinstance(expect, Refused):
        assert answer.status_code == expect.status, answer.text
        assert answer.headers["content-type"].startswith(ERROR_MEDIA)
        body = answer.json()
        assert set(body) == {"error", "message", "info"}
        assert body["info"] == INFO
        assert expect.words in body["message"], body["message"]
        assert await api.pool.fetchval("SELECT count(*) FROM batch_update") == staged_before
    else:
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert (body["numberOfValid"], body["numberOfInvalid"]) == (expect.valid, 1), body
        errmsg = await api.client.get(
            f"/inventory/batchUpdates/{body['id']}/errmsg.txt", auth=ADMIN
        )
        assert errmsg.text == expect.line + "\n"
        if expect.valid == 0:
            confirm = await api.client.post(
                f"/inventory/batchUpdates/{body['id']}/confirm", auth=ADMIN
            )
            assert confirm.status_code == 422
        discarded = await api.client.delete(f"/inventory/batchUpdates/{body['id']}", auth=ADMIN)
        assert discarded.status_code == 204
    assert await snapshot(api.pool) == before
