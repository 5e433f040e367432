"""Batch updates' pure rules: the header, each record, the device checks, the optimistic
decision at confirmation, the template and the format of an upload."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetgate.domain.batch import (
    EDITABLE,
    Invalid,
    Record,
    check_device,
    errmsg_text,
    parse_header,
    read_records,
)
from fleetgate.domain.batch_apply import (
    Refusal,
    StagedRecord,
    Unchanged,
    Update,
    decide,
    staged,
    template_rows,
)
from fleetgate.domain.batch_file import Format, detect_format, read_csv, write_csv
from fleetgate.domain.devices import ManagedObject
from fleetgate.domain.errors import TooLarge, UnsupportedMedia, ValidationFailed

T0 = datetime(2026, 12, 2, tzinfo=UTC)


def device(
    object_id: int = 7, type: str = "acme_Sensor", name: str = "s", **fragments: object
) -> ManagedObject:
    return ManagedObject(
        object_id, "t1", name, type, None, T0, T0, {"c8y_IsDevice": {}, **fragments}
    )


def test_the_header_matches_names_without_case_or_blanks() -> None:
    header = parse_header([" ID ", "Name", "c8y_position.LAT", "", ""])
    assert header.key == 0
    assert header.names == ("name", "c8y_Position.lat")
    assert header.width == 3


@pytest.mark.parametrize(
    ("cells", "words"),
    [
        ([], "empty"),
        (["", ""], "empty"),
        (["name"], "no id column"),
        (["id"], "no column to change"),
        (["id", "name", "Name"], "appears twice"),
        (["id", "", "name"], "column 2 of the header has no name"),
        (["id", "owner"], "'owner' is read-only"),
        (["id", "c8y_Serial"], "'c8y_Serial' is read-only"),
        (["id", "fleetgate_Lifecycle.status"], "read-only"),
        (["id", "c8y_Notes.text"], "unknown column"),
        (["id", "colour"], "unknown column 'colour'"),
        (["id", *[f"x{i}" for i in range(64)]], "at most 64"),
    ],
)
def test_a_bad_header_is_refused_with_its_reason(cells: list[str], words: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_header(cells)
    assert words in caught.value.message


def test_records_are_decided_row_by_row_and_the_first_duplicate_wins() -> None:
    header = parse_header(
        ["id", "name", "c8y_Position.lat", "c8y_RequiredAvailability.responseInterval"]
    )
    rows = [
        ["7", "a", " 48.5 ", "-1"],
        ["", "", "", ""],
        ["8", "", "north", "x"],
        ["7", "b", "", ""],
        ["9"],
        ["", "lonely", "", ""],
    ]
    decided = list(read_records(header, rows))
    assert decided[0] == Record(
        2,
        7,
        {"name": "a", "c8y_Position.lat": 48.5, "c8y_RequiredAvailability.responseInterval": -1},
    )
    assert decided[1] == [
        Invalid(4, "c8y_Position.lat", "'north' is not a number"),
        Invalid(4, "c8y_RequiredAvailability.responseInterval", "'x' is not a whole number"),
    ]
    assert decided[2] == [Invalid(5, "id", "device 7 is also on row 2 (the first row wins)")]
    assert decided[3] == [
        Invalid(6, None, "the row changes nothing: fill in at least one column beside id")
    ]
    assert decided[4] == [Invalid(7, "id", "the id is empty")]
    assert len(decided) == 5  # the empty row 3 is no record


def test_errmsg_names_row_and_column_in_row_order() -> None:
    text = errmsg_text([Invalid(5, None, "b"), Invalid(3, "name", "a")])
    assert text == "row 3, column name: a\nrow 5: b\n"


def test_the_device_must_exist_be_a_device_and_of_the_type() -> None:
    record = Record(2, 7, {"name": "x"})
    assert check_device(record, device(), "acme_Sensor") is None
    missing = check_device(record, None, "acme_Sensor")
    assert missing == Invalid(2, "id", "no managed object 7 in this tenant")
    group = ManagedObject(7, "t1", "g", "acme_Sensor", None, T0, T0, {"c8y_IsDeviceGroup": {}})
    assert check_device(record, group, "acme_Sensor") == Invalid(
        2, "id", "managed object 7 is not a device"
    )
    other = check_device(record, device(type="acme_Meter"), "acme_Sensor")
    assert other is not None
    assert "of type 'acme_Meter'" in other.cause


def test_confirming_merges_into_fragments_and_skips_what_is_equal() -> None:
    obj = device(c8y_Position={"lat": 1.0, "lng": 2.0}, c8y_Notes="old")
    record = staged(Record(2, 7, {"c8y_Position.lat": 3.0, "c8y_Notes": "old", "name": "new"}), obj)
    assert record.before == {"c8y_Position.lat": 1.0, "c8y_Notes": "old", "name": "s"}
    assert decide(record, obj, "acme_Sensor") == Update(
        {"name": "new"}, {"c8y_Position": {"lat": 3.0, "lng": 2.0}}
    )
    same = staged(Record(2, 7, {"c8y_Notes": "old"}), obj)
    assert decide(same, obj, "acme_Sensor") == Unchanged()


def test_a_value_changed_since_the_upload_refuses_the_record() -> None:
    record = StagedRecord(2, 7, {"name": "mine"}, {"name": "s"})
    now = device(name="theirs")
    refused = decide(record, now, "acme_Sensor")
    assert isinstance(refused, Refusal)
    assert "name was 's', is now 'theirs'" in refused.cause
    # A change to a column the record does not write is no conflict.
    other = device(c8y_Notes="someone's note")
    assert isinstance(decide(record, other, "acme_Sensor"), Update)
    assert isinstance(decide(record, None, "acme_Sensor"), Refusal)
    assert isinstance(decide(record, device(type="x"), "acme_Sensor"), Refusal)


def test_the_template_lists_every_editable_column_and_the_example() -> None:
    assert template_rows(None) == [["id", *(c.name for c in EDITABLE)]]
    rows = template_rows(
        device(c8y_Hardware={"model": "S1"}, c8y_RequiredAvailability={"responseInterval": 30})
    )
    example = dict(zip(rows[0], rows[1], strict=True))
    assert example["id"] == "7"
    assert example["c8y_Hardware.model"] == "S1"
    assert example["c8y_RequiredAvailability.responseInterval"] == 30
    assert example["c8y_Notes"] == ""


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"PK\x03\x04rest", "x.xlsx", Format.XLSX),
        (b"PK\x03\x04rest", None, Format.XLSX),
        (b"id,name\n", "x.csv", Format.CSV),
        (b"id,name\n", "x.xlsx", Format.CSV),
    ],
)
def test_the_format_is_told_from_the_bytes(data: bytes, name: str | None, expected: Format) -> None:
    assert detect_format(data, name) is expected


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"PK\x03\x04", "x.XLSM", "macro-enabled"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00", "x.xlsx", "encrypted"),
        (b"\x89PNG\r\n", "x.xlsx", "PNG image"),
        (b"a\x00b", "x.csv", "NUL bytes"),
    ],
)
def test_what_is_no_spreadsheet_is_refused(data: bytes, name: str, words: str) -> None:
    with pytest.raises(UnsupportedMedia) as caught:
        detect_format(data, name)
    assert words in caught.value.message


def test_csv_takes_the_separator_of_its_header_and_skips_a_bom() -> None:
    assert read_csv("\ufeffid;name\r\n7;a,b\r\n".encode()) == [["id", "name"], ["7", "a,b"]]
    assert read_csv(b'id,name\n\n7,"x\ny"\n') == [["id", "name"], [], ["7", "x\ny"]]


def test_csv_refuses_too_many_records_and_broken_quotes() -> None:
    with pytest.raises(TooLarge):
        read_csv(b"id\n" + b"1\n" * 10_001)
    with pytest.raises(ValidationFailed) as caught:
        read_csv(b'id,name\n7,"a"b\n')
    assert "row 2" in caught.value.message


def test_write_csv_quotes_what_needs_it() -> None:
    assert write_csv([["id", "name"], [7, 'a "b", c']]) == b'id,name\r\n7,"a ""b"", c"\r\n'
