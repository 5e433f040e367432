"""The binary use cases on in-memory ports: storing, replacing and deleting files that
are shared by content, what a failed commit leaves, uploads and deletions at once,
releasing files and collecting garbage — and every file placed or removed under its
content lock."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from fleetgate.domain.binaries import BinaryFile, StagedFile, StoredFile
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound, TooLarge
from fleetgate.services.binaries import Binaries

from memory import ForeignKeyViolation, MemoryBinaries, MemoryFiles, MemoryStores

DAY = 24 * 3600.0


class LockedFiles(MemoryFiles):
    """The file store, refusing to place or remove a file whose content lock is not held."""

    def __init__(self, binaries: MemoryBinaries, clock: Ticks) -> None:
        super().__init__(clock=clock)
        self._binaries = binaries

    async def keep(self, staged: StagedFile) -> StoredFile:
        assert staged.sha256 in self._binaries.locked, "placed without the content lock"
        return await super().keep(staged)

    async def discard(self, sha256: str) -> bool:
        assert sha256 in self._binaries.locked, "removed without the content lock"
        return await super().discard(sha256)


class Ticks:
    """The file store's clock (Unix seconds), moved by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    stores: MemoryStores
    files: LockedFiles
    ticks: Ticks
    binaries: Binaries

    async def store(
        self, data: bytes, *, name: str = "f", tenant: str = "t1", pauses: int = 0
    ) -> ManagedObject:
        return await self.binaries.store(
            tenant, name=name, content_type="application/octet-stream",
            chunks=pieces(data, pauses=pauses), owner="admin",
        )  # fmt: skip

    async def file(self, binary: ManagedObject, tenant: str = "t1") -> BinaryFile:
        found = await self.binaries.file_of(tenant, binary.id)
        assert found is not None
        return found


@pytest.fixture
def world() -> World:
    ticks = Ticks()
    stores = MemoryStores.make("t1", "t2")
    files = LockedFiles(stores.binaries, ticks)
    return World(stores, files, ticks, Binaries(stores.binaries, files))


async def pieces(data: bytes, *, size: int = 3, pauses: int = 0) -> AsyncIterator[bytes]:
    """``data`` in chunks of ``size`` bytes, after ``pauses`` turns of the event loop."""
    for _ in range(pauses):
        await asyncio.sleep(0)
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- storing ------------------------------------------------------------------------------


async def test_a_stored_binary_is_a_managed_object_with_its_file(world: World) -> None:
    binary = await world.binaries.store(
        "t1",
        name="fw.bin",
        content_type="application/x-fw",
        chunks=pieces(b"firmware"),
        owner="admin",
        fragments={"c8y_Note": {"a": 1}, "length": 99, "c8y_IsBinary": None},
    )
    assert (binary.name, binary.type, binary.owner) == ("fw.bin", "application/x-fw", "admin")
    assert binary.fragments == {
        "c8y_Note": {"a": 1}, "c8y_IsBinary": {}, "contentType": "application/x-fw",
        "length": 8,
    }  # fmt: skip
    found = await world.file(binary)
    assert found == BinaryFile(binary.id, "t1", "fw.bin", sha(b"firmware"), 8, "application/x-fw")
    assert world.files.files == {sha(b"firmware"): b"firmware"}
    assert world.binaries.local_path(found) == world.files.path(sha(b"firmware"))
    assert world.files.uploads == {}  # nothing left staged


async def test_a_binary_is_found_by_its_url_in_its_tenant_and_by_id_for_signed_urls(
    world: World,
) -> None:
    binary = await world.store(b"data")
    url = f"https://x.example/inventory/binaries/{binary.id}"
    assert await world.binaries.resolve_url("t1", url) == await world.file(binary)
    assert await world.binaries.resolve_url("t2", url) is None
    assert await world.binaries.resolve_url("t1", "https://elsewhere.example/fw.bin") is None
    assert await world.binaries.file_of("t2", binary.id) is None
    assert await world.binaries.file_by_id(binary.id) == await world.file(binary)
    plain = await world.stores.inventory.create(
        "t1", name="plain", type=None, owner=None, fragments={}
    )
    assert await world.binaries.file_by_id(plain.id) is None


async def test_an_upload_staged_first_becomes_a_binary_once_its_metadata_is_known(
    world: World,
) -> None:
    async with world.binaries.staged(pieces(b"notes")) as staged:
        assert (staged.sha256, staged.size) == (sha(b"notes"), 5)
        binary = await world.binaries.create_staged(
            "t1", staged, name="notes.txt", type="c8y_upload", content_type="text/plain",
            owner=None,
        )  # fmt: skip
    assert (binary.type, binary.fragments["contentType"]) == ("c8y_upload", "text/plain")
    assert world.files.files == {sha(b"notes"): b"notes"}
    assert world.files.uploads == {}


async def test_a_file_over_the_limit_is_refused_and_leaves_nothing(world: World) -> None:
    world.binaries.max_size = 10
    with pytest.raises(TooLarge) as refused:
        await world.store(b"x" * 11)
    assert (refused.value.code, refused.value.message) == (
        "general/requestEntityTooLarge", "the file is larger than 10 bytes",
    )  # fmt: skip
    assert (world.files.files, world.files.uploads) == ({}, {})
    assert await world.stores.binaries.all_contents() == set()
    await world.store(b"x" * 10)  # the limit itself is fine


async def test_a_binary_that_cannot_be_committed_leaves_no_file_it_alone_needed(
    world: World,
) -> None:
    with pytest.raises(ForeignKeyViolation):
        await world.store(b"orphan", tenant="gone")
    assert world.files.files == {}
    kept = await world.store(b"shared")
    with pytest.raises(ForeignKeyViolation):
        await world.store(b"shared", tenant="gone")
    assert world.files.files == {sha(b"shared"): b"shared"}  # another binary uses it
    assert (await world.file(kept)).sha256 == sha(b"shared")


# --- deleting -----------------------------------------------------------------------------


async def test_equal_content_is_stored_once_and_goes_with_its_last_binary(world: World) -> None:
    one = await world.store(b"the same bytes", name="one")
    two = await world.store(b"the same bytes", name="two")
    assert list(world.files.files) == [sha(b"the same bytes")]
    await world.binaries.delete("t1", one.id)
    assert list(world.files.files) == [sha(b"the same bytes")]
    assert (await world.file(two)).name == "two"
    with pytest.raises(NotFound):
        await world.binaries.delete("t2", two.id)  # another tenant's
    await world.binaries.delete("t1", two.id)
    assert world.files.files == {}
    with pytest.raises(NotFound) as gone:
        await world.binaries.delete("t1", two.id)
    assert (gone.value.code, gone.value.message) == (
        "inventory/Not Found", f"Binary {two.id} not found",
    )  # fmt: skip
    assert await world.stores.inventory.get("t1", two.id) is None


async def test_a_deletion_and_an_upload_of_the_same_content_at_once_keep_the_file(
    world: World,
) -> None:
    content = b"raced content"
    for pauses in range(6):  # the upload reaches its lock earlier or later
        first = await world.store(content, name="first")
        _, second = await asyncio.gather(
            world.binaries.delete("t1", first.id),
            world.store(content, name="second", pauses=pauses),
        )
        assert world.files.files == {sha(content): content}, pauses
        assert (await world.file(second)).sha256 == sha(content)
        await world.binaries.delete("t1", second.id)
    assert world.files.files == {}


async def test_files_of_binaries_deleted_with_managed_objects_are_released(
    world: World,
) -> None:
    alone = await world.store(b"alone")
    shared_one = await world.store(b"shared")
    await world.store(b"shared")
    released: list[str] = []
    for binary in (alone, shared_one):
        deleted = await world.stores.inventory.delete("t1", binary.id)
        assert deleted is not None
        released.extend(deleted.file_sha256s)
    assert released == [sha(b"alone"), sha(b"shared")]
    await world.binaries.release(released)
    assert world.files.files == {sha(b"shared"): b"shared"}


# --- replacing ----------------------------------------------------------------------------


async def test_replacing_gives_new_content_and_drops_the_old_file(world: World) -> None:
    binary = await world.binaries.store(
        "t1", name="cfg.txt", content_type="text/plain", chunks=pieces(b"version one"),
        owner=None,
    )  # fmt: skip
    replaced = await world.binaries.replace("t1", binary.id, "text/x-ini", pieces(b"version 2!"))
    assert replaced.name == "cfg.txt"
    assert (replaced.fragments["contentType"], replaced.fragments["length"]) == ("text/x-ini", 10)
    assert (await world.file(binary)).sha256 == sha(b"version 2!")
    assert world.files.files == {sha(b"version 2!"): b"version 2!"}
    again = await world.binaries.replace("t1", binary.id, "text/x-ini", pieces(b"version 2!"))
    assert again.fragments == replaced.fragments  # its own content again: the file stays
    assert world.files.files == {sha(b"version 2!"): b"version 2!"}
    assert world.files.uploads == {}


async def test_replacing_keeps_an_old_file_another_binary_uses(world: World) -> None:
    one = await world.store(b"common")
    two = await world.store(b"common")
    await world.binaries.replace("t1", one.id, "a/b", pieces(b"own"))
    assert set(world.files.files) == {sha(b"common"), sha(b"own")}
    await world.binaries.replace("t1", two.id, "a/b", pieces(b"own"))
    assert set(world.files.files) == {sha(b"own")}


async def test_only_an_existing_binary_of_the_tenant_is_replaced(world: World) -> None:
    binary = await world.store(b"mine")
    for tenant, binary_id in (("t1", 999), ("t2", binary.id)):
        with pytest.raises(NotFound, match=f"Binary {binary_id} not found"):
            await world.binaries.replace(tenant, binary_id, "a/b", pieces(b"theirs"))
    assert world.files.files == {sha(b"mine"): b"mine"}
    assert world.files.uploads == {}


async def test_replacements_at_once_end_with_one_content_and_only_its_file(
    world: World,
) -> None:
    binary = await world.store(b"v0")
    replaced = await asyncio.gather(
        *(
            world.binaries.replace("t1", binary.id, "a/b", pieces(data, pauses=1))
            for data in (b"v1", b"v2", b"v3")
        )
    )
    final = await world.file(binary)
    assert final.sha256 in {sha(b"v1"), sha(b"v2"), sha(b"v3")}
    assert list(world.files.files) == [final.sha256]
    assert replaced[-1].fragments["length"] == final.length


# --- garbage ------------------------------------------------------------------------------


async def test_garbage_collection_removes_only_files_no_binary_uses(world: World) -> None:
    kept = await world.store(b"in use")
    world.files.files[sha(b"left by a crash")] = b"left by a crash"
    assert await world.binaries.collect_garbage() == 1
    assert list(world.files.files) == [sha(b"in use")]
    assert (await world.file(kept)).sha256 == sha(b"in use")
    assert await world.binaries.collect_garbage() == 0


async def test_garbage_collection_removes_uploads_a_crash_left_a_day_ago(world: World) -> None:
    async with world.files.staged(pieces(b"dead")) as dead:
        world.ticks.now += DAY + 1
        async with world.files.staged(pieces(b"young")) as young:
            await world.binaries.collect_garbage()
            assert list(world.files.uploads) == [young.path]
        with pytest.raises(FileNotFoundError):
            async with world.stores.binaries.content(dead.sha256):
                await world.files.keep(dead)
