"""Binaries' rows and their content locks (``db/binaries.py``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fleetgate.domain.binaries import BinaryFile, NewContent, file_fragments
from fleetgate.domain.devices import ManagedObject

from memory.database import SHA256, FileRow, MemoryDatabase, ObjectRow, queries, without_nulls


@queries
class MemoryLockedContent:
    """The :class:`~fleetgate.services.ports.LockedBinaries` (``db.binaries.LockedContent``)
    handed out while content locks are held."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def in_use(self, sha256: str) -> bool:
        """Whether any binary (of any tenant) has this content."""
        return any(f.sha256 == sha256 for f in self._db.binary_files.values())

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
        content: NewContent,
    ) -> ManagedObject:
        """The binary's managed object and its file row, in one transaction."""
        all_fragments = {
            **without_nulls(fragments),
            **file_fragments(content.content_type, content.length),
        }
        with self._db.transaction():
            row = self._db.insert_object(
                tenant_id, name=name, type=type, owner=owner, fragments=all_fragments
            )
            self._db.binary_files[row.id] = _file(content)
        return row.shown()

    async def replace(
        self, tenant_id: str, binary_id: int, expected_sha256: str, content: NewContent
    ) -> ManagedObject | None:
        """New content, if it is still ``expected_sha256`` (None otherwise)."""
        row = self._db.object_in(tenant_id, binary_id)
        current = self._db.binary_files.get(binary_id)
        if row is None or current is None or current.sha256 != expected_sha256:
            return None
        self._db.binary_files[binary_id] = _file(content)
        row.fragments = {**row.fragments, **file_fragments(content.content_type, content.length)}
        row.last_updated = self._db.clock()
        return row.shown()

    async def delete(self, tenant_id: str, binary_id: int, expected_sha256: str) -> bool:
        """Delete the binary if its content is still ``expected_sha256``."""
        current = self._db.binary_files.get(binary_id)
        if (
            self._db.object_in(tenant_id, binary_id) is None
            or current is None
            or current.sha256 != expected_sha256
        ):
            return False
        with self._db.transaction():
            self._db.delete_objects([binary_id])
        return True


def _file(content: NewContent) -> FileRow:
    if not SHA256.fullmatch(content.sha256) or content.length < 0:
        raise ValueError(f"check constraint: binary file {content}")
    return FileRow(content.sha256, content.length, content.content_type)


@queries
class MemoryBinaries:
    """A :class:`~fleetgate.services.ports.BinaryStore` (``PgBinaries``); a content lock
    is an asyncio lock per SHA-256 (``locked``: the contents locked now)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._locks: dict[str, asyncio.Lock] = {}
        self.locked: set[str] = set()

    async def file_of(self, tenant_id: str, binary_id: int) -> BinaryFile | None:
        row = self._db.object_in(tenant_id, binary_id)
        return self._binary(row) if row is not None else None

    async def file_by_id(self, binary_id: int) -> BinaryFile | None:
        """The binary with this id in any tenant (for a signed URL, which names no tenant)."""
        row = self._db.objects.get(binary_id)
        return self._binary(row) if row is not None else None

    async def all_contents(self) -> set[str]:
        return {f.sha256 for f in self._db.binary_files.values()}

    @contextlib.asynccontextmanager
    async def content(self, *sha256: str) -> AsyncIterator[MemoryLockedContent]:
        """Hold the lock of each SHA-256 (taken in one order) for the ``async with`` block."""
        async with contextlib.AsyncExitStack() as held:
            for key in sorted(set(sha256)):
                await held.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
                self.locked.add(key)
                held.callback(self.locked.discard, key)
            yield MemoryLockedContent(self._db)

    def _binary(self, row: ObjectRow) -> BinaryFile | None:
        found = self._db.binary_files.get(row.id)
        if found is None:
            return None
        return BinaryFile(
            row.id, row.tenant_id, row.name, found.sha256, found.length, found.content_type
        )
