"""Downloads that resume and verify, uploads that replace, against an in-process HTTP
server (httpx.MockTransport) that can break off a body or ignore ``Range``."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from fleetgate.device import (
    FileInfo,
    FileVerificationFailed,
    TransferFailed,
    UploadTarget,
    download,
    fetch,
    upload,
)
from fleetgate.device.files import MAX_PAUSE, UNREACHABLE_ATTEMPTS

CONTENT = bytes(range(256)) * 400  # 100 kB
URL = "http://files.test/files/17?signature=secret"


class _BrokenBody(httpx.AsyncByteStream):
    """Sends ``data`` and then fails as a dropped connection does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@dataclass
class FileServer:
    content: bytes = CONTENT
    #: Break off the next responses after this many bytes of body, one entry each.
    breaks: list[int] = field(default_factory=list)
    honour_range: bool = True
    status: int | None = None
    ranges: list[str | None] = field(default_factory=list)
    uploads: list[tuple[str, bytes, str]] = field(default_factory=list)
    #: Refuse this many connections first, as a service that is restarting does.
    refusals: int = 0
    requests: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.refusals:
            self.refusals -= 1
            raise httpx.ConnectError("All connection attempts failed", request=request)
        if self.status is not None:
            return httpx.Response(self.status)
        if request.method in ("PUT", "POST"):
            self.uploads.append(
                (request.method, request.read(), request.headers.get("content-type", ""))
            )
            return httpx.Response(201)
        asked = request.headers.get("range")
        self.ranges.append(asked)
        start, code, headers = 0, 200, {}
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if match and self.honour_range:
            start, code = int(match.group(1)), 206
            if start >= len(self.content):
                return httpx.Response(416)
            end = len(self.content) - 1
            headers["content-range"] = f"bytes {start}-{end}/{len(self.content)}"
        body = self.content[start:]
        headers["content-length"] = str(len(body))
        if self.breaks:
            return httpx.Response(
                code, headers=headers, stream=_BrokenBody(body[: self.breaks.pop(0)])
            )
        return httpx.Response(code, headers=headers, content=body)


def info(content: bytes = CONTENT, **changes: object) -> FileInfo:
    fields = {"url": URL, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    return FileInfo.model_validate({**fields, **changes})


def client(server: FileServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(server))


async def test_a_plain_download_lands_in_dest(tmp_path: Path) -> None:
    server = FileServer()
    async with client(server) as http:
        dest = await download(info(), tmp_path / "sub" / "fw.bin", http=http)
    assert dest.read_bytes() == CONTENT
    assert not (tmp_path / "sub" / "fw.bin.part").exists()
    assert server.ranges == [None]


async def test_a_broken_body_is_resumed_with_range(tmp_path: Path) -> None:
    server = FileServer(breaks=[30_000, 20_000])
    async with client(server) as http:
        dest = await download(info(), tmp_path / "fw.bin", http=http, retry_delay=0)
    assert dest.read_bytes() == CONTENT
    assert server.ranges == [None, "bytes=30000-", "bytes=50000-"]


async def test_a_part_left_by_an_earlier_run_is_resumed(tmp_path: Path) -> None:
    (tmp_path / "fw.bin.part").write_bytes(CONTENT[:12_345])
    server = FileServer()
    async with client(server) as http:
        await download(info(), tmp_path / "fw.bin", http=http)
    assert (tmp_path / "fw.bin").read_bytes() == CONTENT
    assert server.ranges == ["bytes=12345-"]


async def test_a_part_of_another_file_is_replaced_by_a_fresh_download(tmp_path: Path) -> None:
    (tmp_path / "fw.bin.part").write_bytes(b"x" * 5000)  # left by another firmware
    server = FileServer()
    async with client(server) as http:
        await download(info(), tmp_path / "fw.bin", http=http, retry_delay=0)
    assert (tmp_path / "fw.bin").read_bytes() == CONTENT
    assert server.ranges == ["bytes=5000-", None]


async def test_a_server_answering_200_to_a_range_sends_it_all_again(tmp_path: Path) -> None:
    (tmp_path / "fw.bin.part").write_bytes(b"x" * 5000)  # wrong bytes: they must go
    server = FileServer(honour_range=False)
    async with client(server) as http:
        await download(info(), tmp_path / "fw.bin", http=http)
    assert (tmp_path / "fw.bin").read_bytes() == CONTENT
    assert server.ranges == ["bytes=5000-"]


async def test_a_sha256_mismatch_fails_with_a_reason_and_starts_over_next_time(
    tmp_path: Path,
) -> None:
    wrong = "0" * 64
    async with client(FileServer()) as http:
        with pytest.raises(FileVerificationFailed) as caught:
            await download(info(sha256=wrong), tmp_path / "fw.bin", http=http)
    actual = hashlib.sha256(CONTENT).hexdigest()
    assert str(caught.value) == f"SHA-256 mismatch: expected {wrong}, got {actual}"
    assert not (tmp_path / "fw.bin").exists()
    assert not (tmp_path / "fw.bin.part").exists()


async def test_a_size_mismatch_fails(tmp_path: Path) -> None:
    async with client(FileServer()) as http:
        with pytest.raises(FileVerificationFailed, match="more than the expected 100 bytes"):
            await download(info(size=100), tmp_path / "a", http=http)
        with pytest.raises(TransferFailed, match="body ended after 102400 of 200000 bytes"):
            await download(info(size=200_000), tmp_path / "b", http=http, retry_delay=0)


async def test_a_fetch_into_memory_resumes_and_verifies() -> None:
    server = FileServer(breaks=[30_000])
    async with client(server) as http:
        assert await fetch(info(), http=http, retry_delay=0) == CONTENT
        assert server.ranges == [None, "bytes=30000-"]
        server.honour_range, server.breaks = False, [1000]
        assert await fetch(info(), http=http, retry_delay=0) == CONTENT  # 200: all again
        with pytest.raises(FileVerificationFailed, match="SHA-256 mismatch: expected 0000"):
            await fetch(info(sha256="0" * 64), http=http)
        with pytest.raises(FileVerificationFailed, match="more than the expected 100 bytes"):
            await fetch(info(size=100), http=http)
        server.status = 403
        with pytest.raises(TransferFailed, match=r"files/17 failed: HTTP 403$"):
            await fetch(info(), http=http)


async def test_an_http_error_is_not_retried_and_hides_the_signature(tmp_path: Path) -> None:
    server = FileServer(status=403)
    async with client(server) as http:
        with pytest.raises(TransferFailed) as caught:
            await download(info(), tmp_path / "fw.bin", http=http)
    assert str(caught.value) == "Download of http://files.test/files/17 failed: HTTP 403"
    assert "secret" not in str(caught.value)


async def test_a_network_that_keeps_failing_gives_up(tmp_path: Path) -> None:
    server = FileServer(breaks=[10, 10, 10])
    async with client(server) as http:
        with pytest.raises(TransferFailed, match="failed after 3 attempts"):
            await download(info(), tmp_path / "fw.bin", http=http, retry_delay=0)
    assert (tmp_path / "fw.bin.part").stat().st_size == 30  # kept for the next try


async def test_a_restarting_service_is_waited_out_beyond_attempts(tmp_path: Path) -> None:
    # refused more often than ``attempts`` allows for a broken transfer: still no failure
    server = FileServer(refusals=UNREACHABLE_ATTEMPTS - 1)
    async with client(server) as http:
        dest = await download(info(), tmp_path / "fw.bin", http=http, retry_delay=0)
        assert dest.read_bytes() == CONTENT
        server.refusals = UNREACHABLE_ATTEMPTS - 1
        assert await fetch(info(), http=http, retry_delay=0) == CONTENT
        server.refusals = UNREACHABLE_ATTEMPTS - 1
        await upload(UploadTarget(url=URL), b"x", http=http, retry_delay=0)
    assert server.uploads == [("PUT", b"x", "application/octet-stream")]


async def test_a_service_that_stays_away_gives_up_after_pauses_of_about_20_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", pause)
    server = FileServer(refusals=1000)
    async with client(server) as http:
        with pytest.raises(
            TransferFailed,
            match=f"failed after {UNREACHABLE_ATTEMPTS} attempts: All connection attempts failed",
        ):
            await download(info(), tmp_path / "fw.bin", http=http)
    assert server.requests == UNREACHABLE_ATTEMPTS
    assert pauses == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert max(pauses) == MAX_PAUSE


async def test_uploads_send_bytes_or_a_file(tmp_path: Path) -> None:
    server = FileServer()
    target = UploadTarget(url="http://files.test/up/1?signature=s")
    snapshot = tmp_path / "snapshot.txt"
    snapshot.write_bytes(b"from a file\n")
    async with client(server) as http:
        await upload(target, b"bytes\n", http=http, content_type="text/plain")
        await upload(target, snapshot, http=http)
    assert server.uploads == [
        ("PUT", b"bytes\n", "text/plain"),
        ("PUT", b"from a file\n", "application/octet-stream"),
    ]


async def test_a_refused_upload_fails(tmp_path: Path) -> None:
    async with client(FileServer(status=403)) as http:
        with pytest.raises(
            TransferFailed, match=r"Upload to http://files\.test/up/1 failed: HTTP 403"
        ):
            await upload(UploadTarget(url="http://files.test/up/1?s=1"), b"x", http=http)
