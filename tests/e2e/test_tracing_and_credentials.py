"""Message tracing and the credentials view, end to end (issue 14): `fleetgate serve` on a
real PostgreSQL, a real mosquitto with the plugin, password devices over TLS.

- a trace shows a refused CONNECT with its reason, the device's message in and what the
  service did with it, an operation dispatched and delivered; watched over SSE and with
  `fleetgate trace`; it ends by itself at its expiry (a short trace: 1 s is a legal
  duration, 3 days and 1 s is not), which also takes the device out of the plugin's
  traced set;
- an untraced device adds no trace event at the plugin;
- the credentials view is for admins only; regenerating the secret kicks the device and
  only the new password works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from fleetgate.domain import broker_control as control
from fleetgate.pki import generate_ca, issue_client_certificate
from fleetgate.watch.sse import EventStreamParser
from integration.broker_support import (
    REPLY_TIMEOUT,
    device_client,
    dropped,
    next_response,
    password_device_client,
    service_client,
)

from serve_support import ADMIN, TENANT, Stack, serve_stack
from waiting import eventually

pytestmark = pytest.mark.e2e

THREE_DAYS = 3 * 24 * 3600
WATCHER_PASSWORD = "a watcher's password 14"


@pytest.fixture(scope="module")
async def stack(postgres_admin_url: str) -> AsyncIterator[Stack]:
    # Sweep often: a trace's end is seen soon after its expiry (the rule is the same).
    env = {"FLEETGATE_TRACE_SWEEP_INTERVAL": "0.2", "FLEETGATE_TRACE_REFRESH_INTERVAL": "0.2"}
    async with serve_stack(postgres_admin_url, env) as running_stack:
        yield running_stack


async def password_devices(stack: Stack, *rows: tuple[str, str]) -> None:
    csv = "ID;CREDENTIALS\n" + "".join(f"{device};{password}\n" for device, password in rows)
    made = await stack.api.post(
        "/devicecontrol/bulkNewDeviceRequests",
        files={"file": ("devices.csv", csv.encode(), "text/csv")},
        auth=ADMIN,
    )
    assert made.status_code == 201, made.text
    assert made.json()["numberOfSuccessful"] == len(rows), made.text


def device(stack: Stack, device_id: str, password: str) -> aiomqtt.Client:
    return password_device_client(stack.broker, TENANT, device_id, password)


async def can_connect(stack: Stack, device_id: str, password: str) -> bool:
    try:
        async with device(stack, device_id, password):
            return True
    except aiomqtt.MqttError:
        return False


async def plugin_tracing(stack: Stack) -> tuple[int, int]:
    """(traced clients, trace events published so far), asked of the plugin itself."""
    async with service_client(stack.broker) as client:
        await client.subscribe(control.RESPONSE_TOPIC, qos=1)
        await client.publish(
            control.CONTROL_TOPIC, control.message([control.trace_stats("e2e")]), qos=1
        )
        response = await next_response(client, "e2e")
    assert response.tracing is not None
    return response.tracing


async def trace_of(stack: Stack, object_id: str) -> dict[str, Any] | None:
    found = await stack.api.get(
        f"/devicecontrol/devices/{object_id}/trace", params={"pageSize": 1000}, auth=ADMIN
    )
    if found.status_code == 404:
        return None
    assert found.status_code == 200, found.text
    body: dict[str, Any] = found.json()
    return body


def has(entries: list[dict[str, Any]], **wanted: Any) -> bool:
    return any(all(e.get(k) == v for k, v in wanted.items()) for e in entries)


async def read_stream(stack: Stack, object_id: str, into: list[tuple[str, Any]]) -> None:
    """Follow the trace's SSE stream until it ends, keeping (event type, data)."""
    parser = EventStreamParser()
    async with stack.api.stream(
        "GET", f"/devicecontrol/devices/{object_id}/trace/stream", auth=ADMIN, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_bytes():
            for event in parser.feed(chunk):
                into.append((event.type, json.loads(event.data)))
                if event.type == "ended":
                    return


async def test_a_trace_shows_what_happens_and_ends_by_itself(stack: Stack) -> None:
    await password_devices(stack, ("trace-d1", "Secret-trace1"), ("quiet-d1", "Secret-quiet1"))
    object_id = await stack.object_id("trace-d1")
    path = f"/devicecontrol/devices/{object_id}/trace"

    too_long = await stack.api.put(path, json={"durationSeconds": THREE_DAYS + 1}, auth=ADMIN)
    assert too_long.status_code == 422, too_long.text
    assert "at most 259200" in too_long.json()["message"]
    assert await trace_of(stack, object_id) is None
    # Three days is fine; then restarted short, so that it ends within the test.
    assert (await stack.api.put(path, json={"durationSeconds": THREE_DAYS}, auth=ADMIN)).is_success
    started = await stack.api.put(path, json={"durationSeconds": 25}, auth=ADMIN)
    assert started.status_code == 200, started.text
    assert started.json()["startedBy"] == "admin"
    assert (await plugin_tracing(stack))[0] == 1

    streamed: list[tuple[str, Any]] = []
    stream = asyncio.create_task(read_stream(stack, object_id, streamed))
    # `fleetgate trace` following live (piped: one line per entry), until the trace ends.
    follower = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetgate.cli", "trace", "trace-d1",
        "--url", stack.serve.api_url, "--user", ADMIN[0], "--password", ADMIN[1],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    try:
        assert not await can_connect(stack, "trace-d1", "not-the-password")
        async with device(stack, "trace-d1", "Secret-trace1") as client:
            await client.subscribe("fg/d/trace-d1/op/cmd", qos=1)
            declaration = {"c8y_SupportedOperations": ["c8y_Restart"]}
            await client.publish("fg/d/trace-d1/inventory", json.dumps(declaration), qos=1)

            async def declared() -> bool:
                mo = await stack.api.get(f"/inventory/managedObjects/{object_id}", auth=ADMIN)
                return "c8y_SupportedOperations" in mo.json()

            await eventually(declared, "the declaration applied")
            op = await stack.create("trace-d1", {"c8y_Restart": {}})
            async for message in client.messages:
                if str(message.topic) == "fg/d/trace-d1/op/cmd":
                    break

        async def everything_recorded() -> bool:
            trace = await trace_of(stack, object_id)
            entries = trace["entries"] if trace else []
            return (
                has(entries, kind="connect", accepted=False, reason="wrong password")
                and has(entries, kind="connect", accepted=True)
                and has(entries, kind="publishIn", topic="fg/d/trace-d1/inventory")
                and has(entries, kind="service", outcome="applied", topic="fg/d/trace-d1/inventory")
                and has(
                    entries, kind="service", outcome="operationDispatched", operationId=op["id"]
                )
                and has(entries, kind="publishOut", topic="fg/d/trace-d1/op/cmd")
                and has(entries, kind="disconnect")
            )

        await eventually(everything_recorded, "the trace's entries", timeout=20)
        trace = await trace_of(stack, object_id)
        assert trace is not None
        ids = [int(e["id"]) for e in trace["entries"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        inventory = next(e for e in trace["entries"] if e["kind"] == "publishIn")
        assert inventory["payloadPreview"] == json.dumps(declaration)
        assert inventory["size"] == len(json.dumps(declaration))

        # The terminal shows the same, one line per entry.
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetgate.cli", "trace", "trace-d1", "--once",
            "--url", stack.serve.api_url, "--user", ADMIN[0], "--password", ADMIN[1],
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
        )  # fmt: skip
        out, err = await asyncio.wait_for(cli.communicate(), REPLY_TIMEOUT * 3)
        assert cli.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert any("CONNECT refused: wrong password" in line for line in lines), lines

        # An untraced device's traffic adds not one trace event at the plugin.
        _, before = await plugin_tracing(stack)
        assert not await can_connect(stack, "quiet-d1", "not-the-password")
        async with device(stack, "quiet-d1", "Secret-quiet1") as quiet:
            await quiet.publish("fg/d/quiet-d1/inventory", b'{"name": "quiet"}', qos=1)
        assert await plugin_tracing(stack) == (1, before)

        # It ends by itself: the record goes, the stream says so, the plugin forgets it.
        await eventually(
            lambda: _gone(stack, object_id), "the trace to end at its expiry", timeout=90
        )
        await asyncio.wait_for(stream, 60)
        followed, err = await asyncio.wait_for(follower.communicate(), 60)
        assert follower.returncode == 0, err.decode()
        followed_lines = followed.decode().splitlines()
        assert followed_lines[-1] == "trace of trace-d1 ended"
        assert any("\tconnect\tCONNECT refused: wrong password" in x for x in followed_lines)
        assert any("operationDispatched" in line for line in followed_lines)
        assert (await plugin_tracing(stack))[0] == 0
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stream
    kinds = [kind for kind, _ in streamed]
    assert kinds[-1] == "ended"
    entries = [data for kind, data in streamed if kind == "entry"]
    assert has(entries, kind="connect", accepted=False, reason="wrong password")
    assert has(entries, kind="service", outcome="operationDispatched", operationId=op["id"])
    assert len({e["id"] for e in entries}) == len(entries)  # none twice
    # After the end, nothing more is kept: a new connect of the device leaves no entry.
    assert await can_connect(stack, "trace-d1", "Secret-trace1")
    assert await trace_of(stack, object_id) is None


async def _gone(stack: Stack, object_id: str) -> bool:
    return await trace_of(stack, object_id) is None


async def test_a_trace_survives_a_service_restart_and_stops_for_good(stack: Stack) -> None:
    await password_devices(stack, ("trace-d2", "Secret-trace2"))
    path = f"/devicecontrol/devices/{await stack.object_id('trace-d2')}/trace"
    assert (await stack.api.put(path, json={"durationSeconds": 600}, auth=ADMIN)).is_success
    assert (await plugin_tracing(stack))[0] == 1
    # A restarted service resets the plugin and pushes its whole state: the traced set is
    # part of it (without it, the reset would leave nothing traced).
    await stack.serve.stop()
    await stack.serve.start()

    async def ready() -> bool:
        return (await stack.api.get("/health/ready")).status_code == 200

    await eventually(ready, "the restarted service's broker sync")
    assert (await plugin_tracing(stack))[0] == 1
    assert (await stack.api.get(path, auth=ADMIN)).status_code == 200
    assert (await stack.api.delete(path, auth=ADMIN)).status_code == 204
    assert (await plugin_tracing(stack))[0] == 0
    assert (await stack.api.get(path, auth=ADMIN)).status_code == 404
    assert (await stack.api.delete(path, auth=ADMIN)).status_code == 404
    for bad in ({}, {"durationSeconds": "60"}, {"durationSeconds": 0}, {"durationSeconds": 1.5}):
        refused = await stack.api.put(path, json=bad, auth=ADMIN)
        assert refused.status_code == 422, (bad, refused.text)
    missing = await stack.api.put(
        "/devicecontrol/devices/999999999/trace", json={"durationSeconds": 60}, auth=ADMIN
    )
    assert missing.status_code == 404


async def test_credentials_view_and_regenerating_the_secret(stack: Stack) -> None:
    await password_devices(stack, ("cred-d1", "Secret-cred01"))
    object_id = await stack.object_id("cred-d1")
    view_path = f"/devicecontrol/devices/{object_id}/credentials"

    users = f"/user/{TENANT}/users"
    made = await stack.api.post(
        users, json={"userName": "watcher14", "password": WATCHER_PASSWORD}, auth=ADMIN
    )
    assert made.status_code == 201, made.text
    role = {"role": {"self": f"{stack.serve.api_url}/user/roles/ROLE_DEVICE_CONTROL_READ"}}
    granted = await stack.api.post(f"{users}/watcher14/roles", json=role, auth=ADMIN)
    assert granted.status_code == 201, granted.text
    watcher = (f"{TENANT}/watcher14", WATCHER_PASSWORD)
    assert (await stack.api.get(view_path, auth=watcher)).status_code == 403
    assert (await stack.api.post(f"{view_path}/secret", auth=watcher)).status_code == 403

    view = await stack.api.get(view_path, auth=ADMIN)
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["authentication"] == "PASSWORD"
    assert body["tenant"] == TENANT
    assert body["mqtt"] == {
        "host": "localhost",
        "port": stack.broker.config.password_port,
        "tls": True,
        "clientId": "cred-d1",
        "username": f"{TENANT}/device_cred-d1",
    }
    assert body["brokerCaPem"] == stack.broker.pki.ca_file.read_text()
    assert body["secretRegenerations"] == []

    async with device(stack, "cred-d1", "Secret-cred01") as live:
        made_secret = await stack.api.post(f"{view_path}/secret", auth=ADMIN)
        assert made_secret.status_code == 201, made_secret.text
        secret = made_secret.json()["password"]
        assert made_secret.headers["cache-control"] == "no-store"
        assert await dropped(live)  # kicked at once
    assert not await can_connect(stack, "cred-d1", "Secret-cred01")
    assert await can_connect(stack, "cred-d1", secret)

    again = (await stack.api.get(view_path, auth=ADMIN)).json()
    assert [r["regeneratedBy"] for r in again["secretRegenerations"]] == ["admin"]
    assert secret not in json.dumps(again)


async def test_a_certificate_device_is_shown_its_issuing_ca_and_has_no_secret(
    stack: Stack,
) -> None:
    ca = generate_ca("Credentials view CA")
    trusted = await stack.api.post(
        f"/tenant/tenants/{TENANT}/trusted-certificates",
        json={
            "name": "view CA",
            "certInPemFormat": ca.cert_pem().decode(),
            "status": "ENABLED",
            "autoRegistrationEnabled": True,
        },
        auth=ADMIN,
    )
    assert trusted.status_code == 201, trusted.text
    fingerprint = trusted.json()["fingerprint"]
    client = device_client(
        stack.broker,
        port=stack.broker.config.cert_port,
        identifier="cert-view-1",
        certificate=issue_client_certificate(ca, "cert-view-1"),
        timeout=REPLY_TIMEOUT,
    )

    async def registered() -> bool:
        found = await stack.api.get("/identity/externalIds/c8y_Serial/cert-view-1", auth=ADMIN)
        return found.status_code == 200

    async with client:
        await eventually(registered, "the certificate device registered")
    view_path = f"/devicecontrol/devices/{await stack.object_id('cert-view-1')}/credentials"
    view = await stack.api.get(view_path, auth=ADMIN)
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["authentication"] == "CERTIFICATE"
    assert body["mqtt"]["port"] == stack.broker.config.cert_port
    assert "username" not in body["mqtt"]
    assert body["certificate"]["issuerFingerprint"] == fingerprint
    assert body["certificate"]["issuerName"] == "view CA"
    assert "Credentials view CA" in body["certificate"]["issuer"]
    refused = await stack.api.post(f"{view_path}/secret", auth=ADMIN)
    assert refused.status_code == 422, refused.text
    assert "no password to regenerate" in refused.json()["message"]
