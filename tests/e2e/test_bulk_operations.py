"""Bulk operations end to end: `fleetgate serve` on a real PostgreSQL and mosquitto, a
group of 20 simulated devices with real certificates, and the service SIGKILLed mid-way.

Everything goes through the REST API (groups and their child assets included) and MQTT.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from serve_support import ADMIN, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

PATH = "/devicecontrol/bulkoperations"
N = 20


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def _firmware(stack: Stack) -> dict[str, Any]:
    response = await stack.api.post(
        "/inventory/binaries",
        files={
            "object": (None, json.dumps({"name": "fw.bin", "type": "application/octet-stream"})),
            "file": ("fw.bin", b"\x7fELF" + bytes(range(256)) * 16, "application/octet-stream"),
        },
        auth=ADMIN,
    )
    assert response.status_code == 201, response.text
    return {"c8y_Firmware": {"name": "fw", "version": "2.0", "url": response.json()["self"]}}


async def _group(stack: Stack, serials: list[str]) -> tuple[str, list[str]]:
    """A device group of these devices, made through the REST API; (its id, the devices'
    ids in id order)."""
    ids = [await stack.object_id(s) for s in serials]
    return await stack.group("g", ids), sorted(ids, key=int)


async def _registered(stack: Stack, prefix: str, **options: Any) -> list[str]:
    """N simulated devices registered and declared (then offline)."""
    simulation = stack.simulation(prefix, N, delay=0)
    serials = list(simulation.config.device_ids)
    async with running(simulation):
        await eventually(lambda: stack.declared(serials), "the declarations")
    return serials


async def _bulk(stack: Stack, bulk_id: str) -> dict[str, Any]:
    response = await stack.api.get(f"{PATH}/{bulk_id}", auth=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ops(stack: Stack, bulk_id: str) -> list[dict[str, Any]]:
    response = await stack.api.get(
        f"/devicecontrol/operations?bulkOperationId={bulk_id}&pageSize=2000", auth=ADMIN
    )
    found: list[dict[str, Any]] = response.json()["operations"]
    return found


async def _create(stack: Stack, body: dict[str, Any]) -> str:
    response = await stack.api.post(PATH, json=body, auth=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _corrupt(stack: Stack, serials: list[str], bad: int) -> frozenset[str]:
    """The ``bad`` devices with the lowest object ids (their operations come first)."""
    ranked = sorted([(int(await stack.object_id(s)), s) for s in serials])
    return frozenset(s for _, s in ranked[:bad])


async def test_a_group_rollout_succeeds_and_survives_a_sigkill(stack: Stack) -> None:
    serials = await _registered(stack, "bulk")
    group, _ = await _group(stack, serials)
    fw = await _firmware(stack)
    start = "2020-01-01T00:00:00Z"
    simulation = stack.simulation("bulk", N, delay=0.2)
    async with running(simulation):
        bulk_id = await _create(
            stack,
            {"groupId": group, "startDate": start, "creationRamp": 0.25, "operationPrototype": fw},
        )
        await eventually(lambda: _count(stack, bulk_id, 4), "the first operations")
        await stack.serve.kill()
        await asyncio.sleep(0.5)
        await stack.serve.start()

        async def all_done() -> bool:
            body = await _bulk(stack, bulk_id)
            return body["generalStatus"] == "SUCCESSFUL"

        await eventually(all_done, "every device SUCCESSFUL", timeout=180)
    ops = await _ops(stack, bulk_id)
    assert len(ops) == N
    assert len({o["deviceId"] for o in ops}) == N  # one each, none twice after the kill
    assert {o["status"] for o in ops} == {"SUCCESSFUL"}
    body = await _bulk(stack, bulk_id)
    assert body["status"] == "COMPLETED"
    assert body["progress"] == {"all": N, "pending": 0, "executing": 0, "successful": N,
                                "failed": 0}  # fmt: skip


async def _count(stack: Stack, bulk_id: str, at_least: int) -> bool:
    return len(await _ops(stack, bulk_id)) >= at_least


async def test_failures_pause_the_rollout_it_resumes_and_retries_only_the_failed(
    stack: Stack,
) -> None:
    serials = await _registered(stack, "abort")
    group, _ = await _group(stack, serials)
    bad = await _corrupt(stack, serials, N // 5)  # 20%
    fw = await _firmware(stack)
    body = {
        "groupId": group, "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0.5,
        "operationPrototype": fw,
        "fleetgate_Rollout": {"abort": [{"minFinished": 2, "thresholdPercentage": 10}]},
    }  # fmt: skip
    simulation = stack.simulation("abort", N, delay=0.1, corrupt_downloads=bad)
    async with running(simulation):
        bulk_id = await _create(stack, body)

        async def paused() -> bool:
            return (await _bulk(stack, bulk_id))["fleetgate_RolloutStatus"]["state"] == "PAUSED"

        await eventually(paused, "the pause", timeout=60)
        state = (await _bulk(stack, bulk_id))["fleetgate_RolloutStatus"]
        assert state["reason"].startswith("Abort criterion met")
        await asyncio.sleep(1.5)  # nothing is created while paused
        created = len(await _ops(stack, bulk_id))
        assert created < N
        assert len(await _ops(stack, bulk_id)) == created
        resumes = 0

        async def finished() -> bool:
            # the failing devices come first: each resume may meet the next of them and
            # pause again (the criterion counts from the resume); the operator resumes
            nonlocal resumes
            b = await _bulk(stack, bulk_id)
            if b["fleetgate_RolloutStatus"]["state"] == "PAUSED":
                resumed = await stack.api.post(f"{PATH}/{bulk_id}/resume", auth=ADMIN)
                assert resumed.status_code == 200, resumed.text
                resumes += 1
            progress = b["progress"]
            return b["status"] == "COMPLETED" and progress["pending"] + progress["executing"] == 0

        await eventually(finished, "the rest", timeout=120)
        assert 1 <= resumes <= len(bad)
        ops = await _ops(stack, bulk_id)
        assert len(ops) == N
        failed = {o["deviceId"] for o in ops if o["status"] == "FAILED"}
        bad_ids = {await stack.object_id(s) for s in bad}
        assert failed == bad_ids
        retry = await _create(
            stack,
            {"failedParentId": bulk_id, "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0,
             "operationPrototype": fw},
        )  # fmt: skip
        await eventually(lambda: _count(stack, retry, len(bad)), "the retries")
        assert {o["deviceId"] for o in await _ops(stack, retry)} == bad_ids


async def test_a_failing_canary_stops_the_rest_and_cancel_stops_creation(stack: Stack) -> None:
    serials = await _registered(stack, "canary")
    group, _ = await _group(stack, serials)
    bad = await _corrupt(stack, serials, 1)
    fw = await _firmware(stack)
    body = {
        "groupId": group, "startDate": "2020-01-01T00:00:00Z", "creationRamp": 0,
        "operationPrototype": fw, "fleetgate_Rollout": {"canary": {"size": 2}},
    }  # fmt: skip
    simulation = stack.simulation("canary", N, delay=0.1, corrupt_downloads=bad)
    async with running(simulation):
        bulk_id = await _create(stack, body)

        async def stopped() -> bool:
            state = (await _bulk(stack, bulk_id))["fleetgate_RolloutStatus"]
            return state["state"] == "PAUSED" and state["reason"].startswith("Canary failed")

        await eventually(stopped, "the canary's verdict", timeout=60)
        assert len(await _ops(stack, bulk_id)) == 2
        deleted = await stack.api.delete(f"{PATH}/{bulk_id}", auth=ADMIN)
        assert deleted.status_code == 204
        await asyncio.sleep(1.0)
        assert len(await _ops(stack, bulk_id)) == 2
        cancelled = await _bulk(stack, bulk_id)
        assert cancelled["status"] == "DELETED"
        assert cancelled["generalStatus"] in ("CANCELED", "EXECUTING_WITH_ERRORS")


async def _cli(stack: Stack, *args: str) -> str:
    """``fleetgate ops bulk …`` against the stack's API, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetgate.cli", "ops", "bulk", "--url", stack.info.api_url,
        "--user", ADMIN[0], "--password", ADMIN[1], *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    assert "HTTP Request" not in errors.decode()  # no line per request for an operator
    return output.decode()


async def test_the_command_line_creates_pauses_resumes_and_cancels(stack: Stack) -> None:
    serials = await _registered(stack, "cli")
    group, _ = await _group(stack, serials)
    firmware = (await _firmware(stack))["c8y_Firmware"]
    # One operation a minute: the bulk operation is still creating while it is driven.
    created = await _cli(
        stack, "create", "--group", group,
        "--firmware", f"{firmware['name']},{firmware['version']},{firmware['url']}",
        "--rollout", json.dumps({"rate": {"perMinute": 1}}), "--note", "from the CLI",
    )  # fmt: skip
    bulk_id = created.split()[1]  # "bulk 7 · SCHEDULED · …"
    assert created.startswith(f"bulk {bulk_id} ")
    assert (await _bulk(stack, bulk_id))["note"] == "from the CLI"

    paused = await _cli(stack, "pause", bulk_id, "--reason", "maintenance window")
    assert "maintenance window" in paused
    assert "maintenance window" in json.dumps(await _bulk(stack, bulk_id))
    resumed = await _cli(stack, "resume", bulk_id)
    assert "maintenance window" not in resumed
    cancelled = await _cli(stack, "cancel", bulk_id)
    assert (await _bulk(stack, bulk_id))["status"] == "DELETED"
    assert f"bulk {bulk_id}" in cancelled
    shown = await _cli(stack, "show", bulk_id)
    assert f"/{N}" in shown.splitlines()[0]
    assert len(await _ops(stack, bulk_id)) < N  # creation stopped early


async def test_the_command_line_waits_for_a_rollout_to_succeed(stack: Stack) -> None:
    """``ops bulk create --wait`` as a process: it follows the rollout (one progress line per
    change when piped) and exits 0 once every device's operation is SUCCESSFUL."""
    serials = await _registered(stack, "wait")
    group, _ = await _group(stack, serials)
    firmware = (await _firmware(stack))["c8y_Firmware"]
    async with running(stack.simulation("wait", N, delay=0.2)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetgate.cli", "ops", "bulk", "--url", stack.info.api_url,
            "--user", ADMIN[0], "--password", ADMIN[1], "create", "--group", group,
            "--firmware", f"{firmware['name']},{firmware['version']},{firmware['url']}",
            "--wait",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(180):  # a bound on waiting, not a measurement
            output, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    first = output.decode().splitlines()[0]
    bulk_id = first.split()[1]
    assert first.startswith(f"bulk {bulk_id} · SUCCESSFUL · ")
    assert first.endswith(f" {N}/{N}")
    shown = [line.split("\t") for line in errors.decode().splitlines()]
    assert shown, "no progress shown"
    assert all(line[:2] == ["bulk", bulk_id] for line in shown)
    assert shown[-1][2] == "SUCCESSFUL"
    assert shown[-1][8] == str(N)  # the SUCCESSFUL count
    assert {o["status"] for o in await _ops(stack, bulk_id)} == {"SUCCESSFUL"}
