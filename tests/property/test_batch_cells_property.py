"""Properties of the batch-update file readers and the cell parser: any cells written as
CSV (or .xlsx) read back as the same cells; no row, however odd, makes the record reader
raise; a number reads back as itself; a record only ever changes columns its header names."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgate.domain.batch import (
    EDITABLE,
    MAX_CELL_CHARS,
    Invalid,
    Kind,
    Problem,
    Record,
    parse_cell,
    parse_header,
    read_records,
)
from fleetgate.domain.batch_file import read_csv, write_csv
from fleetgate.sheets import XlsxWorkbooks

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
#: What CSV carries: anything but NUL (refused as binary) and a lone CR (line endings).
csv_cells = texts.filter(lambda s: "\x00" not in s and "\r" not in s)
#: What XML 1.0 carries: no control characters but tab and newline (openpyxl refuses
#: them), and CR becomes LF when XML is parsed.
xlsx_cells = texts.filter(
    lambda s: (
        all(c in "\t\n" or ord(c) >= 0x20 for c in s) and "\ufffe" not in s and "\uffff" not in s
    )
)
header_names = st.lists(
    st.sampled_from(["id", *(c.name for c in EDITABLE)]), min_size=1, max_size=6, unique=True
)


@given(header_names, st.lists(st.lists(csv_cells, min_size=1, max_size=6), max_size=8))
def test_csv_written_reads_back_as_the_same_cells(header: list[str], rows: list[list[str]]) -> None:
    table = [header, *rows]
    assert read_csv(write_csv(table)) == table


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(xlsx_cells, min_size=1, max_size=4), min_size=1, max_size=5))
def test_xlsx_written_reads_back_as_the_same_cells(rows: list[list[str]]) -> None:
    workbooks = XlsxWorkbooks()
    back = workbooks.read(workbooks.write(rows))
    assert back == trimmed(rows)


def trimmed(rows: list[list[str]]) -> list[list[str]]:
    """Rows as a sheet keeps them: no empty cells at a row's end, no empty rows at the end."""
    kept = [list(r) for r in rows]
    for row in kept:
        while row and not row[-1]:
            row.pop()
    while kept and not any(c.strip() for c in kept[-1]):
        kept.pop()
    return kept


@given(st.sampled_from(EDITABLE), st.text(max_size=MAX_CELL_CHARS + 20))
def test_parse_cell_never_raises(column: object, text: str) -> None:
    assert isinstance(column, type(EDITABLE[0]))
    value = parse_cell(column, text)
    if isinstance(value, Problem):
        assert value.cause
    elif column.kind is Kind.TEXT:
        assert value == text
    else:
        assert isinstance(value, int | float)
        assert math.isfinite(value)


@given(st.floats(min_value=-90, max_value=90), st.integers(-(2**31), 2**31 - 1))
def test_numbers_read_back_as_themselves(lat: float, interval: int) -> None:
    by_name = {c.name: c for c in EDITABLE}
    assert parse_cell(by_name["c8y_Position.lat"], repr(lat)) == lat
    assert parse_cell(by_name["c8y_Position.lat"], f" {lat} ") == lat
    assert (
        parse_cell(by_name["c8y_RequiredAvailability.responseInterval"], str(interval)) == interval
    )


@given(
    header_names.filter(lambda h: "id" in h and len(h) > 1),
    st.lists(st.lists(st.one_of(texts, st.integers(0, 20).map(str)), max_size=8), max_size=10),
)
def test_records_are_read_without_raising_and_stay_in_their_header(
    header: list[str], rows: list[list[str]]
) -> None:
    parsed = parse_header(header)
    decided = list(read_records(parsed, rows))
    assert len(decided) <= len(rows)
    seen: set[int] = set()
    for outcome in decided:
        if isinstance(outcome, Record):
            assert 2 <= outcome.row <= len(rows) + 1
            assert set(outcome.changes) <= set(parsed.names)
            assert outcome.changes
            assert outcome.object_id >= 1
            assert outcome.object_id not in seen
            seen.add(outcome.object_id)
        else:
            assert outcome
            assert all(isinstance(i, Invalid) and i.cause for i in outcome)
            assert len({i.row for i in outcome}) == 1
