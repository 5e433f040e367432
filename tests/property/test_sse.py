"""Any sequence of events, written with any line endings and comments and cut into chunks
at any bytes, parses back to the same events (fleetgate.watch.sse)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.watch.sse import EventStreamParser, ServerSentEvent, encode_event

# no line breaks, no lone surrogates (not UTF-8); anything else, non-ASCII included
single_line = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20
)
line_break = st.sampled_from(["\n", "\r", "\r\n"])


@dataclass(frozen=True)
class Written:
    event_type: str | None  # None: no event field (a "message")
    data_lines: list[str]
    event_id: str | None
    comment: str | None


written_events = st.builds(
    Written,
    event_type=st.none() | single_line.filter(bool),
    data_lines=st.lists(single_line, min_size=1, max_size=4),
    event_id=st.none() | single_line.filter(lambda s: "\0" not in s),
    comment=st.none() | single_line,
)


def serialise(events: list[Written], breaks: list[str], bom: bool = False) -> bytes:
    lines: list[str] = []
    for event in events:
        if event.comment is not None:
            lines.append(f":{event.comment}")
        if event.event_type is not None:
            lines.append(f"event: {event.event_type}")
        if event.event_id is not None:
            # one space after the colon is dropped: without one, the value must not start
            # with a space
            space = "" if event.event_id and event.event_id[0] != " " else " "
            lines.append(f"id:{space}{event.event_id}")
        lines.extend(f"data: {line}" for line in event.data_lines)
        lines.append("")
    text = ""
    for i, line in enumerate(lines):
        brk = breaks[i % len(breaks)]
        if not line and brk == "\n" and text.endswith("\r"):
            brk = "\r\n"  # CR, LF would be one CRLF break, and this empty line lost
        text += line + brk
    return ("\ufeff" if bom else "").encode("utf-8") + text.encode("utf-8")


def expected(events: list[Written]) -> list[ServerSentEvent]:
    out = []
    last_id = ""
    for event in events:
        if event.event_id is not None:
            last_id = event.event_id
        out.append(
            ServerSentEvent(event.event_type or "message", "\n".join(event.data_lines), last_id)
        )
    return out


def parse_in_chunks(stream: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in sorted(c % (len(stream) + 1) for c in cuts):
        events.extend(parser.feed(stream[start:cut]))
        start = cut
    events.extend(parser.feed(stream[start:]))
    return events


@given(
    events=st.lists(written_events, max_size=6),
    breaks=st.lists(line_break, min_size=1, max_size=5),
    bom=st.booleans(),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
)
def test_events_survive_any_line_endings_and_any_chunking(
    events: list[Written], breaks: list[str], bom: bool, cuts: list[int]
) -> None:
    assert parse_in_chunks(serialise(events, breaks, bom), cuts) == expected(events)


@given(
    data=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    event_type=single_line.filter(bool),
    event_id=st.none() | single_line.filter(lambda s: "\0" not in s),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
def test_encode_event_round_trips(
    data: str, event_type: str, event_id: str | None, cuts: list[int]
) -> None:
    stream = encode_event(data, event_type=event_type, event_id=event_id)
    (event,) = parse_in_chunks(stream, cuts)
    # any line break in the data comes back as LF
    assert event == ServerSentEvent(
        event_type,
        data.replace("\r\n", "\n").replace("\r", "\n"),
        event_id or "",
    )


@given(stream=st.binary(max_size=200), cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_any_bytes_parse_the_same_however_cut(stream: bytes, cuts: list[int]) -> None:
    assert parse_in_chunks(stream, cuts) == parse_in_chunks(stream, [])
