"""Bulk device credentials: deciding each row of the CSV file (pure, stdlib only).

:mod:`fleetgate.domain.bulk_file` reads the file; every row ends here as a
:class:`DeviceRow` to store or a :class:`RowFailure` that says why not, and a stored row
as :class:`Stored` or :class:`Refused`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleetgate.domain.devices import (
    DEFAULT_DEVICE_TYPE,
    DEVICE_ID_TYPE,
    check_device_id,
)
from fleetgate.domain.errors import ValidationFailed
from fleetgate.domain.text import unstorable

#: Cumulocity's password rule for users: 8 to 32 characters of letters, digits and these.
PASSWORD_SYMBOLS = frozenset("`~!@#$%^&*()_|+-=?;:'\",.<>{}[]\\/")
PASSWORD_MIN, PASSWORD_MAX = 8, 32
_MASK = "***"
GROUP_FRAGMENT, GROUP_TYPE = "c8y_IsDeviceGroup", "c8y_DeviceGroup"
SUBGROUP_FRAGMENT, SUBGROUP_TYPE = "c8y_IsDeviceSubgroup", "c8y_DeviceSubgroup"


class Column(StrEnum):
    ID = "ID"
    CREDENTIALS = "CREDENTIALS"
    TENANT = "TENANT"
    TYPE = "TYPE"
    NAME = "NAME"
    ICCID = "ICCID"
    IDTYPE = "IDTYPE"
    PATH = "PATH"
    SHELL = "SHELL"


#: Columns that describe the device, and so need TYPE and NAME in the file (the seed's rule).
NEED_TYPE_AND_NAME = (Column.ICCID, Column.IDTYPE, Column.PATH, Column.SHELL)


class BulkStatus(StrEnum):
    CREATED = "CREATED"
    FAILED = "FAILED"
    CREDENTIAL_UPDATED = "CREDENTIAL_UPDATED"


@dataclass(frozen=True, slots=True)
class Header:
    """The header line, understood: which known column sits at which position."""

    separator: str
    #: One entry per position: the known column there, or None (an ignored column).
    positions: tuple[Column | None, ...]
    #: Names of the columns that are ignored, as written.
    ignored: tuple[str, ...]
    #: True when the TENANT column is honoured (the caller is the management tenant).
    tenant_column: bool

    def has(self, column: Column) -> bool:
        return column in self.positions


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A row that passed every check of the file alone; the store decides the rest."""

    line: int
    device_id: str
    password: str
    #: The tenant named in the row (management tenant only), else None: the caller's.
    tenant: str | None
    type: str | None
    name: str | None
    iccid: str | None
    id_type: str
    path: tuple[str, ...]
    shell: bool
    #: The row as read, its separator re-joined and the password masked.
    text: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class RowFailure:
    line: int
    reason: str
    text: str
    device_id: str | None = None


@dataclass(slots=True)
class BulkResult:
    """What an import did; failures and updated ids are kept (they are the answer)."""

    created: int = 0
    updated: list[str] = field(default_factory=list)
    failures: list[RowFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + len(self.updated) + len(self.failures)

    @property
    def successful(self) -> int:
        return self.created + len(self.updated)


def check_password(password: str) -> str | None:
    """Why ``password`` cannot be a device's password, or None when it can."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"the password must have {PASSWORD_MIN} to {PASSWORD_MAX} characters"
    if any(not (c.isascii() and c.isalnum()) and c not in PASSWORD_SYMBOLS for c in password):
        return (
            "the password may only hold letters, digits and the symbols"
            f" {''.join(sorted(PASSWORD_SYMBOLS))}"
        )
    if password.isdigit():
        return "the password cannot be only digits"
    return None


def read_row(header: Header, values: list[str], line: int) -> DeviceRow | RowFailure:
    """Decide one record from its values (as split by the CSV reader)."""
    if len(values) != len(header.positions):
        # Not shown: values that cannot be matched to the columns may hold a password.
        return RowFailure(
            line,
            f"the row has {len(values)} values but the header names {len(header.positions)}"
            " columns",
            "",
        )
    text = row_text(header, values)
    get = {c: values[i] for i, c in enumerate(header.positions) if c is not None}
    device_id = get[Column.ID]
    if any(not_utf8(v) for v in values):
        return RowFailure(line, "the row is not valid UTF-8", text, None)
    for column, value in get.items():
        problem = unstorable(value) if column is not Column.CREDENTIALS else None
        if problem is not None:
            shown = device_id if column is not Column.ID else None
            return RowFailure(line, f"{column.value} {problem}", text, shown)
    reason = _device_id_problem(device_id)
    if reason is not None:
        return RowFailure(line, reason, text, device_id or None)

    def fail(reason: str) -> RowFailure:
        return RowFailure(line, reason, text, device_id)

    reason = check_password(get[Column.CREDENTIALS])
    if reason is not None:
        return fail(reason)
    tenant = get.get(Column.TENANT) if header.tenant_column else None
    if header.tenant_column and not tenant:
        return fail("TENANT is empty (the management tenant must name the device's tenant)")
    id_type = get.get(Column.IDTYPE) or DEVICE_ID_TYPE
    if len(id_type.encode("utf-8")) > 1000:
        return fail("IDTYPE is longer than 1000 bytes")
    raw_path = get.get(Column.PATH, "")
    path = tuple(raw_path.split("/")) if raw_path else ()
    if any(not name.strip() for name in path):
        return fail(f"PATH {raw_path!r} has an empty group name")
    shell = get.get(Column.SHELL, "")
    if shell not in ("", "0", "1"):
        return fail(f"SHELL must be 1, 0 or empty, not {shell!r}")
    return DeviceRow(
        line=line,
        device_id=device_id,
        password=get[Column.CREDENTIALS],
        tenant=tenant,
        type=get.get(Column.TYPE) or None,
        name=get.get(Column.NAME) or None,
        iccid=get.get(Column.ICCID) or None,
        id_type=id_type,
        path=path,
        shell=shell == "1",
        text=text,
    )


def row_text(header: Header, values: list[str]) -> str:
    """The row for a failure report: values re-joined, the password never shown.

    ``values`` must have one value per column.
    """
    shown = [
        _MASK if column is Column.CREDENTIALS and v else v
        for column, v in zip(header.positions, values, strict=True)
    ]
    return _printable(header.separator.join(shown))


def device_values(
    row: DeviceRow, existing: dict[str, Any] | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """(name, type, fragments to merge) for the device of ``row``.

    ``existing`` is the device's current fragments (None for a new device). A new device
    is named after its id and typed like auto-registered ones unless the row says
    otherwise; an existing one keeps its name and type (None: leave as is) unless the row
    gives them. ``c8y_Mobile`` is merged key by key; SHELL adds ``c8y_Command`` to
    ``c8y_SupportedOperations`` once, keeping the operations already there.
    """
    current = existing or {}
    fragments: dict[str, Any] = {"c8y_IsDevice": {}}
    if row.iccid:
        mobile = current.get("c8y_Mobile")
        fragments["c8y_Mobile"] = {
            **(mobile if isinstance(mobile, dict) else {}),
            "iccid": row.iccid,
        }
    if row.shell:
        listed = current.get("c8y_SupportedOperations")
        operations = [o for o in listed if isinstance(o, str)] if isinstance(listed, list) else []
        if "c8y_Command" not in operations:
            operations.append("c8y_Command")
        fragments["c8y_SupportedOperations"] = operations
    if existing is not None:
        return row.name, row.type, fragments
    return row.name or row.device_id, row.type or DEFAULT_DEVICE_TYPE, fragments


def group_values(depth: int) -> tuple[str, dict[str, Any]]:
    """(type, fragments) of a group ``depth`` levels below the top (0: a top-level group)."""
    if depth == 0:
        return GROUP_TYPE, {GROUP_FRAGMENT: {}}
    return SUBGROUP_TYPE, {SUBGROUP_FRAGMENT: {}}


def _device_id_problem(device_id: str) -> str | None:
    if not device_id:
        return "ID is empty"
    try:
        check_device_id(device_id)
    except ValidationFailed as exc:
        return exc.message
    return None


def _printable(text: str) -> str:
    """``text`` with bytes that were not UTF-8 shown as ``?`` (safe to put in JSON)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass(frozen=True, slots=True)
class Stored:
    """The row is committed."""

    #: True when the device's managed object was made by this row (else: updated).
    created: bool
    #: Whether the device's user is enabled (an operator may have disabled it before).
    enabled: bool


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing of the row is stored, for this reason."""

    reason: str
