"""Reading bulk credentials CSV files and deciding rows (fleetgate.domain.bulk)."""

from __future__ import annotations

import io

import pytest

from fleetgate.domain.bulk import Column, DeviceRow, RowFailure, check_password, device_values
from fleetgate.domain.bulk_file import (
    MAX_LINE_BYTES,
    BulkFile,
    detect_separator,
    parse_header,
    read_text,
)
from fleetgate.domain.errors import ValidationFailed


def rows(text: str, *, management: bool = False) -> list[DeviceRow | RowFailure]:
    return list(read_text(text, management=management))


@pytest.mark.parametrize(
    ("line", "separator"),
    [
        ("ID\tCREDENTIALS;x,y", "\t"),
        ("ID;CREDENTIALS,x", ";"),
        ("ID,CREDENTIALS", ","),
        ("ID", None),
    ],
)
def test_the_separator_is_the_first_of_tab_semicolon_comma_in_the_header(
    line: str, separator: str | None
) -> None:
    assert detect_separator(line) == separator


def test_header_names_are_case_insensitive_and_unknown_ones_ignored() -> None:
    header = parse_header(" id ;Credentials;colour;Type;NAME\r\n", management=False)
    assert header.positions == (Column.ID, Column.CREDENTIALS, None, Column.TYPE, Column.NAME)
    assert header.ignored == ("colour",)


def test_tenant_is_an_ignored_column_for_an_ordinary_tenant() -> None:
    header = parse_header("ID,CREDENTIALS,TENANT", management=False)
    assert header.positions == (Column.ID, Column.CREDENTIALS, None)
    with pytest.raises(ValidationFailed, match="TENANT"):
        parse_header("ID,CREDENTIALS", management=True)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty"),
        ("ID CREDENTIALS", "separator"),
        ("ID;TYPE;NAME", "CREDENTIALS"),
        ("ID;CREDENTIALS;ID", "twice"),
        ("ID;CREDENTIALS;ICCID", "ICCID need the columns TYPE and NAME"),
        ("ID;CREDENTIALS;SHELL;TYPE", "missing: NAME"),
        ("ID;CREDENTIALS;NAME", "go together"),
    ],
)
def test_bad_headers_refuse_the_whole_file(line: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        parse_header(line, management=False)


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("abcd1234", True),
        ("e2epassword123!", True),
        ("a" * 32, True),
        ("a" * 33, False),
        ("abc1234", False),
        ("12345678", False),
        ("pass word1", False),
        ("pässwort1", False),
    ],
)
def test_password_rule(password: str, ok: bool) -> None:
    assert (check_password(password) is None) is ok


def test_a_full_row_is_read() -> None:
    [row] = rows(
        "ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL\n"
        "id_111;abcd1234;type_of_device;Device 111;333;c8y_Imei;csv device1/subgroup1;1\n"
    )
    assert isinstance(row, DeviceRow)
    assert (row.device_id, row.password, row.id_type, row.path, row.shell) == (
        "id_111",
        "abcd1234",
        "c8y_Imei",
        ("csv device1", "subgroup1"),
        True,
    )
    assert row.text == "id_111;***;type_of_device;Device 111;333;c8y_Imei;csv device1/subgroup1;1"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("x;abcd1234;t;n;;;a//b;", "empty group name"),
        ("x;abcd1234;t;n;;;;yes", "SHELL must be 1, 0 or empty"),
        ("x;abcd1234;t;n;;;", "the row has 7 values but the header names 8 columns"),
        ("x+y;abcd1234;t;n;;;;", "MQTT client id"),
    ],
)
def test_bad_rows_fail_with_a_reason(line: str, reason: str) -> None:
    [row] = rows("ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL\n" + line + "\n")
    assert isinstance(row, RowFailure)
    assert reason in row.reason
    assert "abcd1234" not in row.text


def test_blank_lines_are_skipped_and_line_numbers_are_physical() -> None:
    result = rows('ID,CREDENTIALS\n\na,abcd1234\n"b\nc",short\n\nd,abcd1234\n')
    assert [r.line for r in result] == [3, 4, 7]
    assert isinstance(result[1], RowFailure)


def test_a_line_too_long_fails_alone() -> None:
    data = b"ID,CREDENTIALS\n" + b"x" * (MAX_LINE_BYTES + 10) + b"\nok,abcd1234\n"
    result = list(BulkFile(io.BytesIO(data), management=False))
    assert isinstance(result[0], RowFailure)
    assert "longer than" in result[0].reason
    assert isinstance(result[1], DeviceRow)
    assert result[1].line == 3


def test_duplicates_are_per_tenant_for_the_management_tenant() -> None:
    result = rows(
        "ID,CREDENTIALS,TENANT\nd,abcd1234,t1\nd,abcd1234,t2\nd,abcd1234,t1\n", management=True
    )
    assert [type(r).__name__ for r in result] == ["DeviceRow", "DeviceRow", "RowFailure"]


def test_device_values_merge_into_an_existing_device() -> None:
    [row] = rows("ID,CREDENTIALS,TYPE,NAME,ICCID,SHELL\nd,abcd1234,,,89,1\n")
    assert isinstance(row, DeviceRow)
    existing = {"c8y_Mobile": {"imei": "1"}, "c8y_SupportedOperations": ["c8y_Restart"]}
    name, type_, fragments = device_values(row, existing)
    assert (name, type_) == (None, None)
    assert fragments["c8y_Mobile"] == {"imei": "1", "iccid": "89"}
    assert fragments["c8y_SupportedOperations"] == ["c8y_Restart", "c8y_Command"]
    assert device_values(row, None)[:2] == ("d", "c8y_MQTTDevice")


@pytest.mark.parametrize("before", ["\n", "\r\n", "\n\n\n", "   \n", "\t\n\r\n", "\ufeff\n"])
def test_blank_lines_before_the_header_are_skipped_too(before: str) -> None:
    # Issue 9: a file whose first line was blank was called empty (422).
    data = (before + "ID;CREDENTIALS\na;abcd1234\n").encode()
    bulk = BulkFile(io.BytesIO(data), management=False)
    assert bulk.header.positions == (Column.ID, Column.CREDENTIALS)
    [row] = list(bulk)
    assert isinstance(row, DeviceRow)
    assert row.line == before.count("\n") + 2


@pytest.mark.parametrize("content", ["", "\n", "\r\n\r\n", "  \n\t\n", "\ufeff"])
def test_a_file_of_blank_lines_is_empty(content: str) -> None:
    with pytest.raises(ValidationFailed, match="empty"):
        BulkFile(io.BytesIO(content.encode()), management=False)


@pytest.mark.parametrize(
    ("line", "reason", "device_id"),
    [
        ("d\x00;abcd1234;t;n;;;;", "ID holds a NUL character", None),
        ("d;abcd1234;t\x00;n;;;;", "TYPE holds a NUL character", "d"),
        ("d;abcd1234;t;n\x00;;;;", "NAME holds a NUL character", "d"),
        ("d;abcd1234;t;n;\x00;;;", "ICCID holds a NUL character", "d"),
        ("d;abcd1234;t;n;;c8y_\x00;;", "IDTYPE holds a NUL character", "d"),
        ("d;abcd1234;t;n;;;a/\x00/b;", "PATH holds a NUL character", "d"),
        ("d;abcd\x001234;t;n;;;;", "the password may only hold", "d"),
    ],
)
def test_a_nul_fails_its_row_with_the_column_named(
    line: str, reason: str, device_id: str | None
) -> None:
    # Issue 9: the database refused the row ("invalid byte sequence …") and said so.
    [row] = rows("ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL\n" + line + "\n")
    assert isinstance(row, RowFailure)
    assert reason in row.reason
    assert row.device_id == device_id
    assert "abcd" not in row.text


def test_a_nul_in_the_tenant_column_fails_its_row() -> None:
    [row] = rows("ID,CREDENTIALS,TENANT\nd,abcd1234,t1\x00\n", management=True)
    assert isinstance(row, RowFailure)
    assert "TENANT holds a NUL character" in row.reason
