"""``/inventory/binaries`` and ``/files/{id}`` on the real PostgreSQL and a real file store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.api.services import services_of
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.devices import PgDevices
from fleetgate.db.identity import PgIdentity
from fleetgate.db.inventory import PgInventory
from fleetgate.db.transient import is_transient
from fleetgate.db.users import PgUsers
from fleetgate.domain import signing
from fleetgate.domain.passwords import hash_password
from fleetgate.domain.users import Role
from fleetgate.files.store import FileStore
from fleetgate.services.binaries import Binaries
from fleetgate.services.devices import Devices

from conftest import TEST_BASE_URL, api_client, seed_tenants
from fakes import RecordingBroker

pytestmark = pytest.mark.integration

ADMIN = ("t1/admin", "admin-pw")
OTHER = ("t2/admin", "admin-pw")
READER = ("t1/reader", "reader-pw")
CREATOR = ("t1/creator", "creator-pw")
STRANGER = ("t1/stranger", "stranger-pw")
SECRET = b"test-url-secret"
BOUNDARY = "fleetgate-test-boundary"
MO_MEDIA = "application/vnd.com.nsn.cumulocity.managedObject+json"


@dataclass
class Env:
    api: httpx.AsyncClient
    binaries: Binaries
    store: FileStore
    root: Path


@pytest.fixture
async def env(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[Env]:
    await seed_tenants(pool, "t1", "t2")
    users = PgUsers(pool)
    for name, role in (
        ("reader", Role.INVENTORY_READ),
        ("creator", Role.INVENTORY_CREATE),
        ("stranger", Role.IDENTITY_READ),
    ):
        await users.ensure_user("t1", name, hash_password(f"{name}-pw", log2_n=4), [role])
    root = scratch_dir / "files"
    store = FileStore(root)
    binaries = Binaries(PgBinaries(pool), store)
    devices = Devices(
        PgInventory(pool),
        PgIdentity(pool),
        users,
        PgDevices(pool),
        RecordingBroker(),
        is_transient=is_transient,
        files_released=binaries.release,
    )
    async with api_client(pool) as (app, client):
        services_of(app).binaries = binaries
        services_of(app).devices = devices
        services_of(app).url_secret = SECRET
        yield Env(client, binaries, store, root)


def form(*parts: tuple[str, bytes, dict[str, str]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with the parts in this order: (name, data, headers)."""
    out = bytearray()
    for name, data, headers in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        disposition = f'form-data; name="{name}"'
        if "filename" in headers:
            disposition += f'; filename="{headers["filename"]}"'
        out += f"Content-Disposition: {disposition}\r\n".encode()
        if "type" in headers:
            out += f"Content-Type: {headers['type']}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out), {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def object_part(**obj: Any) -> tuple[str, bytes, dict[str, str]]:
    return ("object", json.dumps(obj).encode(), {"type": "application/json"})


def file_part(data: bytes, **headers: str) -> tuple[str, bytes, dict[str, str]]:
    return ("file", data, headers)


async def upload(
    api: httpx.AsyncClient, data: bytes, *, auth: tuple[str, str] = ADMIN, **obj: Any
) -> dict[str, Any]:
    body, headers = form(object_part(**obj), file_part(data))
    response = await api.post("/inventory/binaries", content=body, headers=headers, auth=auth)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def stored_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("??/*"))


def staging_left(root: Path) -> list[Path]:
    return list((root / "tmp").glob("*")) if (root / "tmp").exists() else []


async def test_upload_with_object_first_or_last_and_download(env: Env) -> None:
    content = b"firmware image \x00\xff" * 100
    body, headers = form(
        object_part(name="image.bin", type="application/x-firmware", c8y_Note={"a": 1}),
        file_part(content, filename="ignored.bin", type="application/octet-stream"),
    )
    first = await env.api.post("/inventory/binaries", content=body, headers=headers, auth=ADMIN)
    assert first.status_code == 201
    assert first.headers["content-type"].startswith(MO_MEDIA)
    created = first.json()
    assert created["name"] == "image.bin"
    assert created["type"] == "application/x-firmware"
    assert created["contentType"] == "application/x-firmware"
    assert created["length"] == len(content)
    assert created["c8y_IsBinary"] == {}
    assert created["c8y_Note"] == {"a": 1}
    assert created["owner"] == "admin"
    assert created["self"] == f"{TEST_BASE_URL}/inventory/binaries/{created['id']}"

    # The object part after the file, as c8y-api sends it; no filename on the file part.
    body, headers = form(
        file_part(b"second", type="text/plain"), object_part(name="notes.txt", type="c8y_upload")
    )
    last = await env.api.post("/inventory/binaries", content=body, headers=headers, auth=ADMIN)
    assert last.status_code == 201
    assert last.json()["contentType"] == "text/plain"
    assert last.json()["type"] == "c8y_upload"

    # No object part at all: the file part's name and type.
    body, headers = form(file_part(b"third", filename="r\u00e9sum\u00e9.pdf", type="app/pdf"))
    bare = await env.api.post("/inventory/binaries", content=body, headers=headers, auth=ADMIN)
    assert bare.status_code == 201
    assert (bare.json()["name"], bare.json()["contentType"]) == ("r\u00e9sum\u00e9.pdf", "app/pdf")

    got = await env.api.get(f"/inventory/binaries/{created['id']}", auth=ADMIN)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"] == "application/x-firmware"
    assert got.headers["content-length"] == str(len(content))
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert got.headers["content-disposition"] == 'attachment; filename="image.bin"'
    unicode_name = await env.api.get(f"/inventory/binaries/{bare.json()['id']}", auth=ADMIN)
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in unicode_name.headers["content-disposition"]

    listed = (await env.api.get("/inventory/binaries?withTotalPages=true", auth=ADMIN)).json()
    assert [m["id"] for m in listed["managedObjects"]] == [
        created["id"],
        last.json()["id"],
        bare.json()["id"],
    ]
    assert listed["statistics"]["totalElements"] == 3
    by_type = (await env.api.get("/inventory/binaries?type=c8y_upload", auth=ADMIN)).json()
    assert [m["name"] for m in by_type["managedObjects"]] == ["notes.txt"]
    # A binary is a managed object too.
    as_object = await env.api.get(f"/inventory/managedObjects/{created['id']}", auth=ADMIN)
    assert as_object.json()["length"] == len(content)
    assert staging_left(env.root) == []


async def test_ranges(env: Env) -> None:
    content = bytes(range(100))
    created = await upload(env.api, content, name="r.bin")
    url = f"/inventory/binaries/{created['id']}"

    async def get(range_header: str) -> httpx.Response:
        return await env.api.get(url, headers={"Range": range_header}, auth=ADMIN)

    part = await get("bytes=10-19")
    assert part.status_code == 206
    assert part.content == content[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100"
    assert part.headers["content-length"] == "10"
    suffix = await get("bytes=-7")
    assert (suffix.status_code, suffix.content) == (206, content[-7:])
    assert suffix.headers["content-range"] == "bytes 93-99/100"
    open_ended = await get("bytes=95-")
    assert (open_ended.status_code, open_ended.content) == (206, content[95:])
    past_end = await get("bytes=90-500")
    assert (past_end.status_code, past_end.content) == (206, content[90:])
    unsatisfiable = await get("bytes=100-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == "bytes */100"
    for ignored in ("bytes=5-2", "bytes=0-1,5-6", "items=0-1", "bytes=x-"):
        whole = await get(ignored)
        assert (whole.status_code, whole.content) == (200, content), ignored


async def test_a_resumed_download_reassembles_the_same_file(env: Env) -> None:
    content = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB, several chunks
    created = await upload(env.api, content, name="big.bin")
    url = f"/inventory/binaries/{created['id']}"
    received = bytearray()
    # The connection "breaks" after 300,001 bytes; the client resumes from there.
    async with env.api.stream("GET", url, auth=ADMIN) as response:
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > 300_000:
                break
    del received[300_001:]
    rest = await env.api.get(url, headers={"Range": f"bytes={len(received)}-"}, auth=ADMIN)
    assert rest.status_code == 206
    received += rest.content
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(content).hexdigest()
    assert rest.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'


async def test_a_large_upload_is_streamed_not_held_in_memory(env: Env) -> None:
    size = 64 * 1024 * 1024
    chunk_size = 256 * 1024
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for i in range(size // chunk_size):
            chunk = i.to_bytes(4, "big") * (chunk_size // 4)
            digest.update(chunk)
            yield chunk
        yield f"\r\n--{BOUNDARY}\r\n".encode()
        yield b'Content-Disposition: form-data; name="object"\r\n\r\n{"name": "huge.img"}'
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    tracemalloc.start()
    try:
        response = await env.api.post(
            "/inventory/binaries", content=body(), headers=headers, auth=ADMIN
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert response.json()["length"] == size
    assert peak < 8 * 1024 * 1024, f"peak Python memory {peak} bytes for a {size}-byte upload"
    assert stored_files(env.root) == [digest.hexdigest()]
    downloaded = hashlib.sha256()
    async with env.api.stream(
        "GET", f"/inventory/binaries/{response.json()['id']}", auth=ADMIN
    ) as got:
        async for chunk in got.aiter_bytes():
            downloaded.update(chunk)
    assert downloaded.hexdigest() == digest.hexdigest()


async def test_replace_gives_new_content_and_drops_the_old_file(env: Env) -> None:
    created = await upload(env.api, b"version one", name="cfg.txt", type="text/plain")
    url = f"/inventory/binaries/{created['id']}"
    old_sha = hashlib.sha256(b"version one").hexdigest()
    assert stored_files(env.root) == [old_sha]
    replaced = await env.api.put(
        url, content=b"version two!", headers={"content-type": "text/x-ini"}, auth=ADMIN
    )
    assert replaced.status_code == 201
    assert replaced.json()["length"] == len(b"version two!")
    assert replaced.json()["contentType"] == "text/x-ini"
    assert replaced.json()["name"] == "cfg.txt"
    got = await env.api.get(url, auth=ADMIN)
    assert (got.content, got.headers["content-type"]) == (b"version two!", "text/x-ini")
    assert stored_files(env.root) == [hashlib.sha256(b"version two!").hexdigest()]
    missing = await env.api.put(
        "/inventory/binaries/999999", content=b"x", headers={"content-type": "a/b"}, auth=ADMIN
    )
    assert missing.status_code == 404


async def test_delete_keeps_a_file_that_another_binary_still_uses(env: Env) -> None:
    shared = b"the same bytes"
    one = await upload(env.api, shared, name="one")
    two = await upload(env.api, shared, name="two")
    sha = hashlib.sha256(shared).hexdigest()
    assert stored_files(env.root) == [sha]
    assert (await env.api.delete(f"/inventory/binaries/{one['id']}", auth=ADMIN)).status_code == 204
    assert stored_files(env.root) == [sha]
    assert (await env.api.get(f"/inventory/binaries/{two['id']}", auth=ADMIN)).content == shared
    assert (await env.api.delete(f"/inventory/binaries/{two['id']}", auth=ADMIN)).status_code == 204
    assert stored_files(env.root) == []
    assert (await env.api.get(f"/inventory/binaries/{two['id']}", auth=ADMIN)).status_code == 404
    assert (await env.api.delete(f"/inventory/binaries/{two['id']}", auth=ADMIN)).status_code == 404


async def test_deleting_a_binary_through_managed_objects_releases_its_file(env: Env) -> None:
    created = await upload(env.api, b"via inventory", name="x")
    gone = await env.api.delete(f"/inventory/managedObjects/{created['id']}", auth=ADMIN)
    assert gone.status_code == 204
    assert stored_files(env.root) == []


async def test_concurrent_delete_and_upload_of_the_same_content_keep_the_file(env: Env) -> None:
    content = b"raced content"
    for _ in range(10):
        first = await upload(env.api, content, name="first")
        body, headers = form(object_part(name="second"), file_part(content))
        deleted, second = await asyncio.gather(
            env.api.delete(f"/inventory/binaries/{first['id']}", auth=ADMIN),
            env.api.post("/inventory/binaries", content=body, headers=headers, auth=ADMIN),
        )
        assert (deleted.status_code, second.status_code) == (204, 201)
        got = await env.api.get(f"/inventory/binaries/{second.json()['id']}", auth=ADMIN)
        assert got.content == content
        await env.api.delete(f"/inventory/binaries/{second.json()['id']}", auth=ADMIN)
    assert stored_files(env.root) == []


async def test_garbage_collection_removes_only_unused_files(env: Env) -> None:
    kept = await upload(env.api, b"in use", name="kept")

    async def one(data: bytes) -> AsyncIterator[bytes]:
        yield data

    orphan = await env.store.put(one(b"left by a crash"))
    assert await env.binaries.collect_garbage() == 1
    assert stored_files(env.root) == [hashlib.sha256(b"in use").hexdigest()]
    assert not env.store.path(orphan.sha256).exists()
    assert (await env.api.get(f"/inventory/binaries/{kept['id']}", auth=ADMIN)).content == b"in use"


async def test_tenants_never_see_each_others_binaries(env: Env) -> None:
    created = await upload(env.api, b"tenant one's", name="mine")
    url = f"/inventory/binaries/{created['id']}"
    assert (await env.api.get(url, auth=OTHER)).status_code == 404
    put = await env.api.put(url, content=b"x", headers={"content-type": "a/b"}, auth=OTHER)
    assert put.status_code == 404
    assert (await env.api.delete(url, auth=OTHER)).status_code == 404
    assert (await env.api.get("/inventory/binaries", auth=OTHER)).json()["managedObjects"] == []
    assert (await env.api.get(url, auth=ADMIN)).content == b"tenant one's"
    service = env.binaries
    assert await service.file_of("t2", int(created["id"])) is None
    assert await service.resolve_url("t2", f"https://x.example{url}") is None
    found = await service.resolve_url("t1", f"https://x.example{url}")
    assert found is not None
    assert found.sha256 == hashlib.sha256(b"tenant one's").hexdigest()
    assert service.local_path(found).read_bytes() == b"tenant one's"
    assert await service.resolve_url("t1", "https://elsewhere.example/firmware.bin") is None


async def test_roles(env: Env) -> None:
    created = await upload(env.api, b"data", name="d")
    url = f"/inventory/binaries/{created['id']}"
    assert (await env.api.get(url, auth=READER)).status_code == 200
    assert (await env.api.get("/inventory/binaries", auth=READER)).status_code == 200
    body, headers = form(object_part(name="n"), file_part(b"x"))
    refused = await env.api.post("/inventory/binaries", content=body, headers=headers, auth=READER)
    assert refused.status_code == 403
    allowed = await env.api.post("/inventory/binaries", content=body, headers=headers, auth=CREATOR)
    assert allowed.status_code == 201
    for auth in (READER, CREATOR):
        put = await env.api.put(url, content=b"y", headers={"content-type": "a/b"}, auth=auth)
        assert put.status_code == 403
        assert (await env.api.delete(url, auth=auth)).status_code == 403
    assert (await env.api.get(url, auth=STRANGER)).status_code == 403
    assert (await env.api.get(url)).status_code == 401


async def test_a_binary_stays_a_binary_through_managed_objects(env: Env) -> None:
    created = await upload(env.api, b"12345", name="f")
    url = f"/inventory/managedObjects/{created['id']}"
    for change in ({"length": 1}, {"contentType": "a/b"}, {"c8y_IsBinary": None}):
        refused = await env.api.put(url, json=change, auth=ADMIN)
        assert refused.status_code == 422, change
        assert "PUT /inventory/binaries" in refused.json()["message"]
    renamed = await env.api.put(url, json={"name": "g", "length": 5, "x": {}}, auth=ADMIN)
    assert renamed.status_code == 200
    assert (await env.api.get(f"/inventory/binaries/{created['id']}", auth=ADMIN)).headers[
        "content-disposition"
    ] == 'attachment; filename="g"'
    fake = await env.api.post(
        "/inventory/managedObjects", json={"name": "fake", "c8y_IsBinary": {}}, auth=ADMIN
    )
    assert fake.status_code == 422
    plain = (
        await env.api.post("/inventory/managedObjects", json={"name": "plain"}, auth=ADMIN)
    ).json()
    made_binary = await env.api.put(
        f"/inventory/managedObjects/{plain['id']}", json={"c8y_IsBinary": {}}, auth=ADMIN
    )
    assert made_binary.status_code == 422
    assert (await env.api.get(f"/inventory/binaries/{plain['id']}", auth=ADMIN)).status_code == 404


async def test_bad_uploads_are_refused_and_leave_nothing_behind(env: Env) -> None:
    async def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await env.api.post("/inventory/binaries", content=body, headers=headers, auth=ADMIN)

    no_file = await post(*form(object_part(name="n")))
    assert no_file.status_code == 422
    assert "no part named file" in no_file.json()["message"]
    not_json = await post(*form(("object", b"{nope", {}), file_part(b"x")))
    assert not_json.status_code == 422
    assert "not valid JSON" in not_json.json()["message"]
    not_object = await post(*form(("object", b"[1]", {}), file_part(b"x")))
    assert not_object.status_code == 422
    no_name = await post(*form(file_part(b"x")))
    assert no_name.status_code == 422
    assert "name" in no_name.json()["message"]
    not_multipart = await env.api.post(
        "/inventory/binaries", content=b"raw", headers={"content-type": "a/b"}, auth=ADMIN
    )
    assert not_multipart.status_code == 415
    body, headers = form(object_part(name="n"), file_part(b"x"))
    truncated = await post(body[:-10], headers)
    assert truncated.status_code == 422
    env.binaries.max_size = 10
    too_big = await post(*form(object_part(name="n"), file_part(b"x" * 11)))
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "general/requestEntityTooLarge"
    assert stored_files(env.root) == []
    assert staging_left(env.root) == []
    assert (await env.api.get("/inventory/binaries", auth=ADMIN)).json()["managedObjects"] == []


def signed(path: str, device: str, expires: int, secret: bytes = SECRET) -> str:
    url = signing.sign(secret, TEST_BASE_URL, "GET", path, device, expires).url
    return url.removeprefix(TEST_BASE_URL)


async def test_devices_download_with_a_signed_url(env: Env) -> None:
    content = b"signed content" * 10
    created = await upload(env.api, content, name="fw.bin")
    other = await upload(env.api, b"other", name="other")
    path = f"/files/{created['id']}"
    later = int(time.time()) + 600

    ok = await env.api.get(signed(path, "dev-1", later))
    assert ok.status_code == 200
    assert ok.content == content
    ranged = await env.api.get(signed(path, "dev-1", later), headers={"Range": "bytes=-4"})
    assert (ranged.status_code, ranged.content) == (206, content[-4:])

    def refused(response: httpx.Response) -> None:
        assert response.status_code == 403
        assert "signature is invalid or has expired" in response.json()["message"]

    refused(await env.api.get(signed(path, "dev-1", int(time.time()) - 1)))
    refused(await env.api.get(signed(path, "dev-1", later).replace("dev-1", "dev-2")))
    refused(await env.api.get(signed(path, "dev-1", later).replace(path, f"/files/{other['id']}")))
    refused(await env.api.get(signed(path, "dev-1", later, secret=b"another secret")))
    refused(await env.api.get(signed(path, "dev-1", later).replace(str(later), str(later + 1))))
    refused(await env.api.get(path))
    refused(await env.api.get(f"{path}?device=dev-1&expires=soon&signature=00"))

    await env.api.delete(f"/inventory/binaries/{created['id']}", auth=ADMIN)
    gone = await env.api.get(signed(path, "dev-1", later))
    assert gone.status_code == 404
