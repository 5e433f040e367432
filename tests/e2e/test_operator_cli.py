"""The operator CLI as an operator runs it: ``fleetgate certs|users|credentials|devices``
as processes against ``fleetgate up`` (its ``stack.json`` gives the API and the admin),
and the exit statuses a script reads: 0 done, 3 not found, 4 not allowed, 5 conflict,
7 partly failed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fleetgate.pki import generate_ca

from stack_support import Up, ports, processes_under

pytestmark = pytest.mark.e2e


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def up(home: Path) -> AsyncIterator[Up]:
    running = Up(home, home.parent / "certs", ports())
    try:
        await asyncio.to_thread(running.wait_ready)
        yield running
    finally:
        assert await asyncio.to_thread(running.terminate) == 0, running.output


async def fleetgate(home: Path, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "fleetgate.cli", command, "--stack", str(home / "stack.json")]
    return await asyncio.to_thread(
        subprocess.run, [*argv, *args], capture_output=True, text=True, timeout=60, check=False
    )


async def test_an_operator_session_and_its_exit_statuses(up: Up, home: Path) -> None:
    pem = home.parent / "line-1.pem"
    pem.write_bytes(generate_ca("Line 1 CA").cert_pem())
    added = await fleetgate(home, "certs", "add", str(pem), "--auto-registration")
    assert added.returncode == 0, added.stderr
    again = await fleetgate(home, "certs", "add", str(pem))
    assert again.returncode == 5, again.stderr
    assert again.stderr.startswith("fleetgate: error: POST ")
    listed = await fleetgate(home, "certs", "list")
    assert "Line 1 CA" in listed.stdout
    created = await fleetgate(
        home, "users", "create", "anna", "--new-password", "anna's password", "--role",
        "ROLE_INVENTORY_READ",
    )  # fmt: skip
    assert created.stdout == "user anna: ROLE_INVENTORY_READ\n", created.stderr
    tenant = json.loads((home / "stack.json").read_text())["admin"]["tenant"]
    as_anna = ("--user", f"{tenant}/anna", "--password", "anna's password")
    refused = await fleetgate(home, "users", *as_anna, "list")
    assert refused.returncode == 4, refused.stderr
    csv = home.parent / "devices.csv"
    csv.write_text(
        "ID;CREDENTIALS;TYPE;NAME\n"
        "cli-1;cli-1-password;acme_Meter;Meter 1\n"
        "cli-2;short;acme_Meter;Meter 2\n"
    )
    imported = await fleetgate(home, "credentials", "import", str(csv))
    assert imported.returncode == 7, imported.stderr  # a row failed: counts, then status 7
    assert imported.stdout.startswith("2 devices: 1 created, 0 credentials updated, 1 failed")
    # Piped: no progress bar, only the error line.
    assert imported.stderr == "fleetgate: error: 1 of 2 rows failed\n"
    devices = await fleetgate(home, "devices", *as_anna, "list", "--type", "acme_Meter", "--json")
    assert devices.returncode == 0, devices.stderr
    [meter] = json.loads(devices.stdout)["managedObjects"]
    assert meter["name"] == "Meter 1"
    missing = await fleetgate(home, "devices", "show", "987654321")
    assert missing.returncode == 3, missing.stderr
