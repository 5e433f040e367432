"""Binary use cases: storing, replacing, finding and deleting files of ``/inventory/binaries``.

A binary is a managed object and a ``binary_file`` row, created in one transaction; its
bytes live in the content-addressed :class:`FileStore`. Races between an upload and a
deletion of the same content are settled by the content lock (:mod:`fleetgate.db.binaries`):

- an upload streams into a temporary file with no lock held, then, under the lock of its
  SHA-256, moves the file to its name and commits its row;
- a deletion commits, then, under the lock, removes the file if no row names it any more.

So a deletion either sees the new row (and keeps the file) or removes the file before
the upload places its own copy. A file is never removed while a committed binary names
it; a crash can at worst leave an unused file, which :meth:`Binaries.collect_garbage` finds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fleetgate.domain.binaries import (
    FILE_FRAGMENTS,
    BinaryFile,
    NewContent,
    StagedFile,
    binary_id_of_url,
)
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import NotFound
from fleetgate.services.coalescing import SharedReads
from fleetgate.services.ports import BinaryStore, FileStorage

log = logging.getLogger(__name__)

#: Largest file accepted by default (413 beyond it).
MAX_SIZE = 8 * 1024**3
#: Temporary files of uploads older than this are from a crash (one day).
_STALE_UPLOAD = 24 * 3600.0
#: How often a replace or delete retries when the content changed under it.
_ATTEMPTS = 5


def binary_not_found(binary_id: int) -> NotFound:
    return NotFound(f"Binary {binary_id} not found", code="inventory/Not Found")


class Binaries:
    def __init__(self, db: BinaryStore, files: FileStorage, *, max_size: int = MAX_SIZE) -> None:
        self._db = db
        self._files = files
        self.max_size = max_size
        # Every POST of a firmware operation and every device's download read the same row.
        self._file_of = SharedReads(self._read_file_of)
        self._file_by_id = SharedReads(db.file_by_id)

    # -- writing ------------------------------------------------------------------------

    async def store(
        self,
        tenant_id: str,
        *,
        name: str,
        content_type: str,
        chunks: AsyncIterable[bytes],
        owner: str | None,
        fragments: dict[str, Any] | None = None,
    ) -> ManagedObject:
        """A new binary with the content of ``chunks`` (type = its content type)."""
        async with self._files.staged(chunks, max_size=self.max_size) as staged:
            return await self.create_staged(
                tenant_id,
                staged,
                name=name,
                type=content_type,
                content_type=content_type,
                owner=owner,
                fragments=fragments,
            )

    def staged(self, chunks: AsyncIterable[bytes]) -> AbstractAsyncContextManager[StagedFile]:
        """``async with``: the content of ``chunks`` in a temporary file, for
        :meth:`create_staged` once the rest of an upload is known."""
        return self._files.staged(chunks, max_size=self.max_size)

    async def create_staged(
        self,
        tenant_id: str,
        staged: StagedFile,
        *,
        name: str | None,
        type: str | None,
        content_type: str,
        owner: str | None,
        fragments: dict[str, Any] | None = None,
    ) -> ManagedObject:
        """The binary of a staged file: placed in the store and committed under its lock."""
        extra = {k: v for k, v in (fragments or {}).items() if k not in FILE_FRAGMENTS}
        content = NewContent(staged.sha256, staged.size, content_type)
        async with self._db.content(staged.sha256) as locked:
            await self._files.keep(staged)
            try:
                return await locked.create(
                    tenant_id, name=name, type=type, owner=owner, fragments=extra, content=content
                )
            except BaseException:
                if not await locked.in_use(staged.sha256):
                    await self._files.discard(staged.sha256)
                raise

    async def replace(
        self, tenant_id: str, binary_id: int, content_type: str, chunks: AsyncIterable[bytes]
    ) -> ManagedObject:
        """New content for an existing binary; the old file goes when no binary uses it."""
        await self._existing(tenant_id, binary_id)
        async with self._files.staged(chunks, max_size=self.max_size) as staged:
            content = NewContent(staged.sha256, staged.size, content_type)
            for _ in range(_ATTEMPTS):
                old = await self._existing(tenant_id, binary_id)
                async with self._db.content(old.sha256, staged.sha256) as locked:
                    await self._files.keep(staged)
                    replaced = await locked.replace(tenant_id, binary_id, old.sha256, content)
                    if replaced is None:
                        if not await locked.in_use(staged.sha256):
                            await self._files.discard(staged.sha256)
                        continue
                    if not await locked.in_use(old.sha256):
                        await self._files.discard(old.sha256)
                    return replaced
        raise RuntimeError(f"binary {binary_id} kept changing while it was replaced")

    async def delete(self, tenant_id: str, binary_id: int) -> None:
        """Delete the binary; its file goes when no other binary has the same content."""
        for _ in range(_ATTEMPTS):
            found = await self._existing(tenant_id, binary_id)
            async with self._db.content(found.sha256) as locked:
                if not await locked.delete(tenant_id, binary_id, found.sha256):
                    continue
                if not await locked.in_use(found.sha256):
                    await self._files.discard(found.sha256)
                return
        raise RuntimeError(f"binary {binary_id} kept changing while it was deleted")

    async def release(self, sha256s: Iterable[str]) -> None:
        """Remove the files of these contents that no binary uses any more (after binaries
        went with a managed object deleted through ``/inventory/managedObjects``)."""
        for sha256 in sorted(set(sha256s)):
            async with self._db.content(sha256) as locked:
                if not await locked.in_use(sha256):
                    await self._files.discard(sha256)

    async def collect_garbage(self) -> int:
        """Remove stored files no binary uses (left by a crash, or by a deletion made
        without :meth:`release`) and dead uploads; the number of files removed."""
        await self._files.remove_stale_uploads(_STALE_UPLOAD)
        used = await self._db.all_contents()
        unused = [s for s in await self._files.contents() if s not in used]
        removed = 0
        for sha256 in unused:
            async with self._db.content(sha256) as locked:
                if not await locked.in_use(sha256) and await self._files.discard(sha256):
                    removed += 1
        if removed:
            log.info("removed %d unused files from the file store", removed)
        return removed

    # -- reading ------------------------------------------------------------------------

    async def file_of(self, tenant_id: str, binary_id: int) -> BinaryFile | None:
        return await self._file_of.get((tenant_id, binary_id))

    async def file_by_id(self, binary_id: int) -> BinaryFile | None:
        """The binary a signed download URL names: the signature, minted for one tenant's
        command, is the authorisation, so no tenant is asked for."""
        return await self._file_by_id.get(binary_id)

    async def resolve_url(self, tenant_id: str, url: str) -> BinaryFile | None:
        """The binary ``url`` names (path ``/inventory/binaries/<id>``) in this tenant."""
        binary_id = binary_id_of_url(url)
        if binary_id is None:
            return None
        return await self._file_of.get((tenant_id, binary_id))

    async def _read_file_of(self, key: tuple[str, int]) -> BinaryFile | None:
        return await self._db.file_of(*key)

    def local_path(self, file: BinaryFile) -> Path:
        return self._files.path(file.sha256)

    async def _existing(self, tenant_id: str, binary_id: int) -> BinaryFile:
        found = await self._db.file_of(tenant_id, binary_id)
        if found is None:
            raise binary_not_found(binary_id)
        return found
