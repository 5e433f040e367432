"""The text ``ops watch`` shows: the live table, and one plain line per change.

Pure: the caller gives the terminal's size and says whether to colour. Widths are
counted in terminal cells (East Asian wide characters take two, combining marks none);
text from devices is shown inert, every control character (escape sequences included)
replaced by a space, so a failure reason cannot move the cursor or recolour the screen.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC

from fleetgate.watch.table import OperationRow, OperationTable

SEPARATOR = "  "
ELLIPSIS = "…"
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
STATUS_COLOURS = {
    "PENDING": "\x1b[36m",  # cyan
    "EXECUTING": "\x1b[33m",  # yellow
    "SUCCESSFUL": "\x1b[32m",  # green
    "FAILED": "\x1b[1;31m",  # bold red
}


@dataclass(frozen=True, slots=True)
class _Column:
    title: str
    least: int  # it never shrinks below this
    most: int | None  # it never grows beyond this (None: as wide as its widest cell)


_ID = _Column("ID", 2, None)  # never cut: it is what an operator looks up
_DEVICE = _Column("DEVICE", 6, 24)
_TYPE = _Column("TYPE", 6, 28)
_STATUS = _Column("STATUS", 10, 10)
_REASON = _Column("FAILURE REASON", 8, None)
_TIME = _Column("STATUS TIME", 8, 20)
_SHRINKABLE = (_DEVICE, _TYPE, _REASON)
_INERT = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def render_table(
    table: OperationTable,
    *,
    width: int,
    height: int | None = None,
    title: str | None = None,
    colour: bool = False,
) -> list[str]:
    """The lines of the table: ``title`` (if any), the counts, the column heads, then the
    latest changes first; no line wider than ``width``, no more than ``height`` lines."""
    width = max(width, 1)
    head = [] if title is None else [fit(inert(title), width).rstrip()]
    head.append(summary(table.counts(), width=width, colour=colour))
    room = None if height is None else max(height - len(head) - 1, 0)
    rows = table.latest(room)
    columns, widths, short_time = _layout(rows, width)
    fits = sum(widths.values()) + len(SEPARATOR) * (len(columns) - 1) <= width
    status_at = columns.index(_STATUS)

    def line(texts: list[str], colour_code: str | None = None) -> str:
        if not fits:
            return fit(_join(texts), width).rstrip()
        if colour_code is not None:
            texts[status_at] = colour_code + texts[status_at] + _RESET
        return _join(texts)

    heading = line([fit(c.title, widths[c]) for c in columns])
    lines = [*head, _BOLD + heading + _RESET if colour else heading]
    for row in rows:
        cells = _cells(row, columns, short_time)
        code = STATUS_COLOURS.get(row.status) if colour else None
        lines.append(line([fit(cells[c], widths[c]) for c in columns], code))
    if not rows and room != 0:
        lines.append(fit("(no operations yet)", width).rstrip())
    return lines


def summary(counts: Mapping[str, int], *, width: int, colour: bool = False) -> str:
    """``PENDING 3  EXECUTING 1  …  total 16``, cut to ``width``."""
    parts = [(status, f"{status} {n}") for status, n in counts.items()]
    parts.append(("", f"total {sum(counts.values())}"))
    plain = SEPARATOR.join(text for _, text in parts)
    if not colour or cell_width(plain) > width:
        return fit(plain, width).rstrip()
    return SEPARATOR.join(
        STATUS_COLOURS[status] + text + _RESET if status in STATUS_COLOURS else text
        for status, text in parts
    )


def plain_line(row: OperationRow) -> str:
    """One change for a pipe: status time, id, device, type, status, failure reason,
    tab-separated (a script can ``cut -f``)."""
    fields = [
        _iso(row) or "-",
        row.id,
        row.device or "-",
        row.fragment or "-",
        row.status or "-",
        row.failure_reason,
    ]
    return "\t".join(inert(field) for field in fields).rstrip("\t")


def _layout(
    rows: Sequence[OperationRow], width: int
) -> tuple[list[_Column], dict[_Column, int], bool]:
    """Which columns, how wide each, and whether the time is shortened to fit ``width``:
    narrow device/type/reason (the one with the most to spare first), then shorten the
    time, then drop the reason; if even that is too wide, the caller cuts the lines."""
    columns = [_ID, _DEVICE, _TYPE, _STATUS, _REASON, _TIME]
    short_time = False
    for step in range(3):
        if step == 1:
            short_time = True
        if step == 2:
            columns.remove(_REASON)
        cells = [_cells(row, columns, short_time) for row in rows]
        widths = {c: _natural(c, [cell[c] for cell in cells]) for c in columns}
        excess = sum(widths.values()) + len(SEPARATOR) * (len(columns) - 1) - width
        shrinkable = [c for c in _SHRINKABLE if c in columns]
        while excess > 0:
            widest = max(shrinkable, key=lambda c: widths[c] - c.least)
            if widths[widest] <= widest.least:
                break
            widths[widest] -= 1
            excess -= 1
        if excess <= 0:
            break
    return columns, widths, short_time


def _natural(column: _Column, cells: list[str]) -> int:
    natural = max([column.least, cell_width(column.title), *(cell_width(c) for c in cells)])
    return natural if column.most is None else min(natural, column.most)


def _cells(row: OperationRow, columns: list[_Column], short_time: bool) -> dict[_Column, str]:
    values = {
        _ID: row.id,
        _DEVICE: row.device,
        _TYPE: row.fragment,
        _STATUS: row.status,
        _REASON: row.failure_reason,
        _TIME: _short(row) if short_time else _iso(row),
    }
    return {c: inert(values[c]) for c in columns}


def _iso(row: OperationRow) -> str:
    at = row.status_time or row.creation_time
    return "" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(row: OperationRow) -> str:
    at = row.status_time or row.creation_time
    return "" if at is None else at.astimezone(UTC).strftime("%H:%M:%S")


def _join(texts: list[str]) -> str:
    return SEPARATOR.join(texts).rstrip()


def inert(text: str) -> str:
    """``text`` with every control, format, line-separating or lone surrogate character
    replaced by a space."""
    if text.isprintable():
        return text
    return "".join(" " if unicodedata.category(ch) in _INERT else ch for ch in text)


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes (one line, no control characters)."""
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def fit(text: str, width: int) -> str:
    """``text`` padded or cut (ending in ``…``) to exactly ``width`` cells."""
    if width <= 0:
        return ""
    used = cell_width(text)
    if used <= width:
        return text + " " * (width - used)
    kept: list[str] = []
    used = 0
    for ch in text:
        w = _char_width(ch)
        if used + w > width - 1:
            break
        kept.append(ch)
        used += w
    return "".join(kept) + ELLIPSIS + " " * (width - 1 - used)
