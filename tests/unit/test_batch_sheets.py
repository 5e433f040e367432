"""The .xlsx adapter's bounds, measured: a zip bomb is refused from the zip directory
without inflating it; a lone cell in the sheet's last row is refused before a million
empty rows are made; a workbook is read in memory proportional to its records."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest

from fleetgate.domain.errors import TooLarge
from fleetgate.sheets import XlsxWorkbooks

MiB = 1024 * 1024


def peak_of(action: Callable[[], Any]) -> tuple[Any, int]:
    """What ``action`` returned (or raised) and the most Python memory it held at once."""
    tracemalloc.start()
    try:
        try:
            result: Any = action()
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_is_refused_without_inflating_it() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", b"<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", bytes(256 * MiB))
    bomb = out.getvalue()
    assert len(bomb) < MiB
    refused, peak = peak_of(lambda: XlsxWorkbooks().read(bomb))
    assert isinstance(refused, TooLarge)
    assert "zip bomb" in refused.message
    assert peak < MiB


def test_a_lone_cell_in_the_last_row_is_refused_in_bounded_memory() -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "name"])
    sheet.cell(1_048_576, 1, "far below")
    out = io.BytesIO()
    book.save(out)
    refused, peak = peak_of(lambda: XlsxWorkbooks().read(out.getvalue()))
    assert isinstance(refused, TooLarge)
    # ~1.3 MiB here; keeping the gap's 20,000 padded rows would take some 12 MiB.
    assert peak < 4 * MiB


@pytest.mark.parametrize("records", [500, 2000])
def test_a_workbook_is_read_in_memory_proportional_to_its_records(records: int) -> None:
    rows: list[list[str | float | int]] = [["id", "name", "c8y_Notes", "c8y_Position.lat"]]
    rows += [[i, f"device {i}", "n" * 200, 48.1] for i in range(1, records + 1)]
    workbooks = XlsxWorkbooks()
    data = workbooks.write(rows)
    read, peak = peak_of(lambda: workbooks.read(data))
    assert len(read) == records + 1
    # Some 800 bytes a record here (its cells as text) and ~0.3 MiB of openpyxl's state:
    # the bound is about twice that.
    assert peak < len(data) + 1_500 * records + 2 * MiB
