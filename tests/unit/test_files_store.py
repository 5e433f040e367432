"""The content-addressed file store on a real (temporary) file system."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleetgate.domain.errors import TooLarge
from fleetgate.files.store import CHUNK, FileStore


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def leftovers(root: Path) -> list[Path]:
    return list((root / "tmp").iterdir())


async def test_put_names_the_file_by_its_sha256_and_stores_equal_content_once(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path)
    content = b"a" * (CHUNK + 5) + b"tail"
    stored = await store.put(chunks(content[:10], content[10:]))
    sha = hashlib.sha256(content).hexdigest()
    assert (stored.sha256, stored.size) == (sha, len(content))
    assert store.path(sha) == tmp_path / sha[:2] / sha
    assert store.path(sha).read_bytes() == content
    again = await store.put(chunks(content))
    assert again == stored
    assert await store.contents() == [sha]
    assert leftovers(tmp_path) == []


async def test_an_empty_file_is_a_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    stored = await store.put(chunks())
    assert stored.size == 0
    assert store.path(stored.sha256).read_bytes() == b""


async def test_too_large_stops_and_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    with pytest.raises(TooLarge, match="larger than 4 bytes"):
        await store.put(chunks(b"abc", b"de"), max_size=4)
    assert await store.contents() == []
    assert leftovers(tmp_path) == []


async def test_a_staged_file_can_be_kept_again_after_it_was_discarded(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    async with store.staged(chunks(b"content")) as staged:
        await store.keep(staged)
        assert await store.discard(staged.sha256)
        assert not await store.exists(staged.sha256)
        await store.keep(staged)
        assert await store.exists(staged.sha256)
    assert leftovers(tmp_path) == []
    assert not await store.discard("0" * 64)


async def test_stale_uploads_are_swept(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "up-dead").write_bytes(b"x")
    assert await store.remove_stale_uploads(3600) == 0
    assert await store.remove_stale_uploads(-1) == 1
    assert leftovers(tmp_path) == []


def test_paths_take_only_sha256_hex(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    for bad in ("../../etc/passwd", "A" * 64, "0" * 63):
        with pytest.raises(ValueError, match="SHA-256"):
            store.path(bad)
