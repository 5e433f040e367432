"""Uploading a file as ``multipart/form-data`` in chunks, with a progress bar.

The body is streamed (a 256 MiB CSV is never held in memory twice) with its length
declared, so the server can refuse a too-large upload before reading it. The bar is drawn
on standard error only when it is a terminal: ``\\r[#######.........]  42 %  12.0/28.6 MB``;
piped, nothing is drawn (a script reads the answer, not the bar). :func:`bar` is pure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

CHUNK = 256 * 1024
_MB = 1_000_000


def bar(done: int, total: int, width: int = 30) -> str:
    """One line of progress: ``[####......]  40 %  0.4/1.0 MB`` (an empty file is done)."""
    fraction = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = int(fraction * width)
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {int(fraction * 100):3d} %"
        f"  {done / _MB:.1f}/{total / _MB:.1f} MB"
    )


class MultipartFile:
    """The body of a form with one file part, ``field``; ``on_progress(sent, total)``
    is told after every chunk of the file."""

    def __init__(
        self,
        path: Path,
        field: str = "file",
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.path = path
        self.size = path.stat().st_size
        boundary = secrets.token_hex(16)
        name = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._on_progress = on_progress or (lambda sent, total: None)

    @property
    def length(self) -> int:
        return len(self._head) + self.size + len(self._tail)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._head
        sent = 0
        with self.path.open("rb") as file:
            while chunk := file.read(CHUNK):
                sent += len(chunk)
                yield chunk
                self._on_progress(sent, self.size)
        if self.size == 0:
            self._on_progress(0, 0)
        yield self._tail


def terminal_progress(err: TextIO, label: str) -> Callable[[int, int], None]:
    """Draws :func:`bar` on ``err`` in place when it is a terminal; else does nothing."""
    if not err.isatty() or os.environ.get("TERM") == "dumb":
        return lambda sent, total: None

    def draw(sent: int, total: int) -> None:
        err.write(f"\r{label} {bar(sent, total)}")
        if sent >= total:
            err.write("\n")
        err.flush()

    return draw
