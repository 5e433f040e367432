"""``fleetgate devices template|batch-upload|batch-errors|batch-confirm`` against the whole
API on PostgreSQL (in process): a CSV template from a device, edited, uploaded (one record
invalid), its errors, confirmed; ``--json`` prints the API's answer; a watcher's upload is
refused with the roles it lacks."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from fleetgate.cli import _parser
from fleetgate.domain.errors import AccessDenied
from fleetgate.watch.client import Endpoint
from fleetgate.watch.devices_command import devices_command

from conftest import TEST_BASE_URL
from whole_api import ADMIN, WholeApi, whole_api

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(pool: asyncpg.Pool, scratch_dir: Path) -> AsyncIterator[WholeApi]:
    async with whole_api(pool, scratch_dir / "files") as whole:
        yield whole


async def run(api: WholeApi, *argv: str, auth: tuple[str, str] = ADMIN) -> str:
    """The command's standard output."""
    args = _parser().parse_args(["devices", *argv])
    out = io.StringIO()
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE_URL, auth=auth) as client:
        await devices_command(args, Endpoint(TEST_BASE_URL, auth[0], auth[1]), client, out)
    return out.getvalue()


async def made(api: WholeApi, name: str) -> str:
    created = await api.client.post(
        "/inventory/managedObjects",
        auth=ADMIN,
        json={"name": name, "type": "acme_Sensor", "c8y_IsDevice": {}},
    )
    return str(created.json()["id"])


async def name_of(api: WholeApi, object_id: str) -> Any:
    return (await api.client.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)).json()[
        "name"
    ]


async def test_template_upload_errors_confirm(api: WholeApi, scratch_dir: Path) -> None:
    a, b = await made(api, "A"), await made(api, "B")
    template = scratch_dir / "t.csv"
    said = await run(
        api,
        "template",
        "--type",
        "acme_Sensor",
        "--device",
        a,
        "--format",
        "csv",
        "-o",
        str(template),
    )
    assert said.startswith(f"wrote {template}")
    lines = template.read_text().splitlines()
    assert lines[0].startswith("id,name,")
    assert lines[1].startswith(f"{a},A,")
    header = lines[0].split(",")
    row_a = [a, "A2"] + [""] * (len(header) - 2)
    row_b = [b] + [""] * (len(header) - 1)
    row_b[header.index("c8y_Position.lat")] = "north"
    edited = [lines[0], ",".join(row_a), ",".join(row_b)]
    template.write_text("\n".join(edited) + "\n")
    staged = await run(api, "batch-upload", str(template), "--type", "acme_Sensor")
    first = staged.splitlines()[0]
    assert first.endswith("STAGED; 2 records, 1 valid, 1 invalid")
    assert "row 3, column c8y_Position.lat: 'north' is not a number" in staged
    batch_id = first.split()[2]
    assert f"fleetgate devices batch-confirm {batch_id}" in staged
    errors = await run(api, "batch-errors", batch_id)
    assert errors == "row 3, column c8y_Position.lat: 'north' is not a number\n"
    assert await name_of(api, a) == "A"
    confirmed = json.loads(await run(api, "--json", "batch-confirm", batch_id))
    assert confirmed["status"] == "APPLIED"
    assert confirmed["result"]["numberOfUpdated"] == 1
    assert await name_of(api, a) == "A2"
    shown = await run(api, "batch-show", batch_id)
    assert "updated 1, unchanged 0, failed 0" in shown
    assert json.loads(await run(api, "batch-show", batch_id, "--json"))["id"] == batch_id


async def test_a_watcher_is_told_which_role_it_lacks(api: WholeApi, scratch_dir: Path) -> None:
    await api.client.post(
        "/user/t1/users", auth=ADMIN, json={"userName": "watcher", "password": "watch-it-pw"}
    )
    file = scratch_dir / "x.csv"
    file.write_text("id,name\n1,x\n")
    with pytest.raises(AccessDenied) as caught:
        await run(api, "batch-upload", str(file), "--type", "t", auth=("t1/watcher", "watch-it-pw"))
    assert "ROLE_INVENTORY_ADMIN" in caught.value.message
