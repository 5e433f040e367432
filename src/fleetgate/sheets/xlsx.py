"""``.xlsx`` workbooks: read one sheet into rows of text cells, write a template.

An upload is checked from its zip directory before openpyxl opens it, so that what it
unpacks to is bounded whatever the file claims: at most :data:`MAX_ENTRIES` entries,
:data:`MAX_UNPACKED` bytes in all and :data:`MAX_RATIO` times its compressed size for any
entry over 1 MiB (a zip bomb is refused, 413, without inflating a byte of it). A workbook
with macros (``vbaProject.bin``, a macro-enabled content type) is refused (415). openpyxl
then reads it in read-only mode (sheet XML streamed, not built into a tree), and every
error it raises is translated here into a 422 that says the workbook cannot be read.

Cells become text: numbers as Python writes them (``12``, ``48.137``), booleans
``true``/``false``, dates in ISO 8601; a formula is refused (422, naming its cell): a
template holds values, and fleetgate does not compute formulas.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.read_only import EmptyCell

from fleetgate.domain.batch import MAX_COLUMNS, MAX_RECORDS
from fleetgate.domain.errors import TooLarge, UnsupportedMedia, ValidationFailed

#: Most entries in the zip directory (a template has about ten).
MAX_ENTRIES = 1000
#: Most bytes the entries may unpack to, in all.
MAX_UNPACKED = 64 * 1024 * 1024
#: Highest compression ratio of an entry over :data:`_RATIO_FLOOR` bytes (XML compresses
#: some 10 to 20 times; a zip bomb thousands of times).
MAX_RATIO = 200
_RATIO_FLOOR = 1024 * 1024
#: Most rows read, empty ones included (openpyxl fills gaps between rows with empty
#: ones: a lone cell in row 1,048,576 must not cost a million rows).
MAX_SHEET_ROWS = 2 * MAX_RECORDS + 1
#: Columns read (one past the header's limit, so that a header too wide is seen); a
#: cell further right is not read at all, so that a cell in column XFD costs nothing.
READ_COLUMNS = MAX_COLUMNS + 1
_SHEET_TITLE = "devices"


def check_zip(data: bytes) -> None:
    """Refuse what is not an ``.xlsx`` we will open: from the zip directory only."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnsupportedMedia(f"not a spreadsheet: a damaged zip file ({exc})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise TooLarge(f"the workbook has {len(entries)} parts; at most {MAX_ENTRIES}")
        unpacked = 0
        for entry in entries:
            unpacked += entry.file_size
            if entry.file_size > _RATIO_FLOOR and entry.file_size > MAX_RATIO * max(
                entry.compress_size, 1
            ):
                raise TooLarge(
                    f"the workbook's part {entry.filename!r} unpacks {entry.file_size} bytes"
                    f" from {entry.compress_size}: refused as a zip bomb"
                )
        if unpacked > MAX_UNPACKED:
            raise TooLarge(f"the workbook unpacks to {unpacked} bytes; at most {MAX_UNPACKED}")
        names = {e.filename for e in entries}
        if any(n.lower().endswith("vbaproject.bin") for n in names):
            raise UnsupportedMedia(
                "a macro-enabled workbook (it holds vbaProject.bin) is refused: save it as"
                " .xlsx without macros"
            )
        if "[Content_Types].xml" in names:
            types = archive.read("[Content_Types].xml")
            if b"macroEnabled" in types:
                raise UnsupportedMedia(
                    "a macro-enabled workbook is refused: save it as .xlsx without macros"
                )
        if "xl/workbook.xml" not in names:
            raise UnsupportedMedia(
                "not a spreadsheet: a zip file but not an .xlsx workbook (no xl/workbook.xml)"
            )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


class XlsxWorkbooks:
    """Reads and writes the ``.xlsx`` form of templates (a ``Workbooks`` port)."""

    def read(self, data: bytes) -> list[list[str]]:
        """The one sheet's rows (header first) as text cells; trailing empty rows
        dropped. Blocking: run it in a worker thread."""
        check_zip(data)
        try:
            book = load_workbook(
                io.BytesIO(data), read_only=True, data_only=False, keep_links=False
            )
        except (TooLarge, UnsupportedMedia, ValidationFailed):
            raise
        except Exception as exc:  # openpyxl raises KeyError, ValueError, XML errors …
            raise ValidationFailed(f"the workbook cannot be read: {_reason(exc)}") from None
        try:
            return self._rows(book)
        except (TooLarge, UnsupportedMedia, ValidationFailed):
            raise
        except Exception as exc:  # a sheet's XML read lazily, as it is iterated
            raise ValidationFailed(f"the workbook cannot be read: {_reason(exc)}") from None
        finally:
            book.close()

    def _rows(self, book: Any) -> list[list[str]]:
        names = book.sheetnames
        if len(names) != 1:
            shown = ", ".join(repr(n) for n in names[:5])
            raise ValidationFailed(
                f"the workbook has {len(names)} sheets ({shown}): a template is one sheet;"
                " delete the others"
            )
        rows: list[list[str]] = []
        for cells in book[names[0]].iter_rows(max_col=READ_COLUMNS):
            row: list[str] = []
            for cell in cells:
                if isinstance(cell, EmptyCell):
                    row.append("")
                    continue
                if cell.data_type == "f":
                    raise ValidationFailed(
                        f"cell {cell.coordinate} holds a formula ({_cut(str(cell.value))}):"
                        " write the value itself"
                    )
                row.append(_text(cell.value))
            while row and not row[-1]:
                row.pop()  # max_col pads every row to READ_COLUMNS
            rows.append(row)
            if len(rows) > MAX_SHEET_ROWS:
                raise TooLarge(
                    f"the sheet has more than {MAX_SHEET_ROWS} rows (empty ones included):"
                    f" a file holds at most {MAX_RECORDS} records"
                )
        if sum(1 for r in rows[1:] if any(c.strip() for c in r)) > MAX_RECORDS:
            raise TooLarge(f"the workbook has more than {MAX_RECORDS} records")
        while rows and not any(c.strip() for c in rows[-1]):
            rows.pop()
        return rows

    def write(self, rows: Sequence[Sequence[str | float | int]]) -> bytes:
        """An ``.xlsx`` workbook of one sheet holding ``rows``."""
        book = Workbook(write_only=True)
        sheet = book.create_sheet(_SHEET_TITLE)
        for row in rows:
            sheet.append([self._cell(sheet, value) for value in row])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()

    @staticmethod
    def _cell(sheet: Any, value: str | float | int) -> Any:
        """A value as a cell; text that starts with ``=`` stays text (openpyxl would
        write it as a formula, which the upload then refuses)."""
        if isinstance(value, str) and value.startswith("="):
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            return cell
        return value


def _cut(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _reason(exc: Exception) -> str:
    return _cut(f"{type(exc).__name__}: {exc}", 200)
