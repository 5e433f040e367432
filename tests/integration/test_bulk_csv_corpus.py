"""The bad CSV corpus (tests/corpora/bad_csv.py) against the whole API on the real
PostgreSQL: a whole-file refusal stores nothing; a failing row stores nothing of itself
and stops no other row; the answer says what is wrong with the file, never what the
database said."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from corpora.bad_csv import CASES, CsvCase, Rows, WholeFile
from whole_api import ADMIN, WholeApi, fresh_pool, whole_api

pytestmark = pytest.mark.integration

URL = "/devicecontrol/bulkNewDeviceRequests"
MANAGEMENT = ("management/admin", "mgmt-pw")
ERROR_MEDIA = "application/vnd.com.nsn.cumulocity.error+json"
TABLES = ("managed_object", "external_id", "app_user", "managed_object_child")


@pytest.fixture(scope="module")
async def api(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WholeApi]:
    files = Path(tmp_path_factory.mktemp("files"))
    async with fresh_pool(postgres_admin_url) as pool, whole_api(pool, files) as whole:
        yield whole


async def upload(api: WholeApi, content: bytes, auth: tuple[str, str]) -> httpx.Response:
    files = {"file": ("devices.csv", content, "text/csv")}
    return await api.client.post(URL, files=files, auth=auth)


async def counts(pool: asyncpg.Pool) -> dict[str, int]:
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}  # noqa: S608


async def stored_ids(pool: asyncpg.Pool, prefix: str) -> tuple[set[str], set[str]]:
    """(c8y_Serial external ids, device user names) starting with ``prefix``."""
    serials = await pool.fetch(
        "SELECT value FROM external_id WHERE type = 'c8y_Serial' AND starts_with(value, $1)",
        prefix,
    )
    users = await pool.fetch(
        "SELECT username FROM app_user WHERE starts_with(username, $1)", f"device_{prefix}"
    )
    return {r["value"] for r in serials}, {r["username"].removeprefix("device_") for r in users}


def test_the_corpus_is_large_enough() -> None:
    bad = [c for c in CASES if isinstance(c.expect, WholeFile) or c.expect.failed]
    assert len(bad) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
async def test_a_bad_file_gets_a_clear_answer_and_nothing_half_written(
    api: WholeApi, index: int
) -> None:
    case: CsvCase = CASES[index]
    prefix = f"c{index}-"
    before = await counts(api.pool)
    auth = MANAGEMENT if case.management else ADMIN
    response = await upload(api, case.content.replace(b"{p}", prefix.encode()), auth)
    if isinstance(case.expect, WholeFile):
        assert response.status_code == case.expect.status, response.text
        assert response.headers["content-type"].startswith(ERROR_MEDIA)
        body = response.json()
        assert set(body) == {"error", "message", "info"}
        assert case.expect.words in body["message"]
        assert await counts(api.pool) == before
        return
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    expect: Rows = case.expect
    failures = {
        int(f["line"].split(":")[0].removeprefix("line ")): f for f in result["failedCreationList"]
    }
    assert sorted(failures) == sorted(expect.failed), failures
    for line, words in expect.failed.items():
        reason = failures[line]["failureReason"]
        assert words in reason, reason
        assert "database" not in reason
        assert "abcd" not in failures[line]["line"]  # passwords are never echoed
    assert result["numberOfCreated"] == len(expect.created)
    assert result["numberOfFailed"] == len(expect.failed)
    assert result["numberOfAll"] == len(expect.created) + len(expect.failed)
    wanted = {prefix + i for i in expect.created}
    assert await stored_ids(api.pool, prefix) == (wanted, wanted)


async def test_a_row_the_database_still_refuses_says_so_without_its_words(
    pool: asyncpg.Pool, scratch_dir: Path
) -> None:
    """A rule the domain does not know (here: one added to the table by hand) fails the
    row with a message of ours; the database's message stays in the log."""
    await pool.execute(
        "ALTER TABLE managed_object ADD CONSTRAINT corpus_no_forbidden"
        " CHECK (name IS DISTINCT FROM 'forbidden')"
    )
    async with whole_api(pool, scratch_dir / "files") as whole:
        content = b"ID;CREDENTIALS;TYPE;NAME\nx1;abcd1234;t;fine\nx2;abcd1234;t;forbidden\n"
        response = await upload(whole, content, ADMIN)
    assert response.status_code == 201, response.text
    [failure] = response.json()["failedCreationList"]
    assert failure["deviceId"] == "x2"
    assert failure["failureReason"] == (
        "the row could not be stored and nothing of it was written; the service log has the"
        " reason (line 3)"
    )
    assert await stored_ids(pool, "x") == ({"x1"}, {"x1"})
