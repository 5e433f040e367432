"""Batch updates on the whole stack (``fleetgate up``, the service as the composition root
wires it, migration 0021 applied at start), driven by ``fleetgate devices`` as an operator
runs it: a template from a device, two rows edited and one broken, uploaded (2 valid, 1
invalid, errmsg.txt naming row and column), confirmed: exactly two devices changed."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from stack_support import Up, ports, processes_under

pytestmark = pytest.mark.e2e

TYPE = "acme_Sensor"


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def admin(home: Path) -> AsyncIterator[httpx.AsyncClient]:
    up = Up(home, home.parent / "certs", ports())
    try:
        description = await asyncio.to_thread(up.wait_ready)
        who: Any = description["admin"]
        async with httpx.AsyncClient(
            base_url=str(description["api_url"]),
            auth=(f"{who['tenant']}/{who['username']}", who["password"]),
            timeout=30,
        ) as client:
            yield client
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


def fleetgate(home: Path, *argv: str) -> str:
    """``fleetgate devices …`` on the stack file of ``home``; its standard output."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetgate.cli",
            "devices",
            "--stack",
            str(home / "stack.json"),
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_a_template_round_trip_with_the_command_line(
    admin: httpx.AsyncClient, home: Path
) -> None:
    ids = []
    for name in ("A", "B", "C", "D"):
        made = await admin.post(
            "/inventory/managedObjects", json={"name": name, "type": TYPE, "c8y_IsDevice": {}}
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    before = [(await admin.get(f"/inventory/managedObjects/{i}")).json() for i in ids]
    a, b, c, _ = ids

    template = home.parent / "template.xlsx"
    await asyncio.to_thread(
        fleetgate, home, "template", "--type", TYPE, "--device", a, "-o", str(template)
    )
    book = openpyxl.load_workbook(template)
    sheet = book.active
    assert sheet is not None
    header = [cell.value for cell in sheet[1]]
    assert [cell.value for cell in sheet[2]][:2] == [a, "A"]
    column = {name: i + 1 for i, name in enumerate(header)}
    sheet.cell(2, column["name"], "A edited")
    sheet.cell(3, column["id"], b)
    sheet.cell(3, column["c8y_Notes"], "B edited")
    sheet.cell(4, column["id"], c)
    sheet.cell(4, column["c8y_Position.lng"], 181)
    out = io.BytesIO()
    book.save(out)
    template.write_bytes(out.getvalue())

    staged = json.loads(
        await asyncio.to_thread(
            fleetgate, home, "--json", "batch-upload", str(template), "--type", TYPE
        )
    )
    assert (staged["numberOfValid"], staged["numberOfInvalid"]) == (2, 1)
    errors = await asyncio.to_thread(fleetgate, home, "batch-errors", staged["id"])
    assert errors == "row 4, column c8y_Position.lng: '181' is out of range (-180 to 180)\n"
    unchanged = [(await admin.get(f"/inventory/managedObjects/{i}")).json() for i in ids]
    assert unchanged == before

    confirmed = await asyncio.to_thread(fleetgate, home, "batch-confirm", staged["id"])
    assert "updated 2, unchanged 0, failed 0" in confirmed
    after = [(await admin.get(f"/inventory/managedObjects/{i}")).json() for i in ids]
    assert [i for i, old, new in zip(ids, before, after, strict=True) if old != new] == [a, b]
    assert after[0]["name"] == "A edited"
    assert after[1]["c8y_Notes"] == "B edited"
