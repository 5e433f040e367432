"""Batch update files: which format an upload is, and CSV read into rows of text cells
(pure, stdlib only; ``.xlsx`` is read by the ``sheets`` adapter into the same rows).

The format is told from the bytes, not the name: a zip is an ``.xlsx`` workbook; an OLE
compound file (``D0 CF 11 E0``) is what Excel makes of a password-protected workbook (or
a legacy ``.xls``); other binary files are not spreadsheets; UTF-8 text is CSV. A name
ending in ``.xlsm``/``.xlsb``/``.xls`` is refused as such before the bytes are looked at.

CSV: UTF-8 (a byte order mark is skipped), RFC 4180 quoting, the separator taken from
the header line as for bulk credentials (the first of tab, semicolon, comma that occurs
in it: Excel writes ``;`` in many locales). Each record is one row, numbered from 1 for
the header, blank lines included, as a spreadsheet shows the file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from enum import Enum

from fleetgate.domain.batch import MAX_RECORDS
from fleetgate.domain.bulk_file import detect_separator
from fleetgate.domain.errors import TooLarge, UnsupportedMedia, ValidationFailed

#: Largest upload (bytes): some 10,000 records of a dozen columns with room to spare.
MAX_UPLOAD = 8 * 1024 * 1024
#: Longest CSV field the reader takes, the csv module's own limit (longer: the whole
#: file is refused). A cell over MAX_CELL_CHARS but under this fails only its record.
MAX_CSV_FIELD = csv.field_size_limit()

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: Starts of common files that are not spreadsheets, named in the answer.
_OTHER_MAGICS = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip file",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"\x7fELF": "a program",
}
_REFUSED_NAMES = {
    ".xlsm": "a macro-enabled workbook (.xlsm) is refused: save it as .xlsx",
    ".xltm": "a macro-enabled template (.xltm) is refused: save it as .xlsx",
    ".xlsb": "a binary workbook (.xlsb) cannot be read: save it as .xlsx",
    ".xls": "a legacy .xls workbook cannot be read: save it as .xlsx",
}
_HINT = "upload the template as .xlsx or as UTF-8 CSV"


class Format(Enum):
    XLSX = "xlsx"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        if self is Format.XLSX:
            return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        return "text/csv; charset=utf-8"


def detect_format(data: bytes, filename: str | None) -> Format:
    """The upload's format, or why it is refused (:class:`UnsupportedMedia`, 415;
    an empty file is a :class:`ValidationFailed`)."""
    lowered = (filename or "").lower()
    for suffix, reason in _REFUSED_NAMES.items():
        if lowered.endswith(suffix):
            raise UnsupportedMedia(reason)
    if not data:
        raise ValidationFailed("the file is empty")
    if data.startswith(OLE_MAGIC):
        raise UnsupportedMedia(
            "an encrypted (password-protected) workbook or a legacy .xls cannot be read:"
            " remove the password and save it as .xlsx, or as CSV"
        )
    if data.startswith(ZIP_MAGICS):
        return Format.XLSX
    for magic, what in _OTHER_MAGICS.items():
        if data.startswith(magic):
            raise UnsupportedMedia(f"not a spreadsheet: the file is {what}; {_HINT}")
    head = data[:8192]
    if b"\x00" in head:
        raise UnsupportedMedia(
            f"not a spreadsheet: the file is binary (it holds NUL bytes); {_HINT}"
        )
    return Format.CSV


def read_csv(data: bytes) -> list[list[str]]:
    """The rows of a CSV file (header first), each a list of text cells.

    :class:`ValidationFailed` when the file is not UTF-8 or not CSV, :class:`TooLarge`
    when it has more than :data:`MAX_RECORDS` records.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsupportedMedia(
            f"not a spreadsheet: the file is not UTF-8 text (byte {exc.start} is"
            f" 0x{data[exc.start]:02x}); {_HINT}"
        ) from None
    text = text.removeprefix("\ufeff")
    first_line = text.split("\n", 1)[0]
    separator = detect_separator(first_line) or ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    rows: list[list[str]] = []
    try:
        for values in reader:
            rows.append(values)
            if len(rows) > MAX_RECORDS + 1:
                raise TooLarge(f"the file has more than {MAX_RECORDS} records")
    except csv.Error as exc:
        raise ValidationFailed(f"row {len(rows) + 1} cannot be read as CSV: {exc}") from None
    return rows


def write_csv(rows: Sequence[Sequence[str | float | int]]) -> bytes:
    """A CSV file (comma separated, CRLF, UTF-8 without byte order mark) of ``rows``."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8")
