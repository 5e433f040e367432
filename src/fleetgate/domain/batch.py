"""Batch updates from a template: the columns and each record's decision (pure, stdlib
only).

A template is one sheet: a header row naming the columns, then one device a row. The key
column ``id`` (the managed object's id) says which device; every other column is one
editable attribute (:data:`EDITABLE`). Reading rules (the file's format is read by
:mod:`fleetgate.domain.batch_file` and, for ``.xlsx``, by the ``sheets`` adapter, both
into rows of text cells):

- Header names are matched without regard to case or surrounding blanks. ``id`` is
  mandatory; a column named twice, a read-only attribute (:data:`READ_ONLY`), an unknown
  name or a header with nothing to change is a whole-file error (:class:`ValidationFailed`).
- Rows are numbered as a spreadsheet shows them: the header is row 1. A row whose cells
  are all empty is skipped; every other row is a record, decided on its own.
- An empty editable cell leaves that attribute as it is (a template cannot clear one).
- A record fails (an :class:`Invalid` per problem, naming the row and the column) when
  its id is not an id, a cell is over :data:`MAX_CELL_CHARS` or cannot be stored, a number
  is not a number or out of range, it changes nothing, or its id was on an earlier row
  (the first row wins). Whether the device exists, is a device and is of the template's
  type is decided against the inventory (:func:`check_device`).

What a record does to its device, the template and the optimistic check are
:mod:`fleetgate.domain.batch_apply`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fleetgate.domain.device_messages import SERVER_FRAGMENTS
from fleetgate.domain.devices import DEVICE_ID_TYPE, ManagedObject
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.ids import parse_id
from fleetgate.domain.text import unstorable

#: Longest cell accepted, in characters (a longer one fails its record).
MAX_CELL_CHARS = 1000
#: Most records in one file (more: the whole file is refused, 413).
MAX_RECORDS = 10_000
#: Most columns in the header (more: 422; there are only a dozen to name).
MAX_COLUMNS = 64
#: The key column: the managed object's id, never changed.
KEY = "id"


class Kind(Enum):
    TEXT = "text"
    NUMBER = "number"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class Column:
    """One editable attribute: ``name`` in the header; ``path`` where it lives (``("name",)``
    for the managed object's name, a fragment that is a value (``c8y_Notes``), or a
    fragment and its field)."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.name.split("."))


#: What a template can change, in template order. Cumulocity's standard fragments that an
#: operator (not the device) owns: the name, notes, the position where a device is
#: installed, its hardware as labelled, and the availability interval (minutes; <= 0 is
#: maintenance).
EDITABLE: tuple[Column, ...] = (
    Column("name", Kind.TEXT),
    Column("c8y_Notes", Kind.TEXT),
    Column("c8y_Hardware.model", Kind.TEXT),
    Column("c8y_Hardware.revision", Kind.TEXT),
    Column("c8y_Hardware.serialNumber", Kind.TEXT),
    Column("c8y_Position.lat", Kind.NUMBER, -90.0, 90.0),
    Column("c8y_Position.lng", Kind.NUMBER, -180.0, 180.0),
    Column("c8y_Position.alt", Kind.NUMBER, -1e6, 1e6),
    Column("c8y_RequiredAvailability.responseInterval", Kind.INTEGER, -(2**31), 2**31 - 1),
)
_BY_NAME = {c.name.lower(): c for c in EDITABLE}


def editable(name: str) -> Column:
    """The editable column named ``name`` (as :data:`EDITABLE` spells it, or any case)."""
    return _BY_NAME[name.lower()]


#: Attributes a template names but cannot change: the managed object's own fields, its
#: identity, and what the server or the device keeps (a column of one, or of a field of
#: one, is refused as read-only rather than unknown).
READ_ONLY = frozenset(
    name.lower()
    for name in (
        "type",
        "owner",
        "self",
        "creationTime",
        "lastUpdated",
        DEVICE_ID_TYPE,
        "childDevices",
        "childAssets",
        "childAdditions",
        "deviceParents",
        "assetParents",
        "additionParents",
        "c8y_SupportedOperations",
        "c8y_Firmware",
        "c8y_SoftwareList",
        "c8y_Mobile",
        "fleetgate_Lifecycle",
        "fleetgate_Connection",
        *SERVER_FRAGMENTS,
    )
)


@dataclass(frozen=True, slots=True)
class Header:
    """The header row, understood: the column at each position (None: key)."""

    #: Position of the ``id`` column.
    key: int
    #: (position, column) of each editable column named.
    columns: tuple[tuple[int, Column], ...]
    width: int

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for _, c in self.columns)


@dataclass(frozen=True, slots=True)
class Invalid:
    """One problem of a record: its row, the column (None: the row as a whole), why."""

    row: int
    column: str | None
    cause: str

    def line(self) -> str:
        """Its line in ``errmsg.txt``."""
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.cause}"


@dataclass(frozen=True, slots=True)
class Record:
    """A record that passed every check of the file alone."""

    row: int
    object_id: int
    #: Column name → the new value (str, float or int), only the columns it changes.
    changes: dict[str, Any]


def errmsg_text(invalid: Iterable[Invalid]) -> str:
    """``errmsg.txt``: one line per problem, by row."""
    return "".join(f"{i.line()}\n" for i in sorted(invalid, key=lambda i: i.row))


def parse_header(cells: Sequence[str]) -> Header:
    """Understand the header row, or :class:`ValidationFailed` naming what is wrong."""
    names = [c.strip() for c in cells]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValidationFailed("the file is empty: its first row must name the columns")
    if len(names) > MAX_COLUMNS:
        raise ValidationFailed(f"the header names {len(names)} columns; at most {MAX_COLUMNS}")
    key: int | None = None
    columns: list[tuple[int, Column]] = []
    seen: set[str] = set()
    editable = ", ".join(c.name for c in EDITABLE)
    for position, name in enumerate(names):
        lowered = name.lower()
        if not name:
            raise ValidationFailed(f"column {position + 1} of the header has no name")
        if lowered in seen:
            raise ValidationFailed(f"the column {name!r} appears twice in the header")
        seen.add(lowered)
        if lowered == KEY:
            key = position
        elif lowered in _BY_NAME:
            columns.append((position, _BY_NAME[lowered]))
        elif lowered in READ_ONLY or lowered.split(".", 1)[0] in READ_ONLY:
            raise ValidationFailed(
                f"the column {name!r} is read-only: a template changes only {editable}"
            )
        else:
            raise ValidationFailed(
                f"unknown column {shown(name)}: a template has {KEY} and any of {editable}"
            )
    if key is None:
        raise ValidationFailed(f"the header has no {KEY} column (the devices' managed object ids)")
    if not columns:
        raise ValidationFailed(f"the header names no column to change (any of {editable})")
    return Header(key, tuple(columns), len(names))


def read_records(
    header: Header, rows: Iterable[Sequence[str]], first_row: int = 2
) -> Iterator[Record | list[Invalid]]:
    """Each record of ``rows`` (which follow the header; the first is ``first_row``), as a
    :class:`Record` or its problems. Empty rows are skipped; an id given on an earlier row
    fails (the first row wins)."""
    seen: dict[int, int] = {}
    for number, cells in enumerate(rows, start=first_row):
        if all(not c.strip() for c in cells):
            continue
        decided = read_record(header, number, cells)
        if isinstance(decided, Record):
            first = seen.setdefault(decided.object_id, number)
            if first != number:
                decided = [
                    Invalid(
                        number,
                        KEY,
                        f"device {decided.object_id} is also on row {first} (the first row wins)",
                    )
                ]
        yield decided


def read_record(header: Header, row: int, cells: Sequence[str]) -> Record | list[Invalid]:
    """Decide one row from its cells (as text; missing cells are empty)."""
    problems: list[Invalid] = []
    beyond = [i for i in range(header.width, len(cells)) if cells[i].strip()]
    if beyond:
        problems.append(
            Invalid(row, None, f"column {beyond[0] + 1} holds a value but the header names none")
        )
    raw_id = _cell(cells, header.key).strip()
    object_id: int | None = None
    if not raw_id:
        problems.append(Invalid(row, KEY, "the id is empty"))
    else:
        try:
            object_id = parse_id(raw_id, "managed object")
        except ValidationFailed as exc:
            problems.append(Invalid(row, KEY, exc.message))
    changes: dict[str, Any] = {}
    for position, column in header.columns:
        text = _cell(cells, position)
        if not text.strip():
            continue
        value = parse_cell(column, text)
        if isinstance(value, Problem):
            problems.append(Invalid(row, column.name, value.cause))
        else:
            changes[column.name] = value
    if not problems and not changes:
        problems.append(
            Invalid(row, None, "the row changes nothing: fill in at least one column beside id")
        )
    if problems:
        return problems
    assert object_id is not None
    return Record(row, object_id, changes)


@dataclass(frozen=True, slots=True)
class Problem:
    cause: str


def parse_cell(column: Column, text: str) -> str | float | int | Problem:
    """The value of a non-empty cell of ``column``, or why it is not one. Text is kept as
    written; numbers may have surrounding blanks."""
    if len(text) > MAX_CELL_CHARS:
        return Problem(f"the value has {len(text)} characters; at most {MAX_CELL_CHARS}")
    reason = unstorable(text)
    if reason is not None:
        return Problem(f"the value {reason}")
    if column.kind is Kind.TEXT:
        return text
    stripped = text.strip()
    # Python reads "1_000" and non-ASCII digits as numbers; a spreadsheet does not.
    if "_" in stripped or not stripped.isascii():
        stripped = "x"
    value: float | int
    if column.kind is Kind.INTEGER:
        try:
            value = int(stripped, 10)
        except ValueError:
            return Problem(f"{shown(text)} is not a whole number")
    else:
        try:
            value = float(stripped)
        except ValueError:
            return Problem(f"{shown(text)} is not a number")
        if not math.isfinite(value):
            return Problem(f"{shown(text)} is not a finite number")
    low = -math.inf if column.low is None else column.low
    high = math.inf if column.high is None else column.high
    if not low <= value <= high:
        return Problem(f"{shown(text)} is out of range ({_number(low)} to {_number(high)})")
    return value


def check_device(record: Record, found: ManagedObject | None, device_type: str) -> Invalid | None:
    """Why the record's device cannot be changed by a template of ``device_type`` (None:
    it can). A device of another tenant is not found, as any other missing one."""
    if found is None:
        return Invalid(record.row, KEY, f"no managed object {record.object_id} in this tenant")
    if not found.is_device:
        return Invalid(record.row, KEY, f"managed object {record.object_id} is not a device")
    if found.type != device_type:
        return Invalid(
            record.row,
            KEY,
            f"device {record.object_id} is of type {shown(found.type or '')}, not"
            f" {shown(device_type)} (the template's type)",
        )
    return None


def _cell(cells: Sequence[str], position: int) -> str:
    return cells[position] if position < len(cells) else ""


def shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut at ``limit`` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
