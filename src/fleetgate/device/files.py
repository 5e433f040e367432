"""Files over HTTP: downloads that resume and verify, snapshot uploads.

:func:`download` brings a file to disk; :func:`fetch` brings one small enough to hold
into memory (a configuration file), with the same resumes and checks.

A download goes into ``<dest>.part``. When that file exists already (an interrupted
download, this run or an earlier one), the request asks for the rest with
``Range: bytes=<n>-``; a server answering 200 instead of 206 sends the whole file again,
and the part is rewritten. The body is streamed to disk, never held in memory, then hashed
from disk. Only a file whose size and SHA-256 match the command becomes ``dest``. A
mismatch removes the part; when the part came from before the call (perhaps another file
downloaded to the same ``dest``) the download starts over once, otherwise
:class:`FileVerificationFailed` is raised, its message meant as the operation's failure
reason.

A connection that breaks mid-body, or a body that ends short, is retried (resuming) up
to ``attempts`` times; an HTTP error status is not (an expired URL stays expired: a
repeated command brings a fresh one), except 5xx. A service that cannot be reached at all
(connection refused or connect timeout: it is restarting, its port not yet open) is waited
out longer: up to :data:`UNREACHABLE_ATTEMPTS` tries, the pause doubling up to
:data:`MAX_PAUSE` (about 20 s with the default ``retry_delay``), since a command received
just before the service went down would otherwise fail for a restart of a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from fleetgate.device.commands import FileInfo, UploadTarget
from fleetgate.device.errors import FileVerificationFailed, TransferFailed

__all__ = ["MAX_PAUSE", "UNREACHABLE_ATTEMPTS", "download", "fetch", "upload", "verify_file"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
#: A read/connect timeout; a slow but steady download is never cut by it.
_TIMEOUT = httpx.Timeout(30.0)


#: Tries while the service cannot be reached (refused, connect timeout), whatever
#: ``attempts`` says: with the default 0.5 s first pause, 0.5 + 1 + 2 + 4 + 4 + 4 + 4 = 19.5 s of
#: waiting, which a restarting service (seconds) fits in.
UNREACHABLE_ATTEMPTS = 8
#: The longest pause between two tries.
MAX_PAUSE = 4.0


class _Interrupted(Exception):
    """The body ended before the file was complete; resuming may finish it."""


class _Tries:
    """The tries of one transfer: a failure that reached the service (a broken body, a
    5xx, a read error) uses one of ``attempts``; a service not reachable at all uses one of
    :data:`UNREACHABLE_ATTEMPTS` (or ``attempts`` if larger). Before each try but the
    first, a pause doubling from ``retry_delay`` up to :data:`MAX_PAUSE`."""

    def __init__(self, attempts: int, retry_delay: float) -> None:
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.made = 0
        self.reached = 0
        self.unreachable = 0
        self.problem = "no attempt made"

    async def another(self) -> bool:
        """Whether to try (again); pauses first when this is a retry."""
        if self.reached >= self.attempts or self.unreachable >= max(
            self.attempts, UNREACHABLE_ATTEMPTS
        ):
            return False
        if self.made:
            await asyncio.sleep(min(self.retry_delay * 2 ** (self.made - 1), MAX_PAUSE))
        self.made += 1
        return True

    def failed(self, problem: str | BaseException) -> None:
        if isinstance(problem, BaseException):
            text = str(problem) or type(problem).__name__
            if isinstance(problem, (httpx.ConnectError, httpx.ConnectTimeout)):
                self.unreachable += 1
                self.problem = text
                return
            problem = text
        self.reached += 1
        self.problem = problem


async def download(
    file: FileInfo,
    dest: Path,
    *,
    http: httpx.AsyncClient | None = None,
    attempts: int = 3,
    retry_delay: float = 0.5,
) -> Path:
    """Download ``file`` to ``dest`` (resuming ``dest.part``), verify it; return ``dest``.

    Raises :class:`FileVerificationFailed` (size or SHA-256 wrong) or
    :class:`TransferFailed` (HTTP error status, or the network kept failing).
    """
    if http is None:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as own:
            return await download(file, dest, http=own, attempts=attempts, retry_delay=retry_delay)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    tries = _Tries(attempts, retry_delay)
    # A part from before this call may be of another file that had the same ``dest``.
    inherited = part.exists()
    while await tries.another():
        try:
            await _fetch(http, file, _Part(part))
        except (_Interrupted, httpx.TransportError) as exc:
            tries.failed(exc)
            log.info("download of %s interrupted (%s); resuming", _shown(file.url), tries.problem)
            continue
        try:
            verify_file(file, part)
        except FileVerificationFailed as exc:
            part.unlink(missing_ok=True)
            if not inherited:
                raise
            inherited = False
            tries.failed(str(exc))
            log.info("the resumed %s is not the announced file; starting over", part)
            continue
        part.replace(dest)
        return dest
    raise TransferFailed(
        f"Download of {_shown(file.url)} failed after {tries.made} attempts: {tries.problem}"
    )


async def fetch(
    file: FileInfo,
    *,
    http: httpx.AsyncClient | None = None,
    attempts: int = 3,
    retry_delay: float = 0.5,
) -> bytes:
    """Download ``file`` into memory, verify it, return its bytes: for files small enough
    to hold (a configuration file). Resumes and raises as :func:`download` does."""
    if http is None:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as own:
            return await fetch(file, http=own, attempts=attempts, retry_delay=retry_delay)
    buffer = _Buffer()
    tries = _Tries(attempts, retry_delay)
    while await tries.another():
        try:
            await _fetch(http, file, buffer)
        except (_Interrupted, httpx.TransportError) as exc:
            tries.failed(exc)
            log.info("download of %s interrupted (%s); resuming", _shown(file.url), tries.problem)
            continue
        data = bytes(buffer.data)
        _verify(file, len(data), hashlib.sha256(data).hexdigest())
        return data
    raise TransferFailed(
        f"Download of {_shown(file.url)} failed after {tries.made} attempts: {tries.problem}"
    )


def verify_file(file: FileInfo, path: Path) -> None:
    """FileVerificationFailed unless ``path`` has ``file``'s size and SHA-256."""
    size = path.stat().st_size
    if size != file.size:
        raise FileVerificationFailed(f"Size mismatch: expected {file.size} bytes, got {size}")
    _verify(file, size, _sha256_of(path))


def _verify(file: FileInfo, size: int, digest: str) -> None:
    if size != file.size:
        raise FileVerificationFailed(f"Size mismatch: expected {file.size} bytes, got {size}")
    if digest != file.sha256.lower():
        raise FileVerificationFailed(
            f"SHA-256 mismatch: expected {file.sha256.lower()}, got {digest}"
        )


class _Part:
    """Where a download goes: ``<dest>.part`` on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def writing(self, at: int) -> Iterator[Callable[[bytes], object]]:
        with self.path.open("r+b" if self.path.exists() else "wb") as out:
            out.truncate(at)
            out.seek(at)
            yield out.write


class _Buffer:
    """Where a fetch goes: memory."""

    def __init__(self) -> None:
        self.data = bytearray()

    def size(self) -> int:
        return len(self.data)

    def clear(self) -> None:
        self.data.clear()

    @contextlib.contextmanager
    def writing(self, at: int) -> Iterator[Callable[[bytes], object]]:
        del self.data[at:]
        yield self.data.extend


async def _fetch(http: httpx.AsyncClient, file: FileInfo, sink: _Part | _Buffer) -> None:
    """Bring ``sink`` to ``file.size`` bytes from the server, resuming what is there."""
    have = sink.size()
    if have > file.size:
        sink.clear()
        have = 0
    if have == file.size and have > 0:
        return  # complete already (a crash between the last byte and the rename)
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with http.stream("GET", file.url, headers=headers) as response:
        if response.status_code == 416 and have:
            sink.clear()  # the server does not agree with our part: start over
            raise _Interrupted("the server refused to resume (HTTP 416)")
        if response.status_code >= 500:
            raise _Interrupted(f"HTTP {response.status_code}")
        if response.status_code not in (200, 206):
            raise TransferFailed(
                f"Download of {_shown(file.url)} failed: HTTP {response.status_code}"
            )
        # 200: the whole file again; 206: the part from where the server says.
        start = _range_start(response) if response.status_code == 206 else 0
        if start > have:
            sink.clear()
            raise _Interrupted(f"the server resumed at byte {start}, not {have}")
        have, too_long = start, False
        with sink.writing(have) as write:
            async for chunk in response.aiter_bytes():  # as it arrives: a break loses nothing
                have += len(chunk)
                if have > file.size:
                    too_long = True
                    break
                write(chunk)
    if too_long:
        sink.clear()
        raise FileVerificationFailed(
            f"Size mismatch: the server sent more than the expected {file.size} bytes"
        )
    if have < file.size:
        raise _Interrupted(f"the body ended after {have} of {file.size} bytes")


def _range_start(response: httpx.Response) -> int:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", "").strip())
    if match is None:
        raise _Interrupted("a 206 answer without a usable Content-Range")
    return int(match.group(1))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK * 16):
            digest.update(chunk)
    return digest.hexdigest()


async def upload(
    target: UploadTarget,
    data: bytes | Path,
    *,
    http: httpx.AsyncClient | None = None,
    content_type: str = "application/octet-stream",
    attempts: int = 3,
    retry_delay: float = 0.5,
) -> None:
    """Send ``data`` (bytes, or a file streamed from disk) to ``target``.

    A network failure is retried (a second PUT replaces the first); an HTTP error status
    raises :class:`TransferFailed` at once.
    """
    if http is None:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as own:
            await upload(
                target,
                data,
                http=own,
                content_type=content_type,
                attempts=attempts,
                retry_delay=retry_delay,
            )
            return
    tries = _Tries(attempts, retry_delay)
    while await tries.another():
        headers = {"Content-Type": content_type}
        content: bytes | AsyncIterator[bytes]
        if isinstance(data, Path):
            headers["Content-Length"] = str(data.stat().st_size)
            content = _chunks_of(data)
        else:
            content = data
        try:
            response = await http.request(
                target.method, target.url, content=content, headers=headers
            )
        except httpx.TransportError as exc:
            tries.failed(exc)
            continue
        if response.status_code >= 500:
            tries.failed(f"HTTP {response.status_code}")
            continue
        if not response.is_success:
            raise TransferFailed(
                f"Upload to {_shown(target.url)} failed: HTTP {response.status_code}"
            )
        return
    raise TransferFailed(
        f"Upload to {_shown(target.url)} failed after {tries.made} attempts: {tries.problem}"
    )


async def _chunks_of(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            yield chunk


def _shown(url: str) -> str:
    """The URL without its query: a signed URL's signature has no place in a log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
