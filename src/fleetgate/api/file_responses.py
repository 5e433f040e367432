"""Sending a stored file over HTTP: streamed in chunks, with a single byte ``Range``.

``Range`` follows RFC 9110 §14 for one range: ``bytes=a-b``, ``bytes=a-`` and
``bytes=-n`` answer 206 with ``Content-Range``; a range that starts past the end (or an
empty suffix) answers 416 with ``Content-Range: bytes */<size>``. A header that is
malformed, names another unit or asks for several ranges is ignored, and the whole file
is sent (200), as RFC 9110 allows: a resuming client needs one range, and multipart
answers would only add code.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import quote

from starlette.responses import Response, StreamingResponse

#: Bytes read from the file (in a worker thread) and sent at a time.
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end``, both included."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """A well-formed range that selects nothing of the file (answer 416)."""


UNSATISFIABLE: Final = Unsatisfiable()
_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)


def parse_range(header: str | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The one byte range that ``header`` asks of a file of ``size`` bytes.

    None means "send the whole file": no header, a malformed one, another unit, several
    ranges, or ``last < first``.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    found = _SPEC.fullmatch(spec.strip(" \t"))
    if found is None:
        return None
    first, last = found.group(1), found.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)


def content_disposition(filename: str | None) -> str:
    """``attachment`` with the file name: an ASCII fallback, and ``filename*`` (RFC 6266)
    when the name has other characters."""
    if not filename:
        return "attachment"
    cleaned = "".join(c for c in filename if c.isprintable())
    fallback = "".join(c if c.isascii() and c not in '"\\' else "_" for c in cleaned)
    value = f'attachment; filename="{fallback}"'
    if fallback != cleaned:
        value += f"; filename*=UTF-8''{quote(cleaned, safe='')}"
    return value


def _open_at(path: Path, start: int, first: int) -> tuple[BinaryIO, bytes]:
    """``path`` opened, and its first ``first`` bytes from ``start`` (one trip to a thread)."""
    handle: BinaryIO = path.open("rb")
    try:
        handle.seek(start)
        return handle, handle.read(first)
    except BaseException:
        handle.close()
        raise


async def _chunks(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    # Blocking file calls run in a thread; a file of one chunk costs one trip there
    # (closing a regular file does not block).
    handle, chunk = await asyncio.to_thread(_open_at, path, start, min(CHUNK, length))
    try:
        left = length
        while left > 0:
            if not chunk:
                raise OSError(f"{path} ended {left} bytes early")
            left -= len(chunk)
            yield chunk
            if left > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, left))
    finally:
        handle.close()


def file_response(
    path: Path,
    *,
    size: int,
    sha256: str,
    content_type: str,
    filename: str | None,
    range_header: str | None,
) -> Response:
    """The file at ``path`` (``size`` bytes), or the one range of it that was asked."""
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256}"',
        "Content-Disposition": content_disposition(filename),
    }
    wanted = parse_range(range_header, size)
    if isinstance(wanted, Unsatisfiable):
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    # The stored content type as it is (a media_type would get a charset added).
    headers["Content-Type"] = content_type
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_chunks(path, 0, size), headers=headers)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
    return StreamingResponse(
        _chunks(path, wanted.start, wanted.length), status_code=206, headers=headers
    )
