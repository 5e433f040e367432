"""Bulk device credentials: reading the CSV file (pure, stdlib only).

The file (Cumulocity's bulk registration format) is a header line naming the columns,
then one device per record. Reading rules:

- The separator is taken from the header line: the first of tab, semicolon and comma
  that occurs in it, in that order of preference (the rarer a character is in ordinary
  text, the more likely its presence is deliberate). A header without any of them is a
  single column; ``ID CREDENTIALS`` (space separated) is refused as such.
- Header names are case-insensitive and stripped of surrounding blanks; unknown columns
  are ignored. A UTF-8 byte order mark is skipped. Records follow RFC 4180 (quotes,
  ``""`` escapes, separators and line breaks inside quotes); CRLF and LF both end lines.
- Values are taken exactly as written (never trimmed). Blank lines are skipped and not
  counted. A line longer than :data:`MAX_LINE_BYTES` fails as a row; bytes that are not
  UTF-8 fail the row that holds them (the header: the whole file).

Whole-file problems raise :class:`ValidationFailed` (HTTP 422, nothing stored); every
row ends as a :class:`DeviceRow` to store or a :class:`RowFailure` that says why not.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from fleetgate.domain.bulk import (
    NEED_TYPE_AND_NAME,
    Column,
    DeviceRow,
    Header,
    RowFailure,
    not_utf8,
    read_row,
)
from fleetgate.domain.errors import ValidationFailed

#: Separators in order of preference when the header line holds several.
SEPARATORS = ("\t", ";", ",")
#: Longest physical line read; a longer one fails as a row (keeps memory bounded).
MAX_LINE_BYTES = 64 * 1024
_BOM = "\ufeff"


def detect_separator(header_line: str) -> str | None:
    """The first of tab, semicolon, comma that occurs in the header line, else None."""
    for separator in SEPARATORS:
        if separator in header_line:
            return separator
    return None


def parse_header(line: str, *, management: bool) -> Header:
    """Understand the header line, or :class:`ValidationFailed` naming what is wrong."""
    line = line.removeprefix(_BOM).rstrip("\r\n")
    if not line.strip():
        raise ValidationFailed(
            "the file is empty: it has no line naming the columns (blank lines are skipped)"
        )
    if not_utf8(line):
        raise ValidationFailed("the header line is not valid UTF-8")
    separator = detect_separator(line)
    if separator is None:
        if len(line.split()) > 1:
            raise ValidationFailed(
                "no separator found in the header line: separate the columns with a tab,"
                " a semicolon or a comma"
            )
        separator = ","
    try:
        names = next(csv.reader([line], delimiter=separator, strict=True))
    except (csv.Error, StopIteration) as exc:
        raise ValidationFailed(f"the header line cannot be read: {exc}") from None
    known = {c.value: c for c in Column}
    positions: list[Column | None] = []
    ignored: list[str] = []
    for name in names:
        column = known.get(name.strip().upper())
        if column is Column.TENANT and not management:
            column = None
        if column is not None and column in positions:
            raise ValidationFailed(f"the column {column.value} appears twice in the header")
        positions.append(column)
        if column is None:
            ignored.append(name)
    header = Header(separator, tuple(positions), tuple(ignored), management)
    mandatory = [Column.ID, Column.CREDENTIALS] + ([Column.TENANT] if management else [])
    missing = [c.value for c in mandatory if not header.has(c)]
    if missing:
        raise ValidationFailed(
            f"mandatory column(s) missing: {', '.join(missing)} (the header line is"
            f" {line!r}; mandatory: {', '.join(c.value for c in mandatory)})"
        )
    needing = [c.value for c in NEED_TYPE_AND_NAME if header.has(c)]
    lacking = [c.value for c in (Column.TYPE, Column.NAME) if not header.has(c)]
    if lacking and needing:
        raise ValidationFailed(
            f"the column(s) {', '.join(needing)} need the columns TYPE and NAME in the file;"
            f" missing: {', '.join(lacking)}"
        )
    if len(lacking) == 1:
        raise ValidationFailed(f"the columns TYPE and NAME go together; missing: {lacking[0]}")
    return header


class BulkFile:
    """A CSV upload read record by record from a binary stream, in bounded memory.

    ``header`` is read on construction (:class:`ValidationFailed` for a bad one);
    iterating yields one decision per non-blank record. Duplicate ids (per tenant)
    fail: the first row with an id wins and later ones name its line. That set of
    seen ids is the only state that grows with the file.
    """

    def __init__(self, stream: IO[bytes], *, management: bool) -> None:
        self._lines = _Lines(stream)
        # The header is the first line that is not blank: blank lines before it are
        # skipped like blank lines anywhere else (line numbers stay physical).
        first = next((line for line in self._lines if line.strip()), "")
        if self._lines.oversize:
            raise ValidationFailed(f"the header line is longer than {MAX_LINE_BYTES} bytes")
        self.header = parse_header(first, management=management)
        self._seen: dict[tuple[str | None, str], int] = {}

    def __iter__(self) -> Iterator[DeviceRow | RowFailure]:
        reader = csv.reader(self._lines, delimiter=self.header.separator, strict=True)
        while True:
            start = self._lines.number + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RowFailure(start, f"the row cannot be read as CSV: {exc}", "")
                continue
            if start in self._lines.oversize:
                yield RowFailure(start, f"the line is longer than {MAX_LINE_BYTES} bytes", "")
                continue
            if not values or values == [""]:
                continue
            decision = read_row(self.header, values, start)
            if isinstance(decision, DeviceRow):
                key = (decision.tenant, decision.device_id)
                first = self._seen.setdefault(key, start)
                if first != start:
                    decision = RowFailure(
                        start,
                        f"duplicate id in file: {decision.device_id} was first given on line"
                        f" {first}",
                        decision.text,
                        decision.device_id,
                    )
            yield decision


class _Lines:
    """Physical lines of a binary stream as text, each at most MAX_LINE_BYTES.

    Bytes that are not UTF-8 become lone surrogates (``surrogateescape``) so that the
    row holding them fails and the others go on. A longer line is skipped to its end,
    yielded as a blank line, and its number remembered in ``oversize``.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.number = 0
        self.oversize: set[int] = set()

    def __iter__(self) -> Iterator[str]:
        while True:
            raw = self._stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            self.number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                self.oversize.add(self.number)
                while raw and not raw.endswith(b"\n"):
                    raw = self._stream.readline(MAX_LINE_BYTES)
                yield "\n"
                continue
            text = raw.decode("utf-8", "surrogateescape")
            if self.number == 1:
                text = text.removeprefix(_BOM)
            yield text


def read_text(text: str, *, management: bool = False) -> BulkFile:
    """A :class:`BulkFile` over text (tests and small files)."""
    return BulkFile(io.BytesIO(text.encode("utf-8")), management=management)
