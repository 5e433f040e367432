"""The bad trusted-certificate corpus (tests/corpora/bad_trusted_certificates.py) against
the whole API on the real PostgreSQL: every case a 4xx with Cumulocity's error body,
nothing stored, the broker never told."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from corpora.bad_trusted_certificates import EDITS, UPLOADS, Body, Case, good_pem, upload
from whole_api import ADMIN, WholeApi, fresh_pool, whole_api

pytestmark = pytest.mark.integration

COLLECTION = "/tenant/tenants/t1/trusted-certificates"
ERROR_MEDIA = "application/vnd.com.nsn.cumulocity.error+json"


@pytest.fixture(scope="module")
async def api(
    postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WholeApi]:
    """One database for the module: every case leaves it as it found it."""
    files = Path(tmp_path_factory.mktemp("files"))
    async with fresh_pool(postgres_admin_url) as pool, whole_api(pool, files) as whole:
        yield whole


async def send(api: WholeApi, method: str, url: str, body: Body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await api.client.request(
        method, url, content=content, headers={"Content-Type": "application/json"}, auth=ADMIN
    )


def assert_refused(response: httpx.Response, case: Case) -> None:
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith(ERROR_MEDIA)
    body = response.json()
    assert set(body) == {"error", "message", "info"}
    assert case.words in body["message"]


def test_the_corpus_is_large_enough() -> None:
    assert len(UPLOADS) >= 30
    for cases in (UPLOADS, EDITS):
        assert len({c.name for c in cases}) == len(cases)


@pytest.mark.parametrize("case", UPLOADS, ids=lambda c: c.name)
async def test_a_bad_upload_is_refused_and_nothing_is_stored(api: WholeApi, case: Case) -> None:
    calls = len(api.fakes.trust_changes.calls)
    assert_refused(await send(api, "POST", COLLECTION, case.body()), case)
    assert await api.pool.fetchval("SELECT count(*) FROM trusted_certificate") == 0
    assert len(api.fakes.trust_changes.calls) == calls


@pytest.fixture(scope="module")
async def stored(api: WholeApi) -> dict[str, object]:
    response = await send(api, "POST", COLLECTION, upload(good_pem()))
    assert response.status_code == 201, response.text
    certificate: dict[str, object] = response.json()
    return certificate


@pytest.mark.parametrize("case", EDITS, ids=lambda c: c.name)
async def test_a_bad_edit_is_refused_and_changes_nothing(
    api: WholeApi, stored: dict[str, object], case: Case
) -> None:
    url = f"{COLLECTION}/{stored['fingerprint']}"
    calls = len(api.fakes.trust_changes.calls)
    assert_refused(await send(api, "PUT", url, case.body()), case)
    assert (await api.client.get(url, auth=ADMIN)).json() == stored
    assert len(api.fakes.trust_changes.calls) == calls
