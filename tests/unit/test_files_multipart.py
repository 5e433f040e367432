"""Streaming multipart/form-data: parts in order, data as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetgate.api.multipart import MultipartForm, boundary_of
from fleetgate.domain.errors import TooLarge, ValidationFailed

BODY = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="file"; filename="a.bin"\r\n'
    b"Content-Type: application/x-thing\r\n\r\n"
    b"\x00\r\n--Xy not a boundary\r\n\xff\r\n"
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="object"\r\n\r\n'
    b'{"name": "n"}\r\n'
    b"--XyZ--\r\n"
)
FILE_DATA = b"\x00\r\n--Xy not a boundary\r\n\xff"


async def split(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


async def read_all(form: MultipartForm) -> list[tuple[str, str | None, str | None, bytes]]:
    out = []
    async for part in form.parts():
        data = b"".join([c async for c in part.chunks()])
        out.append((part.name, part.headers.filename, part.headers.content_type, data))
    return out


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
async def test_parts_come_whole_however_the_body_is_cut(size: int) -> None:
    parts = await read_all(MultipartForm(b"XyZ", split(BODY, size)))
    assert parts == [
        ("file", "a.bin", "application/x-thing", FILE_DATA),
        ("object", None, None, b'{"name": "n"}'),
    ]


async def test_parts_left_unread_are_skipped() -> None:
    names = [part.name async for part in MultipartForm(b"XyZ", split(BODY, 5)).parts()]
    assert names == ["file", "object"]


async def test_read_is_limited() -> None:
    form = MultipartForm(b"XyZ", split(BODY, 3))
    async for part in form.parts():
        with pytest.raises(TooLarge, match="'file'"):
            await part.read(4)
        break


async def test_malformed_bodies_are_validation_errors() -> None:
    with pytest.raises(ValidationFailed, match="closing boundary"):
        await read_all(MultipartForm(b"XyZ", split(BODY[:-12], 8)))
    nameless = BODY.replace(b'; name="object"', b"")
    with pytest.raises(ValidationFailed, match="no name"):
        await read_all(MultipartForm(b"XyZ", split(nameless, 8)))
    with pytest.raises(ValidationFailed, match="malformed"):
        await read_all(MultipartForm(b"XyZ", split(b"garbage that is no multipart\r\n", 8)))


def test_boundary_of_content_types() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == b"a b"
    assert boundary_of("Multipart/Form-Data; boundary=xyz") == b"xyz"
    assert boundary_of("multipart/form-data") is None
    assert boundary_of("application/json") is None
    assert boundary_of(None) is None
