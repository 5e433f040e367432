"""MQTT bootstrap round trips for N devices asking at once, beside an echo baseline.

    .venv/bin/python bench/bootstrap_mqtt.py [--devices 500]

It starts its own `fleetgate up`, registers N new device requests through the REST API,
and connects N bootstrap clients (TLS, the bootstrap account, client id = device id).
Round 1: every device asks at once (each request becomes PENDING_ACCEPTANCE). The
operator accepts them all. Round 2: every device asks again and receives its credentials.
Baseline, same run, same client code: a plain mosquitto (TLS, no plugin, no service) and
a minimal aiomqtt responder answering each request with a fixed payload — the cost of the
MQTT round trip alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from fleetgate.pki import ensure_dev_pki

from embedded import free_port, percentile, running_stack


class Device:
    def __init__(self, client: aiomqtt.Client, base: str) -> None:
        self.client = client
        self.base = base
        self.replies = aiter(client.messages)

    async def ask(self) -> tuple[float, dict[str, Any]]:
        start = time.monotonic()
        await self.client.publish(f"{self.base}/request", b"{}", qos=1)
        message = await asyncio.wait_for(anext(self.replies), 120)
        return time.monotonic() - start, json.loads(message.payload)


async def round_trip(devices: list[Device]) -> tuple[float, list[float], list[dict[str, Any]]]:
    began = time.monotonic()
    results = await asyncio.gather(*(d.ask() for d in devices))
    return time.monotonic() - began, [r[0] for r in results], [r[1] for r in results]


async def connect_all(
    host: str,
    port: int,
    ca_file: str,
    tenant: str,
    username: str | None,
    password: str | None,
    ids: list[str],
) -> tuple[list[Device], list[aiomqtt.Client]]:
    context = ssl.create_default_context(cafile=ca_file)
    clients: list[aiomqtt.Client] = []
    devices: list[Device] = []
    gate = asyncio.Semaphore(100)

    async def one(device_id: str) -> None:
        client = aiomqtt.Client(
            host,
            port,
            identifier=device_id,
            username=username,
            password=password,
            tls_context=context,
            timeout=60,
            protocol=aiomqtt.ProtocolVersion.V5,
        )
        async with gate:
            await client.__aenter__()
        base = f"fg/bootstrap/{tenant}/{device_id}"
        await client.subscribe(f"{base}/credentials", qos=1)
        clients.append(client)
        devices.append(Device(client, base))

    await asyncio.gather(*(one(i) for i in ids))
    return devices, clients


async def close_all(clients: list[aiomqtt.Client]) -> None:
    await asyncio.gather(*(c.__aexit__(None, None, None) for c in clients), return_exceptions=True)


def line(name: str, elapsed: float, latency: list[float]) -> str:
    return (
        f"{name:<44} {len(latency) / elapsed:7.0f} round trips/s   p50 "
        f"{statistics.median(latency) * 1000:6.0f} ms   p99 "
        f"{percentile(latency, 99) * 1000:6.0f} ms"
    )


async def run_fleetgate(n: int, root: Path) -> list[str]:
    async with running_stack(root) as stack:
        admin, boot = stack["admin"], stack["bootstrap"]
        tenant = admin["tenant"]
        ids = [f"boot-{i:04d}" for i in range(n)]
        async with httpx.AsyncClient(
            base_url=stack["api_url"], timeout=60, auth=(f"{tenant}/admin", admin["password"])
        ) as api:
            for device_id in ids:
                await api.post("/devicecontrol/newDeviceRequests", json={"id": device_id})
            devices, clients = await connect_all(
                stack["mqtt_host"],
                stack["mqtt_password_port"],
                stack["ca_file"],
                tenant,
                f"{tenant}/{boot['username']}",
                boot["password"],
                ids,
            )
            try:
                asked = await round_trip(devices)
                assert all(r["status"] == "PENDING_ACCEPTANCE" for r in asked[2]), asked[2][:3]
                for device_id in ids:
                    await api.put(
                        f"/devicecontrol/newDeviceRequests/{device_id}", json={"status": "ACCEPTED"}
                    )
                issued = await round_trip(devices)
                assert all(r["status"] == "ACCEPTED" for r in issued[2]), issued[2][:3]
            finally:
                await close_all(clients)
    return [
        line(f"fleetgate, {n} devices ask (→ PENDING)", asked[0], asked[1]),
        line(f"fleetgate, {n} devices get credentials", issued[0], issued[1]),
    ]


async def run_baseline(n: int, root: Path) -> str:
    pki = ensure_dev_pki(root / "certs")
    port = free_port()
    conf = root / "plain.conf"
    conf.write_text(
        f"listener {port}\nallow_anonymous true\ncertfile {pki.server_cert}\n"
        f"keyfile {pki.server_key}\nmax_inflight_messages 1000\n"
    )
    conf.chmod(0o644)
    broker = subprocess.Popen(  # noqa: ASYNC220 — the baseline broker
        ["mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await asyncio.sleep(0.5)
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        async with aiomqtt.Client(
            "localhost", port, tls_context=context, identifier="responder"
        ) as responder:
            await responder.subscribe("fg/bootstrap/+/+/request", qos=1)

            async def respond() -> None:
                async for message in responder.messages:
                    reply = str(message.topic).rsplit("/", 1)[0] + "/credentials"
                    await responder.publish(reply, b'{"status": "PENDING_ACCEPTANCE"}', qos=1)

            task = asyncio.create_task(respond())
            ids = [f"echo-{i:04d}" for i in range(n)]
            devices, clients = await connect_all(
                "localhost", port, str(pki.ca_file), "t", None, None, ids
            )
            try:
                elapsed, latency, _ = await round_trip(devices)
            finally:
                await close_all(clients)
                task.cancel()
        return line(f"baseline: plain mosquitto + echo, {n} devices", elapsed, latency)
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=500)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fleetgate-bootstrap-"))
    root.chmod(0o755)
    lines = await run_fleetgate(args.devices, root)
    lines.append(await run_baseline(args.devices, root))
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
