"""``GET /metrics`` of `fleetgate serve` after real traffic: simulated devices connect,
take operations and report their statuses; an operator watches the live stream. The
scraped values move with it, and only the management tenant may read them."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.device.enrolment import ensure_device_certificates, ensure_fleet_ca
from fleetgate.domain.topics import DeviceTopic

from corpora.device_payloads import BY_LEAF
from serve_support import ADMIN, MANAGEMENT, Stack, running, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

REJECTED = "fleetgate_device_messages_rejected_total"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
FIRMWARE = {"c8y_Firmware": {"name": "fw", "version": "9", "url": "http://firmware.example/x"}}


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    async with serve_stack(postgres_admin_url) as running_stack:
        yield running_stack


async def scrape(stack: Stack) -> Samples:
    """Every sample of a scrape by (name, labels)."""
    response = await stack.api.get("/metrics", auth=MANAGEMENT)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_with_real_traffic(stack: Stack) -> None:
    before = await scrape(stack)
    assert value(before, "fleetgate_database_up") == 1
    assert value(before, "fleetgate_db_pool_max_connections") >= 1
    assert value(before, "fleetgate_operation_stream_watchers") == 0

    async with running(stack.simulation("metrics", 3, delay=0)):
        await eventually(
            lambda: stack.declared([f"metrics-000{i}" for i in (1, 2, 3)]), "the declarations"
        )
        connected = await scrape(stack)
        assert value(connected, "fleetgate_devices_connected") >= 3
        # Registering the devices pushed their state to the broker plugin.
        assert value(connected, "fleetgate_broker_control_push_seconds_count") > value(
            before, "fleetgate_broker_control_push_seconds_count"
        )

        device = await stack.object_id("metrics-0001")
        async with stack.api.stream(
            "GET", f"/devicecontrol/operations/stream?deviceId={device}", auth=ADMIN
        ) as stream:

            async def one_watcher() -> bool:
                return value(await scrape(stack), "fleetgate_operation_stream_watchers") == 1

            await eventually(one_watcher, "the watcher counted")
            ops = [await stack.create(f"metrics-000{i}", FIRMWARE) for i in (1, 2, 3)]
            async for line in stream.aiter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["status"] == "SUCCESSFUL":
                    break

        async def all_successful() -> bool:
            statuses = await stack.statuses([op["id"] for op in ops])
            return set(statuses.values()) == {"SUCCESSFUL"}

        await eventually(all_successful, "every operation SUCCESSFUL")
        after = await scrape(stack)

    # Each device reported EXECUTING and SUCCESSFUL: at least six statuses applied.
    applied = value(after, "fleetgate_operation_statuses_applied_total") - value(
        before, "fleetgate_operation_statuses_applied_total"
    )
    assert applied >= 6
    batches = value(after, "fleetgate_device_message_batch_size_count")
    assert batches > value(before, "fleetgate_device_message_batch_size_count")
    assert value(after, "fleetgate_device_message_batch_size_sum") >= applied
    assert value(after, "fleetgate_device_message_batch_seconds_count") == batches
    assert value(after, "fleetgate_operations", status="SUCCESSFUL", type="c8y_Firmware") >= 3
    assert value(after, "fleetgate_operation_stream_watchers") == 0
    assert value(after, "fleetgate_db_pool_connections", state="idle") >= 0
    assert value(after, "process_cpu_seconds_total") > 0


async def test_refused_device_messages_are_counted_by_their_error(stack: Stack) -> None:
    state = stack.workdir / "simulator"
    ca = await asyncio.to_thread(ensure_fleet_ca, state)
    logins = await asyncio.to_thread(ensure_device_certificates, state, ca, ["mbad"])
    before = await scrape(stack)
    context = ssl.create_default_context(cafile=str(stack.info.ca_file))
    context.load_cert_chain(str(logins["mbad"].cert_file), str(logins["mbad"].key_file))
    device = aiomqtt.Client(
        "localhost", stack.broker.config.cert_port, identifier="mbad", tls_context=context
    )
    (leaf, corpus), *_ = BY_LEAF.items()
    async with device:
        await device.subscribe("fg/d/mbad/error", qos=1)
        for _, payload in corpus[:3]:
            await device.publish(str(DeviceTopic("mbad", leaf)), payload, qos=1)
        for _ in range(3):
            await asyncio.wait_for(anext(aiter(device.messages)), 60)

    def rejected(samples: Samples) -> float:
        return sum(v for (name, _), v in samples.items() if name == REJECTED)

    after = await scrape(stack)
    assert rejected(after) - rejected(before) == 3
    errors = {dict(labels)["error"] for (name, labels) in after if name == REJECTED}
    assert errors
    assert all(e.endswith("/badRequest") for e in errors)


async def test_only_the_management_tenant_reads_the_metrics(stack: Stack) -> None:
    assert (await stack.api.get("/metrics")).status_code == 401
    # An ordinary tenant's admin holds ROLE_TENANT_MANAGEMENT_READ, but the metrics span
    # every tenant.
    denied = await stack.api.get("/metrics", auth=ADMIN)
    assert denied.status_code == 403
    assert denied.json()["message"].startswith("Access is denied")
    assert (await stack.api.get("/metrics", auth=MANAGEMENT)).status_code == 200
