"""Moving a certificate gateway with two children from tenant A to tenant B (issue 13,
decision 0014), end to end: `fleetgate serve` on a real PostgreSQL and a real mosquitto
with the plugin, an SDK gateway whose certificates are made at test time.

- refused before any code while B does not trust the gateway's CA, saying what to trust;
- B's code read by B's admin through the CLI; A's admin and B's watcher refused, a wrong
  code refused, an expired code refused (the service runs with a short code lifetime);
- the right code moves the gateway and its children: its open operation ends FAILED in A,
  it reconnects into B with its children, and A's and B's lists and filters show it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from fleetgate.device import BrokerAddress, GatewayClient, Inventory
from fleetgate.device.commands import Command
from fleetgate.device.connection import ReconnectPolicy
from fleetgate.device.enrolment import ensure_device_certificates
from fleetgate.device.gateway import ChildDevice
from fleetgate.pki import generate_ca

from serve_support import ADMIN, TENANT, Stack, serve_stack
from tenant_support import add_tenant
from waiting import eventually

pytestmark = pytest.mark.e2e

#: Seconds a migration request lives here: long enough for the steps of a move, short
#: enough to watch one expire.
CODE_TTL = 25
B = "b77"
B_PASSWORD = "admin-secret-b77"
WATCHER = (f"{B}/watcher", "a watcher's password")
GATEWAY, KIDS = "mig-gw", ("mig-c1", "mig-c2")


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    env = {"FLEETGATE_MIGRATIONS_CODE_TTL": str(CODE_TTL)}
    async with serve_stack(postgres_admin_url, env) as running_stack:
        yield running_stack


async def cli(stack: Stack, user: tuple[str, str], *args: str) -> tuple[int, str, str]:
    """``fleetgate ops migration …`` as an operator runs it: (exit code, stdout, stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetgate.cli", "ops", "migration",
        "--url", stack.serve.api_url, "--user", user[0], "--password", user[1], *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def trust(api: httpx.AsyncClient, tenant: str, pem: str, auth: Any) -> str:
    made = await api.post(
        f"/tenant/tenants/{tenant}/trusted-certificates",
        json={
            "name": "migrating fleet",
            "certInPemFormat": pem,
            "status": "ENABLED",
            "autoRegistrationEnabled": True,
        },
        auth=auth,
    )
    assert made.status_code == 201, made.text
    fingerprint: str = made.json()["fingerprint"]
    return fingerprint


async def object_of(api: httpx.AsyncClient, device_id: str, auth: Any) -> str | None:
    found = await api.get(f"/identity/externalIds/c8y_Serial/{device_id}", auth=auth)
    return str(found.json()["managedObject"]["id"]) if found.status_code == 200 else None


async def mo(api: httpx.AsyncClient, object_id: str, auth: Any) -> dict[str, Any]:
    found = await api.get(f"/inventory/managedObjects/{object_id}", auth=auth)
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


async def devices_listed(api: httpx.AsyncClient, auth: Any, **params: str) -> set[str]:
    found = await api.get(
        "/inventory/managedObjects", params={"pageSize": "100", **params}, auth=auth
    )
    assert found.status_code == 200, found.text
    return {m["name"] for m in found.json()["managedObjects"]}


@pytest.fixture(scope="module")
async def b_admin(stack: Stack) -> tuple[str, str]:
    """Tenant B, made once for the module; its admin's credentials."""
    return await add_tenant(stack, B, B_PASSWORD)


async def test_a_certificate_gateway_moves_with_its_children_to_b_with_bs_code(
    stack: Stack, b_admin: tuple[str, str]
) -> None:
    api = stack.api
    users = f"/user/{B}/users"
    assert (
        await api.post(users, json={"userName": "watcher", "password": WATCHER[1]}, auth=b_admin)
    ).status_code == 201
    role = {"role": {"self": f"{api.base_url}/user/roles/ROLE_DEVICE_CONTROL_READ"}}
    assert (await api.post(f"{users}/watcher/roles", json=role, auth=b_admin)).status_code == 201

    # A trusts the fleet's CA; the gateway logs in with a certificate made now.
    pki = stack.workdir / "migration-pki"
    ca = await asyncio.to_thread(generate_ca, "Migration Fleet CA e2e")
    login = (await asyncio.to_thread(ensure_device_certificates, pki, ca, [GATEWAY]))[GATEWAY]
    fingerprint = await trust(api, TENANT, ca.cert_pem().decode(), ADMIN)
    started: asyncio.Queue[str] = asyncio.Queue()
    release = asyncio.Event()

    async def on_child_operation(child: ChildDevice, command: Command) -> None:
        await started.put(command.id)
        await release.wait()  # EXECUTING until the test says so: an open operation

    gateway = GatewayClient(
        GATEWAY,
        BrokerAddress("localhost", stack.broker.config.cert_port, stack.info.ca_file),
        login,
        on_child_operation=on_child_operation,
        reconnect=ReconnectPolicy(initial=0.2, maximum=1.0),
    )
    async with gateway:
        for kid in KIDS:
            await gateway.child(kid).declare(
                Inventory(type="plc", supported_operations=["c8y_Restart"])
            )

        async def children_in_a() -> bool:
            return all([await object_of(api, k, ADMIN) for k in KIDS])

        await eventually(children_in_a, "the children registered in A")
        gw_id = await object_of(api, GATEWAY, ADMIN)
        kid_ids = [await object_of(api, k, ADMIN) for k in KIDS]
        assert gw_id is not None
        assert None not in kid_ids
        op = await api.post(
            "/devicecontrol/operations",
            json={"deviceId": kid_ids[0], "c8y_Restart": {}},
            auth=ADMIN,
        )
        assert op.status_code == 201, op.text
        await asyncio.wait_for(started.get(), timeout=60)

        # B does not trust the gateway's CA: refused before any code, saying what to trust.
        body = {"deviceId": gw_id, "targetTenant": B, "withChildren": True}
        refused = await api.post("/inventory/migrations", json=body, auth=ADMIN)
        assert refused.status_code == 422, refused.text
        assert f"Tenant {B} does not trust" in refused.json()["message"]
        assert "Migration Fleet CA e2e" in refused.json()["message"]

        # A gives the CA up and B trusts it; then A asks for the move.
        gone = await api.delete(
            f"/tenant/tenants/{TENANT}/trusted-certificates/{fingerprint}", auth=ADMIN
        )
        assert gone.status_code == 204, gone.text
        await trust(api, B, ca.cert_pem().decode(), b_admin)
        made = await api.post("/inventory/migrations", json=body, auth=ADMIN)
        assert made.status_code == 201, made.text
        mid = made.json()["id"]

        # Nobody but B's admins reads the code: not A's admin, not B's watcher.
        code_a, _, said_a = await cli(stack, ADMIN, "code", mid)
        assert code_a != 0
        assert "403" in said_a
        assert "target tenant" in said_a
        watcher = await api.post(f"/inventory/migrations/{mid}/code", auth=WATCHER)
        assert watcher.status_code == 403
        status, out, _ = await cli(stack, b_admin, "code", mid)
        assert status == 0
        code = out.strip()
        assert len(code) == 8
        assert code.isdigit()

        wrong = f"{(int(code) + 1) % 10**8:08d}"
        status, _, said = await cli(stack, b_admin, "confirm", mid, wrong)
        assert status != 0
        assert "4 attempts left" in said
        assert await object_of(api, GATEWAY, ADMIN) == gw_id  # nothing moved
        status, out, said = await cli(stack, b_admin, "confirm", mid, code)
        assert status == 0, said
        assert "CONFIRMED" in out
        assert "moved mig-gw, mig-c1, mig-c2" in out

        # A's open operation ended with the reason.
        ended = (await api.get(f"/devicecontrol/operations/{op.json()['id']}", auth=ADMIN)).json()
        assert ended["status"] == "FAILED"
        assert ended["failureReason"] == f"The device moved to tenant {B} (migration {mid})"

        # It reconnects into B with its children.
        async def online_in_b() -> bool:
            shown = [await mo(api, i, b_admin) for i in [gw_id, *kid_ids] if i is not None]
            return all(s.get("fleetgate_Lifecycle", {}).get("status") == "ONLINE" for s in shown)

        await eventually(online_in_b, "the gateway and its children online in B", timeout=90)
        children = (await mo(api, gw_id, b_admin))["childDevices"]["references"]
        assert {r["managedObject"]["id"] for r in children} == set(kid_ids)
        release.set()

    # Lists and filters: gone from A, in B.
    moved = {GATEWAY, *KIDS}
    assert moved & await devices_listed(api, ADMIN, fragmentType="c8y_IsDevice") == set()
    assert await object_of(api, GATEWAY, ADMIN) is None
    in_b = await devices_listed(api, b_admin, fragmentType="c8y_IsDevice")
    assert moved <= in_b

    async def offline_in_b() -> bool:
        return moved <= await devices_listed(api, b_admin, lifecycleStatus="OFFLINE")

    await eventually(offline_in_b, "B's filter shows them offline after the gateway left")
    assert moved & await devices_listed(api, ADMIN, lifecycleStatus="OFFLINE") == set()


async def test_an_expired_code_is_refused(stack: Stack, b_admin: tuple[str, str]) -> None:
    api = stack.api
    made = await api.post(
        "/inventory/managedObjects", json={"name": "mig-late", "c8y_IsDevice": {}}, auth=ADMIN
    )
    late_id = made.json()["id"]
    serial = await api.post(
        f"/identity/globalIds/{late_id}/externalIds",
        json={"type": "c8y_Serial", "externalId": "mig-late"},
        auth=ADMIN,
    )
    assert serial.status_code == 201, serial.text
    requested = await api.post(
        "/inventory/migrations", json={"deviceId": late_id, "targetTenant": B}, auth=ADMIN
    )
    assert requested.status_code == 201, requested.text
    mid = requested.json()["id"]
    status, out, _ = await cli(stack, b_admin, "code", mid)
    assert status == 0
    code = out.strip()

    async def expired() -> bool:
        shown = await api.get(f"/inventory/migrations/{mid}", auth=ADMIN)
        return bool(shown.json()["status"] == "EXPIRED")

    await eventually(expired, "the request expired", timeout=CODE_TTL * 3)
    late = await api.post(
        f"/inventory/migrations/{mid}/confirmation", json={"code": code}, auth=b_admin
    )
    assert late.status_code == 409
    assert "expired" in late.json()["message"]
    assert (await api.get(f"/inventory/managedObjects/{late_id}", auth=ADMIN)).status_code == 200
