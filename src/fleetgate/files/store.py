"""The content-addressed file store: ``<root>/<sha256[:2]>/<sha256>``.

Equal content is stored once. A file is written in two steps so that the database can
decide, under a lock, whether it is kept (see :mod:`fleetgate.services.binaries`):

1. :meth:`FileStore.staged` streams the upload into a temporary file under
   ``<root>/tmp`` (same file system, so the next step is a rename), hashing while it
   writes, and fsyncs it. This is the long part and holds no lock.
2. :meth:`FileStore.keep` gives it its name: a hard link, atomic like a rename, then an
   fsync of the directory; nothing happens when that name exists already. The temporary
   name goes when the ``staged`` block ends, so a caller whose commit lost a race can
   place the same file again after a concurrent deletion removed it.

:meth:`FileStore.discard` removes a file the database says no binary uses. Blocking file
I/O runs in worker threads, :data:`CHUNK` bytes at a time: an upload is never held in
memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from fleetgate.domain.binaries import StagedFile, StoredFile
from fleetgate.domain.errors import TooLarge

#: Bytes per write and per read in a worker thread.
CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _write(fd: int, digest: hashlib._Hash, data: bytearray) -> None:
    digest.update(data)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _finish(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._staging = root / "tmp"

    def path(self, sha256: str) -> Path:
        """Where the file with this SHA-256 (lower-case hex) is stored."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in lower-case hex: {sha256!r}")
        return self._root / sha256[:2] / sha256

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int | None = None) -> StoredFile:
        """Store the content of ``chunks``; :class:`TooLarge` past ``max_size`` bytes.

        Nothing decides here whether the file stays in use: callers that share the store
        with deletions go through :meth:`staged` and :meth:`keep` under the content lock.
        """
        async with self.staged(chunks, max_size=max_size) as staged:
            return await self.keep(staged)

    @contextlib.asynccontextmanager
    async def staged(
        self, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> AsyncIterator[StagedFile]:
        """The content of ``chunks`` in a temporary file, removed on exit unless kept."""
        await asyncio.to_thread(self._staging.mkdir, parents=True, exist_ok=True)
        fd, name = await asyncio.to_thread(tempfile.mkstemp, dir=self._staging, prefix="up-")
        path = Path(name)
        try:
            digest = hashlib.sha256()
            size = 0
            buffer = bytearray()
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise TooLarge(f"the file is larger than {max_size} bytes")
                    buffer += chunk
                    if len(buffer) >= CHUNK:
                        await asyncio.to_thread(_write, fd, digest, buffer)
                        buffer.clear()
                if buffer:
                    await asyncio.to_thread(_write, fd, digest, buffer)
            finally:
                await asyncio.to_thread(_finish, fd)
            yield StagedFile(path, digest.hexdigest(), size)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def keep(self, staged: StagedFile) -> StoredFile:
        """Give a staged file its name in the store (nothing to do if that exists)."""
        await asyncio.to_thread(self._keep, staged)
        return StoredFile(staged.sha256, staged.size)

    def _keep(self, staged: StagedFile) -> None:
        target = self.path(staged.sha256)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged.path, target)
        except FileExistsError:
            return
        _fsync_directory(target.parent)

    async def discard(self, sha256: str) -> bool:
        """Remove the file with this SHA-256; False when there was none.

        Only for a file the database has found unused, under the content lock.
        """

        def unlink() -> bool:
            try:
                self.path(sha256).unlink()
            except FileNotFoundError:
                return False
            return True

        return await asyncio.to_thread(unlink)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def contents(self) -> list[str]:
        """The SHA-256 of every stored file."""

        def scan() -> list[str]:
            if not self._root.is_dir():
                return []
            return sorted(
                p.name
                for d in self._root.iterdir()
                if d.is_dir() and len(d.name) == 2
                for p in d.iterdir()
                if _SHA256.fullmatch(p.name) and p.name[:2] == d.name
            )

        return await asyncio.to_thread(scan)

    async def remove_stale_uploads(self, older_than: float) -> int:
        """Remove temporary files of uploads that died (a crash) ``older_than`` seconds ago.

        Uploads still running elsewhere (another instance on the same store) are younger.
        """

        def sweep() -> int:
            if not self._staging.is_dir():
                return 0
            limit = time.time() - older_than
            removed = 0
            for entry in self._staging.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime < limit:
                        entry.unlink()
                        removed += 1
            return removed

        return await asyncio.to_thread(sweep)
