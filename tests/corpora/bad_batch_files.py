"""Bad batch-update files (``POST /inventory/batchUpdates``), made at test time: each gets
a clear answer and none changes a device.

A case expects either :class:`Refused` (a 4xx with Cumulocity's error body whose message
holds ``words``; nothing staged) or :class:`InvalidRecord` (201, one record invalid,
its line in errmsg.txt naming the row, the column and the cause). Files name devices by
the placeholders of :class:`Devices`, filled in by the test.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import openpyxl


@dataclass(frozen=True)
class Devices:
    """Ids the corpus refers to: a device of the template's type, one of another type,
    one of another tenant, a managed object that is not a device."""

    sensor: str
    meter: str
    foreign: str
    group: str


@dataclass(frozen=True)
class Refused:
    status: int
    words: str


@dataclass(frozen=True)
class InvalidRecord:
    #: The line errmsg.txt must hold, exactly.
    line: str
    #: Valid records beside it (the first of two duplicate rows).
    valid: int = 0


@dataclass(frozen=True)
class BadFile:
    name: str
    file_name: str
    content: Callable[[Devices], bytes]
    expect: Refused | InvalidRecord | Callable[[Devices], InvalidRecord]


def xlsx(*sheets: list[list[object]], title: str = "devices") -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = title
    for index, rows in enumerate(sheets):
        sheet = first if index == 0 else book.create_sheet(f"sheet{index + 1}")
        for row in rows:
            sheet.append(row)  # type: ignore[union-attr]
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_extra_entry(workbook: bytes, name: str, data: bytes) -> bytes:
    """The workbook with one more zip entry (a macro project, …)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(workbook)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        target.writestr(name, data)
    return out.getvalue()


def zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def lone_cell_far_below(d: Devices) -> bytes:
    """A header, one record, and one cell in the sheet's last row: openpyxl would make a
    million empty rows of the gap."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "name"])
    sheet.append([d.sensor, "x"])
    sheet.cell(1_048_576, 1, "far below")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def entity_bomb(d: Devices) -> bytes:
    """A workbook whose sheet XML declares nested entities ("billion laughs"): a few KB
    that would expand to gigabytes."""
    source = zipfile.ZipFile(io.BytesIO(xlsx([["id", "name"], [d.sensor, "x"]])))
    levels = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    doctype = f'<!DOCTYPE lolz [<!ENTITY lol0 "lollollollollol">{levels}]>'.encode()
    out = io.BytesIO()
    with source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                rest = data.partition(b"?>")[2] if data.startswith(b"<?xml") else data
                data = b'<?xml version="1.0"?>' + doctype + rest.replace(b">x<", b">&lol9;<")
            target.writestr(item, data)
    return out.getvalue()


def csv(text: str) -> Callable[[Devices], bytes]:
    return lambda d: text.format(d=d).encode("utf-8")


def good_xlsx(d: Devices) -> bytes:
    return xlsx([["id", "name"], [d.sensor, "renamed"]])


CASES: list[BadFile] = [
    BadFile("an XML entity bomb", "devices.xlsx", entity_bomb, Refused(422, "amplification")),
    BadFile(
        "a lone cell in the last row",
        "devices.xlsx",
        lone_cell_far_below,
        Refused(413, "more than 20001 rows"),
    ),
    BadFile(
        "a PDF",
        "devices.xlsx",
        lambda d: b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n",
        Refused(415, "PDF document"),
    ),
    BadFile("binary junk", "devices.csv", lambda d: bytes(range(256)) * 4, Refused(415, "binary")),
    BadFile(
        "text that is not UTF-8",
        "devices.csv",
        lambda d: f"id,name\n{d.sensor},M\xfcnchen\n".encode("latin-1"),
        Refused(415, "not UTF-8"),
    ),
    BadFile("an empty file", "devices.csv", lambda d: b"", Refused(422, "empty")),
    BadFile("macro-enabled by name", "devices.xlsm", good_xlsx, Refused(415, "macro-enabled")),
    BadFile(
        "macro-enabled content (vbaProject.bin) named .xlsx",
        "devices.xlsx",
        lambda d: with_extra_entry(good_xlsx(d), "xl/vbaProject.bin", b"\xcc" * 512),
        Refused(415, "vbaProject.bin"),
    ),
    BadFile(
        "an encrypted workbook (OLE compound file)",
        "devices.xlsx",
        lambda d: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + b"EncryptedPackage",
        Refused(415, "encrypted"),
    ),
    BadFile("a legacy .xls by name", "devices.xls", lambda d: b"id,name\n", Refused(415, ".xls")),
    BadFile(
        "a damaged zip",
        "devices.xlsx",
        lambda d: b"PK\x03\x04" + b"\x14\x00" * 40,
        Refused(415, "damaged zip"),
    ),
    BadFile(
        "a zip that is no workbook",
        "devices.xlsx",
        lambda d: zip_of({"readme.txt": b"hello"}),
        Refused(415, "not an .xlsx workbook"),
    ),
    BadFile(
        "a workbook whose XML is broken",
        "devices.xlsx",
        lambda d: zip_of({"[Content_Types].xml": b"<Types", "xl/workbook.xml": b"<workbook"}),
        Refused(422, "cannot be read"),
    ),
    BadFile(
        "a zip bomb (64 MiB of zeros in one part)",
        "devices.xlsx",
        lambda d: zip_of(
            {"xl/workbook.xml": b"<x/>", "xl/worksheets/sheet1.xml": bytes(64 * 1024 * 1024)}
        ),
        Refused(413, "zip bomb"),
    ),
    BadFile(
        "several sheets",
        "devices.xlsx",
        lambda d: xlsx([["id", "name"], [d.sensor, "x"]], [["notes"]]),
        Refused(422, "2 sheets"),
    ),
    BadFile(
        "a formula where a value belongs",
        "devices.xlsx",
        lambda d: xlsx([["id", "name"], [d.sensor, '=CONCAT("a","b")']]),
        Refused(422, "cell B2 holds a formula"),
    ),
    BadFile(
        "an unknown column",
        "devices.csv",
        csv("id,name,colour\n{d.sensor},x,red\n"),
        Refused(422, "unknown column 'colour'"),
    ),
    BadFile(
        "a read-only column (type)",
        "devices.csv",
        csv("id,type\n{d.sensor},acme_Meter\n"),
        Refused(422, "'type' is read-only"),
    ),
    BadFile(
        "a read-only field (c8y_Connection.status)",
        "devices.csv",
        csv("id,c8y_Connection.status\n{d.sensor},CONNECTED\n"),
        Refused(422, "'c8y_Connection.status' is read-only"),
    ),
    BadFile("no id column", "devices.csv", csv("name\nx\n"), Refused(422, "no id column")),
    BadFile(
        "a column twice",
        "devices.csv",
        csv("id,name,NAME\n{d.sensor},x,y\n"),
        Refused(422, "appears twice"),
    ),
    BadFile(
        "a header without records", "devices.csv", csv("id,name\n\n\n"), Refused(422, "no records")
    ),
    BadFile(
        "broken CSV quoting",
        "devices.csv",
        csv('id,name\n{d.sensor},"a"b\n'),
        Refused(422, "cannot be read as CSV"),
    ),
    BadFile(
        "a file far too large",
        "devices.csv",
        lambda d: b"id,name\n" + b"1,x\n" * (2 * 1024 * 1024 + 1),
        Refused(413, "larger than"),
    ),
    BadFile(
        "too many records",
        "devices.csv",
        lambda d: b"id,name\n" + b"".join(b"%d,x\n" % i for i in range(1, 10_002)),
        Refused(413, "more than 10000 records"),
    ),
    BadFile(
        "a cell over the size limit",
        "devices.xlsx",
        lambda d: xlsx([["id", "name"], [d.sensor, "n" * 1001]]),
        InvalidRecord("row 2, column name: the value has 1001 characters; at most 1000"),
    ),
    BadFile(
        "a device of another type",
        "devices.csv",
        csv("id,name\n{d.meter},x\n"),
        lambda d: InvalidRecord(
            f"row 2, column id: device {d.meter} is of type 'acme_Meter', not 'acme_Sensor' (the template's type)"
        ),
    ),
    BadFile(
        "a device of another tenant",
        "devices.csv",
        csv("id,name\n{d.foreign},x\n"),
        lambda d: InvalidRecord(f"row 2, column id: no managed object {d.foreign} in this tenant"),
    ),
    BadFile(
        "a managed object that is no device",
        "devices.csv",
        csv("id,name\n{d.group},x\n"),
        lambda d: InvalidRecord(f"row 2, column id: managed object {d.group} is not a device"),
    ),
    BadFile(
        "a duplicate row",
        "devices.csv",
        csv("id,name\n{d.sensor},x\n{d.sensor},y\n"),
        lambda d: InvalidRecord(
            f"row 3, column id: device {d.sensor} is also on row 2 (the first row wins)",
            valid=1,
        ),
    ),
    BadFile(
        "an id that is no id",
        "devices.csv",
        csv("id,name\nsensor-1,x\n"),
        InvalidRecord(
            "row 2, column id: managed object id 'sensor-1' is invalid: an id is a whole number from 1 to 9223372036854775807"
        ),
    ),
    BadFile(
        "a latitude out of range",
        "devices.csv",
        csv("id;c8y_Position.lat\n{d.sensor};91\n"),
        InvalidRecord("row 2, column c8y_Position.lat: '91' is out of range (-90 to 90)"),
    ),
    BadFile(
        "a NUL in a CSV",
        "devices.csv",
        csv("id,c8y_Notes\n{d.sensor},a\x00b\n"),
        Refused(415, "holds NUL bytes"),
    ),
    BadFile(
        "a fraction where a whole number belongs",
        "devices.xlsx",
        lambda d: xlsx(
            [["id", "c8y_RequiredAvailability.responseInterval"], [int(d.sensor), 12.5]]
        ),
        InvalidRecord(
            "row 2, column c8y_RequiredAvailability.responseInterval: '12.5' is not a whole number"
        ),
    ),
    BadFile(
        "a value beyond the header",
        "devices.csv",
        csv("id,name\n{d.sensor},x,stray\n"),
        InvalidRecord("row 2: column 3 holds a value but the header names none"),
    ),
    BadFile(
        "a row that changes nothing",
        "devices.csv",
        csv("id,name,c8y_Notes\n{d.sensor},,\n"),
        InvalidRecord("row 2: the row changes nothing: fill in at least one column beside id"),
    ),
]
