"""Bad bulk-credentials CSV files (``POST /devicecontrol/bulkNewDeviceRequests``): each
gets a clear answer, for the whole file or per row, and nothing is half-written.

``{p}`` in a file stands for a prefix the test puts before every device id, so that the
cases can share one database. A case expects either :class:`WholeFile` (a 4xx, nothing
stored) or :class:`Rows`: exactly these ids stored, these lines failed for these reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

H = "ID;CREDENTIALS;TYPE;NAME;ICCID;IDTYPE;PATH;SHELL\n"
GOOD = "{p}ok;abcd1234;t;n;;;;\n"


@dataclass(frozen=True)
class WholeFile:
    words: str
    status: int = 422


@dataclass(frozen=True)
class Rows:
    #: Ids (without the prefix) whose devices are stored.
    created: tuple[str, ...]
    #: line → words its failureReason holds.
    failed: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CsvCase:
    name: str
    content: bytes
    expect: WholeFile | Rows
    management: bool = False


def text(content: str) -> bytes:
    return content.encode("utf-8")


CASES: list[CsvCase] = [
    # --- the whole file is refused: nothing stored
    CsvCase("empty file", b"", WholeFile("empty")),
    CsvCase("only blank lines", b"\n\r\n  \n", WholeFile("empty")),
    CsvCase("header only", text("ID;CREDENTIALS\n"), WholeFile("no rows")),
    CsvCase("header and blank lines", text("\nID;CREDENTIALS\n\n\n"), WholeFile("no rows")),
    CsvCase("no CREDENTIALS column", text("ID;TYPE\n{p}a;t\n"), WholeFile("mandatory column(s) missing: CREDENTIALS")),
    CsvCase("no ID column", text("NAME;CREDENTIALS\nx;abcd1234\n"), WholeFile("missing: ID")),
    CsvCase("columns separated by spaces", text("ID CREDENTIALS\n{p}a abcd1234\n"), WholeFile("no separator")),
    CsvCase("a column twice", text("ID;CREDENTIALS;id\n{p}a;abcd1234;b\n"), WholeFile("appears twice")),
    CsvCase("ICCID without TYPE and NAME", text("ID;CREDENTIALS;ICCID\n{p}a;abcd1234;1\n"), WholeFile("need the columns TYPE and NAME")),
    CsvCase("TYPE without NAME", text("ID;CREDENTIALS;TYPE\n{p}a;abcd1234;t\n"), WholeFile("go together")),
    CsvCase("header not UTF-8", b"ID;CREDENTIALS;N\xe4me\n{p}a;abcd1234;x\n", WholeFile("not valid UTF-8")),
    CsvCase("UTF-16 file", "ID;CREDENTIALS\n{p}a;abcd1234\n".encode("utf-16"), WholeFile("UTF-8")),
    CsvCase("a PNG image", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", WholeFile("UTF-8")),
    CsvCase("header longer than 64 KiB", text("ID;CREDENTIALS;" + "x" * 70_000 + "\n{p}a;abcd1234;y\n"), WholeFile("longer than")),
    CsvCase("header with an open quote", text('"ID;CREDENTIALS\n{p}a;abcd1234\n'), WholeFile("cannot be read")),
    CsvCase("NUL in the header", text("ID;CRED\x00ENTIALS\n{p}a;abcd1234\n"), WholeFile("CREDENTIALS")),
    CsvCase("management tenant without TENANT", text("ID;CREDENTIALS\n{p}a;abcd1234\n"), WholeFile("TENANT"), management=True),
    # --- rows fail on their own, the others are stored
    CsvCase("a row with too few values", text(H + GOOD + "{p}b,abcd1234,t,n\n"), Rows(("ok",), {3: "the row has 1 values but the header names 8"})),
    CsvCase("empty ID", text(H + GOOD + ";abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "ID is empty"})),
    CsvCase("ID with a slash", text(H + GOOD + "{p}a/b;abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "holds '/'"})),
    CsvCase("ID with a space", text(H + GOOD + "{p}a b;abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "holds ' '"})),
    CsvCase("ID with a dollar", text(H + GOOD + "{p}a$;abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "holds '$'"})),
    CsvCase("ID with a NUL", text(H + GOOD + "{p}a\x00;abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "ID holds a NUL"})),
    CsvCase("ID longer than 128 characters", text(H + GOOD + "{p}" + "x" * 130 + ";abcd1234;t;n;;;;\n"), Rows(("ok",), {3: "1 to 128 characters"})),
    CsvCase("password too short", text(H + GOOD + "{p}a;abc123;t;n;;;;\n"), Rows(("ok",), {3: "8 to 32 characters"})),
    CsvCase("password too long", text(H + GOOD + "{p}a;" + "a1" * 17 + ";t;n;;;;\n"), Rows(("ok",), {3: "8 to 32 characters"})),
    CsvCase("password only digits", text(H + GOOD + "{p}a;12345678;t;n;;;;\n"), Rows(("ok",), {3: "only digits"})),
    CsvCase("password with a non-ASCII letter", text(H + GOOD + "{p}a;abcd123\u00e9;t;n;;;;\n"), Rows(("ok",), {3: "may only hold"})),
    CsvCase("NUL in NAME", text(H + GOOD + "{p}a;abcd1234;t;n\x00n;;;;\n"), Rows(("ok",), {3: "NAME holds a NUL"})),
    CsvCase("NUL in TYPE", text(H + GOOD + "{p}a;abcd1234;\x00;n;;;;\n"), Rows(("ok",), {3: "TYPE holds a NUL"})),
    CsvCase("NUL in ICCID", text(H + GOOD + "{p}a;abcd1234;t;n;89\x00;;;\n"), Rows(("ok",), {3: "ICCID holds a NUL"})),
    CsvCase("NUL in IDTYPE", text(H + GOOD + "{p}a;abcd1234;t;n;;c8y_\x00;;\n"), Rows(("ok",), {3: "IDTYPE holds a NUL"})),
    CsvCase("NUL in PATH", text(H + GOOD + "{p}a;abcd1234;t;n;;;g\x00/h;\n"), Rows(("ok",), {3: "PATH holds a NUL"})),
    CsvCase("IDTYPE longer than 1000 bytes", text(H + GOOD + "{p}a;abcd1234;t;n;;" + "i" * 1001 + ";;\n"), Rows(("ok",), {3: "IDTYPE is longer"})),
    CsvCase("empty group in PATH", text(H + GOOD + "{p}a;abcd1234;t;n;;;g//h;\n"), Rows(("ok",), {3: "empty group name"})),
    CsvCase("SHELL not 1 or 0", text(H + GOOD + "{p}a;abcd1234;t;n;;;;yes\n"), Rows(("ok",), {3: "SHELL must be 1, 0 or empty"})),
    CsvCase("duplicate id", text(H + GOOD + "{p}ok;abcd5678;t;n;;;;\n"), Rows(("ok",), {3: "duplicate id in file"})),
    CsvCase("bytes that are not UTF-8 in a row", text(H + GOOD) + b"{p}a;abcd1234;t;n\xff;;;;\n", Rows(("ok",), {3: "not valid UTF-8"})),
    CsvCase("a line longer than 64 KiB", text(H + GOOD + "{p}a;abcd1234;t;" + "n" * 70_000 + ";;;;\n"), Rows(("ok",), {3: "longer than"})),
    CsvCase("an open quote at the end", text(H + GOOD + '{p}a;abcd1234;t;"n;;;;\n'), Rows(("ok",), {3: "cannot be read as CSV"})),
    CsvCase("TENANT empty (management)", text("ID;CREDENTIALS;TENANT\n{p}ok;abcd1234;t1\n{p}a;abcd1234;\n"), Rows(("ok",), {3: "TENANT is empty"}), management=True),
    CsvCase("TENANT that does not exist (management)", text("ID;CREDENTIALS;TENANT\n{p}ok;abcd1234;t1\n{p}a;abcd1234;t999\n"), Rows(("ok",), {3: "does not exist"}), management=True),
    CsvCase("NUL in TENANT (management)", text("ID;CREDENTIALS;TENANT\n{p}ok;abcd1234;t1\n{p}a;abcd1234;t1\x00\n"), Rows(("ok",), {3: "TENANT holds a NUL"}), management=True),
    # --- odd but fine (issue 9: a blank first line was called empty)
    CsvCase("blank lines before the header", text("\n\r\n   \n" + H + GOOD), Rows(("ok",))),
    CsvCase("BOM, CRLF and a quoted line break", b"\xef\xbb\xbf" + text(H + GOOD + '{p}b;abcd1234;t;"two\r\nlines";;;;\r\n'), Rows(("ok", "b"))),
]  # fmt: skip
