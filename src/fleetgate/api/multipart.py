"""``multipart/form-data`` read as it arrives, one part after the other.

Each part's data is an async iterator of the chunks the parser produced from the body
(python-multipart's callback parser, fed chunk by chunk), so a file part can be
streamed straight into the file store. What a reader does not take of a part is skipped.
Parts are identified by the ``name`` of their ``Content-Disposition``, not by whether they
carry a ``filename``: Cumulocity's clients send the file of ``/inventory/binaries`` both
with and without one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from fleetgate.domain.errors import TooLarge, ValidationFailed


@dataclass(frozen=True, slots=True)
class PartHeaders:
    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Data:
    data: bytes


class _End:
    """The current part ends."""


class _Done:
    """The closing boundary."""


_END: Final = _End()
_DONE: Final = _Done()
_Event = PartHeaders | _Data | _End | _Done


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type; None for anything else."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return options.get(b"boundary") or None


class Part:
    """One part; its data is read once, through :meth:`chunks` or :meth:`read`."""

    def __init__(self, headers: PartHeaders, form: MultipartForm) -> None:
        self.headers = headers
        self._form = form
        self._done = False

    @property
    def name(self) -> str:
        return self.headers.name

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            event = await self._form._next()
            if isinstance(event, _Data):
                yield event.data
            else:
                self._done = True

    async def read(self, limit: int) -> bytes:
        """The whole part, which must not be larger than ``limit`` bytes (else 413)."""
        buffer = bytearray()
        async for chunk in self.chunks():
            buffer += chunk
            if len(buffer) > limit:
                raise TooLarge(f"the part {self.name!r} is larger than {limit} bytes")
        return bytes(buffer)

    async def skip(self) -> None:
        async for _ in self.chunks():
            pass


class MultipartForm:
    """The parts of a ``multipart/form-data`` body, in order, as they arrive.

    Malformed bodies raise :class:`ValidationFailed` with the parser's reason.
    """

    def __init__(self, boundary: bytes, body: AsyncIterable[bytes]) -> None:
        self._body = aiter(body)
        self._events: deque[_Event] = deque()
        self._finished = False
        header_name = bytearray()
        header_value = bytearray()
        headers: dict[bytes, bytes] = {}

        def on_part_begin() -> None:
            headers.clear()

        def on_header_field(data: bytes, start: int, end: int) -> None:
            header_name.extend(data[start:end])

        def on_header_value(data: bytes, start: int, end: int) -> None:
            header_value.extend(data[start:end])

        def on_header_end() -> None:
            headers[bytes(header_name).lower()] = bytes(header_value).strip(b" \t")
            header_name.clear()
            header_value.clear()

        def on_headers_finished() -> None:
            _, options = parse_options_header(headers.get(b"content-disposition"))
            name = options.get(b"name")
            if name is None:
                raise ValidationFailed("a multipart part has no name in its Content-Disposition")
            filename = options.get(b"filename")
            content_type = headers.get(b"content-type")
            self._events.append(
                PartHeaders(
                    name.decode("utf-8", "replace"),
                    filename.decode("utf-8", "replace") if filename is not None else None,
                    content_type.decode("latin-1") if content_type else None,
                )
            )

        def on_part_data(data: bytes, start: int, end: int) -> None:
            if end > start:
                self._events.append(_Data(data[start:end]))

        def on_part_end() -> None:
            self._events.append(_END)

        def on_end() -> None:
            self._events.append(_DONE)

        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": on_part_begin,
                    "on_header_field": on_header_field,
                    "on_header_value": on_header_value,
                    "on_header_end": on_header_end,
                    "on_headers_finished": on_headers_finished,
                    "on_part_data": on_part_data,
                    "on_part_end": on_part_end,
                    "on_end": on_end,
                },
            )
        except FormParserError as exc:
            raise ValidationFailed(f"malformed multipart body: {exc}") from None

    async def _next(self) -> _Event:
        while not self._events:
            if self._finished:
                return _DONE
            chunk = await anext(self._body, None)
            if chunk is None:
                self._finished = True
                raise ValidationFailed("the multipart body ends before its closing boundary")
            try:
                self._parser.write(chunk)
            except FormParserError as exc:
                raise ValidationFailed(f"malformed multipart body: {exc}") from None
        event = self._events.popleft()
        if isinstance(event, _Done):
            self._finished = True
        return event

    async def parts(self) -> AsyncIterator[Part]:
        """Each part in turn; what the caller leaves of one is skipped before the next."""
        while True:
            event = await self._next()
            if isinstance(event, _Done):
                return
            if isinstance(event, PartHeaders):
                part = Part(event, self)
                yield part
                await part.skip()
