"""Tenants on the whole stack (``fleetgate up``, real scrypt, mosquitto with the plugin):
the management admin creates tenant B with ``fleetgate tenants create``; B's admin works
and trusts a CA; a device of B connects; ``fleetgate tenants suspend`` kicks it, refuses
it with the reason in the broker's log and refuses B's admin (401) and bootstrap account;
``reactivate`` lets them all back; ``delete`` ends them for good."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from test_certificate_devices import Stack, accepted, dropped

from fleetgate.pki import generate_ca, issue_client_certificate

from stack_support import Up, mqtt_connect, ports, processes_under
from waiting import eventually

pytestmark = pytest.mark.e2e

DEADLINE = 20.0  # a generous bound on "at once", never a measurement
B_ADMIN = ("acme/boss", "boss's password 1")


@pytest.fixture
def home(scratch_dir: Path) -> Iterator[Path]:
    yield scratch_dir / "home"
    assert processes_under(scratch_dir) == []


@pytest.fixture
async def stack(home: Path) -> AsyncIterator[Stack]:
    up = Up(home, home.parent / "certs", ports())
    try:
        description = await asyncio.to_thread(up.wait_ready)
        keys = home.parent / "keys"
        keys.mkdir()
        running = Stack(up, description, keys)
        try:
            yield running
        finally:
            await running.api.aclose()
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output


async def fleetgate_tenants(home: Path, *args: str) -> str:
    """``fleetgate tenants --home HOME ARGS``: its output; the test fails if it fails."""
    command = [sys.executable, "-m", "fleetgate.cli", "tenants", "--home", str(home), *args]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_create_suspend_reactivate_and_delete_a_tenant(stack: Stack, home: Path) -> None:
    created = await fleetgate_tenants(
        home,
        "create",
        "--id",
        "acme",
        "--company",
        "ACME",
        "--domain",
        "acme.example",
        "--admin-name",
        "boss",
        "--admin-pass",
        B_ADMIN[1],
    )
    assert created.startswith("acme\tACTIVE\tACME\tacme.example\tboss"), created
    bootstrap_password = created.split(" password ")[1].split(" ")[0]
    listed = await fleetgate_tenants(home, "list")
    assert [line.split("\t")[0] for line in listed.splitlines()] == [
        "management",
        stack.tenant,
        "acme",
    ]

    async with httpx.AsyncClient(base_url=stack.info["api_url"], auth=B_ADMIN, timeout=30) as b_api:
        # B's admin works, and trusts a CA of B's with auto-registration
        assert (await b_api.get("/user/currentUser")).status_code == 200
        ca = generate_ca("ACME devices CA")
        trusted = await b_api.post(
            "/tenant/tenants/acme/trusted-certificates",
            json={
                "name": "ACME CA",
                "certInPemFormat": ca.cert_pem().decode(),
                "status": "ENABLED",
                "autoRegistrationEnabled": True,
            },
        )
        assert trusted.status_code == 201, trusted.text
        device = issue_client_certificate(ca, "acme-sensor-1")

        def client() -> aiomqtt.Client:
            return stack.client(device, "acme-sensor-1")

        await eventually(lambda: accepted(client()), "B's device registers")
        found = await b_api.get("/identity/externalIds/c8y_Serial/acme-sensor-1")
        assert found.status_code == 200, found.text
        # the tenant A admin sees nothing of it
        assert (
            await stack.api.get("/identity/externalIds/c8y_Serial/acme-sensor-1")
        ).status_code == 404

        def bootstrap() -> int:
            return mqtt_connect(
                stack.info, "acme/devicebootstrap", bootstrap_password, "acme-new-1"
            )

        assert await asyncio.to_thread(bootstrap) == 0

        async with client() as live:
            await fleetgate_tenants(home, "suspend", "acme")
            assert await asyncio.wait_for(dropped(live), DEADLINE)
        assert "kicking client 'acme-sensor-1': tenant acme is suspended" in stack.up.output
        assert not await accepted(client())
        await eventually(
            lambda: (
                "refused client 'acme-sensor-1' username '': tenant acme is suspended"
                in stack.up.output
            ),
            "the refusal's reason in the broker log",
        )
        assert await asyncio.to_thread(bootstrap) != 0
        refused = await b_api.get("/user/currentUser")
        assert refused.status_code == 401
        assert "tenant acme is suspended" in refused.json()["message"]
        # tenant A is untouched
        assert (await stack.api.get("/user/currentUser")).status_code == 200

        await fleetgate_tenants(home, "reactivate", "acme")
        assert (await b_api.get("/user/currentUser")).status_code == 200
        await eventually(lambda: accepted(client()), "B's device is let back in")
        assert await asyncio.to_thread(bootstrap) == 0

        async with client() as live:
            await fleetgate_tenants(home, "delete", "acme", "--yes")
            assert await asyncio.wait_for(dropped(live), DEADLINE)
        assert not await accepted(client())
        assert (await b_api.get("/user/currentUser")).status_code == 401
    listed = await fleetgate_tenants(home, "list")
    assert "acme" not in listed
    secrets: dict[str, Any] = json.loads((home / "secrets.json").read_text())
    manager = ("management/admin", secrets["management_admin_password"])
    gone = await stack.api.get("/tenant/tenants/acme", auth=manager)
    assert gone.status_code == 404
