"""The ``Range`` parser: whatever the header, the answer is the whole file, a range inside
it, or 416; and a resumed download covers the file exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetgate.api.file_responses import UNSATISFIABLE, ByteRange, parse_range

sizes = st.integers(min_value=0, max_value=10**12)
positions = st.integers(min_value=0, max_value=2 * 10**12)


@given(header=st.text(max_size=40), size=sizes)
def test_any_header_gives_a_range_inside_the_file_or_none_or_416(header: str, size: int) -> None:
    result = parse_range(header, size)
    if isinstance(result, ByteRange):
        assert 0 <= result.start <= result.end < size
        assert result.length == result.end - result.start + 1


@given(
    header=st.from_regex(r"\A[ \t]*[bB][yY][tT][eE][sS]=[ \t]*[0-9]{0,6}-[0-9]{0,6}[ \t]*\Z"),
    size=st.integers(min_value=0, max_value=10**6),
)
def test_well_formed_looking_headers_never_fail(header: str, size: int) -> None:
    result = parse_range(header, size)
    assert result is None or result is UNSATISFIABLE or isinstance(result, ByteRange)


@given(first=positions, last=positions, size=sizes)
def test_first_last(first: int, last: int, size: int) -> None:
    result = parse_range(f"bytes={first}-{last}", size)
    if last < first:
        assert result is None
    elif first >= size:
        assert result is UNSATISFIABLE
    else:
        assert result == ByteRange(first, min(last, size - 1))


@given(first=positions, size=sizes)
def test_open_ended(first: int, size: int) -> None:
    result = parse_range(f"bytes={first}-", size)
    assert result == (UNSATISFIABLE if first >= size else ByteRange(first, size - 1))


@given(suffix=positions, size=sizes)
def test_suffix(suffix: int, size: int) -> None:
    result = parse_range(f"bytes=-{suffix}", size)
    if suffix == 0 or size == 0:
        assert result is UNSATISFIABLE
    else:
        assert result == ByteRange(size - min(suffix, size), size - 1)


@given(first=positions, second=positions, size=sizes)
def test_several_ranges_are_ignored(first: int, second: int, size: int) -> None:
    assert parse_range(f"bytes={first}-,-{second}", size) is None
    assert parse_range(f"bytes={first}-{second}, {second}-", size) is None


@given(size=st.integers(min_value=1, max_value=10**9), data=st.data())
def test_a_resumed_download_covers_the_file_exactly(size: int, data: st.DataObject) -> None:
    received = data.draw(st.integers(min_value=0, max_value=size - 1))
    head = parse_range(f"bytes=0-{received - 1}", size) if received else None
    tail = parse_range(f"bytes={received}-", size)
    assert isinstance(tail, ByteRange)
    assert (tail.start, tail.end) == (received, size - 1)
    if isinstance(head, ByteRange):
        assert (head.start, head.end + 1) == (0, tail.start)


def test_examples() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-0", 10) == ByteRange(0, 0)
    # Lenient about blanks and case around the unit and the spec (harmless, and kind).
    assert parse_range("BYTES = 2-3 ", 10) == ByteRange(2, 3)
    assert parse_range("bytes=-", 10) is None
    assert parse_range("bytes=\u0661-2", 10) is None  # Arabic-Indic digit is not a digit here
    assert parse_range("bytes=1-2-3", 10) is None
    assert parse_range("lines=1-2", 10) is None
    assert parse_range("bytes=0-", 0) is UNSATISFIABLE
