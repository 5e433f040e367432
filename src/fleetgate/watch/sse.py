"""Server-sent events (``text/event-stream``), read and written with no I/O.

The parser follows the WHATWG HTML standard, "Interpreting an event stream": the
stream is UTF-8 (one leading BOM ignored, invalid bytes replaced); lines end in CRLF, LF
or CR; an empty line dispatches the event; a line starting with ``:`` is a comment;
``field: value`` loses one space after the colon; ``data`` lines are joined with LF;
``id`` sets the last event id (which stays until another ``id`` changes it) unless it
holds a NUL; ``retry`` is kept only when all ASCII digits; other fields are ignored. An
event with no ``data`` is not dispatched, and neither is one cut off by the end of the
stream. Bytes may arrive split anywhere, a CRLF or a UTF-8 sequence included.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_LINE = 1 << 20


class LineTooLong(ValueError):
    """A line exceeded :data:`MAX_LINE` characters: not a stream we can hold in memory."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    type: str
    data: str
    last_event_id: str = ""


class EventStreamParser:
    """Feed it the bytes of one connection's stream; it returns the events they complete."""

    def __init__(self, *, max_line: int = MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._max_line = max_line
        self._partial = ""  # text after the last line break seen
        self._after_cr = False  # the text so far ended in CR: a LF next completes that break
        self._data: list[str] = []
        self._type = ""
        self._id = ""
        self.last_event_id = ""
        self.retry: int | None = None  # reconnection time the server asked for, in ms

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if self._after_cr and text[0] == "\n":
            text = text[1:]
        self._after_cr = text.endswith("\r")
        events: list[ServerSentEvent] = []
        text = self._partial + text
        start = 0
        for match in _LINE_BREAK.finditer(text):
            event = self._line(text[start : match.start()])
            if event is not None:
                events.append(event)
            start = match.end()
        self._partial = text[start:]
        if len(self._partial) > self._max_line:
            raise LineTooLong(f"an event stream line longer than {self._max_line} characters")
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id
        if not self._data:
            self._type = ""
            return None
        event = ServerSentEvent(self._type or "message", "\n".join(self._data), self._id)
        self._data = []
        self._type = ""
        return event


def encode_event(data: str, *, event_type: str = "message", event_id: str | None = None) -> bytes:
    """One event in the stream's format; ``data`` may span lines (any of CR, LF, CRLF)."""
    single_lines = [event_type] if event_id is None else [event_type, event_id]
    if any(_LINE_BREAK.search(text) for text in single_lines) or "\0" in (event_id or ""):
        raise ValueError("an event's type and id must be single lines (and an id has no NUL)")
    lines = [] if event_type == "message" else [f"event: {event_type}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")
