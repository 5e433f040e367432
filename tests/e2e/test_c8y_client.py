"""Cumulocity's own JavaScript client, ``@c8y/client`` (npm, installed into tests/node by
``scripts/install --dev``), against the whole stack: authenticate, inventory (a
read-modify-write round trip, paging with totals, count), identity, operations, binaries
and device registration — tests/node/c8y_client_check.js does it as a user would. The
credentials it was given then log in on the broker."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from stack_support import Up, mqtt_connect, ports, processes_under

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "c8y_client_check.js"


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def stack(home: Path) -> AsyncIterator[dict[str, Any]]:
    up = Up(home, home.parent / "certs", ports())
    try:
        yield await asyncio.to_thread(up.wait_ready)
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None or not (NODE_DIR / "node_modules" / "@c8y" / "client").is_dir():
        pytest.fail("node or @c8y/client is missing: run scripts/install --dev")
    return found


async def test_cumulocitys_javascript_client_works_unchanged(stack: dict[str, Any]) -> None:
    admin, boot = stack["admin"], stack["bootstrap"]
    env = {
        **os.environ,
        "C8Y_BASEURL": stack["api_url"],
        "C8Y_TENANT": admin["tenant"],
        "C8Y_USER": admin["username"],
        "C8Y_PASSWORD": admin["password"],
        "C8Y_BOOTSTRAP_USER": boot["username"],
        "C8Y_BOOTSTRAP_PASSWORD": boot["password"],
        "C8Y_RUN": f"js{secrets.token_hex(3)}",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [node(), str(SCRIPT)],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{done.stderr}\n{done.stdout}"
    device = json.loads(done.stdout.strip().splitlines()[-1])["device"]

    # What the client's device registration handed out logs in on the password listener.
    user = f"{device['tenantId']}/{device['username']}"
    assert await asyncio.to_thread(mqtt_connect, stack, user, device["password"], device["id"]) == 0
    assert await asyncio.to_thread(mqtt_connect, stack, user, "not-it", device["id"]) != 0
