"""The content-addressed file store (``files/store.py``), in a dict."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from itertools import count
from pathlib import Path

from fleetgate.domain.binaries import StagedFile, StoredFile
from fleetgate.domain.errors import TooLarge

from memory.database import SHA256, queries


@queries
class MemoryFiles:
    """A :class:`~fleetgate.services.ports.FileStorage` (``files.store.FileStore``): files
    in a dict (SHA-256 → bytes), uploads staged in another (path → bytes, when staged)
    until their block ends."""

    def __init__(
        self, root: Path = Path("/memory/files"), clock: Callable[[], float] = time.time
    ) -> None:
        self.files: dict[str, bytes] = {}
        self.uploads: dict[Path, tuple[bytes, float]] = {}
        self._root = root
        self._clock = clock
        self._names = count(1)

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in lower-case hex: {sha256!r}")
        return self._root / sha256[:2] / sha256

    async def put(self, chunks: AsyncIterable[bytes], *, max_size: int | None = None) -> StoredFile:
        """Store the content of ``chunks`` with no database asked (``FileStore.put``)."""
        async with self.staged(chunks, max_size=max_size) as staged:
            return await self.keep(staged)

    @contextlib.asynccontextmanager
    async def staged(
        self, chunks: AsyncIterable[bytes], *, max_size: int | None = None
    ) -> AsyncIterator[StagedFile]:
        """The content of ``chunks`` staged, removed on exit unless kept;
        :class:`TooLarge` past ``max_size`` bytes."""
        path = self._root / "tmp" / f"up-{next(self._names)}"
        self.uploads[path] = (b"", self._clock())
        try:
            data = bytearray()
            async for chunk in chunks:
                data += chunk
                if max_size is not None and len(data) > max_size:
                    raise TooLarge(f"the file is larger than {max_size} bytes")
            self.uploads[path] = (bytes(data), self._clock())
            yield StagedFile(path, hashlib.sha256(data).hexdigest(), len(data))
        finally:
            self.uploads.pop(path, None)

    async def keep(self, staged: StagedFile) -> StoredFile:
        """Give a staged file its name in the store (nothing to do if that exists)."""
        if staged.sha256 not in self.files:
            upload = self.uploads.get(staged.path)
            if upload is None:
                raise FileNotFoundError(staged.path)
            self.files[staged.sha256] = upload[0]
        return StoredFile(staged.sha256, staged.size)

    async def discard(self, sha256: str) -> bool:
        return self.files.pop(sha256, None) is not None

    async def contents(self) -> list[str]:
        return sorted(self.files)

    async def remove_stale_uploads(self, older_than: float) -> int:
        """Forget uploads staged more than ``older_than`` seconds ago (a crash's)."""
        limit = self._clock() - older_than
        stale = [p for p, (_, at) in self.uploads.items() if at < limit]
        for path in stale:
            del self.uploads[path]
        return len(stale)
