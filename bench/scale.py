"""Status throughput with 1 and with 2 service instances, in the same run.

    .venv/bin/python bench/scale.py [--devices 1000]

For each N in (1, 2) it starts its own `fleetgate up --instances N`, registers D devices
through the REST API (a managed object with ``c8y_SupportedOperations`` and its
``c8y_Serial``), creates one ``c8y_Restart`` operation per device, and then publishes
the 2D status messages (EXECUTING for all, then SUCCESSFUL for all; QoS 1, at most 1,000
in flight) as fast as one paho client can, on the broker's service listener — the
devices' own topics, so the service handles them exactly as a device's, without the
load generator paying for D TLS connections. Measured from the first publish until the
database counts D SUCCESSFUL operations: statuses persisted per second, the service's CPU
per status (every instance's process, read from ``/proc``), and each instance's share
of that CPU (the broker deals the shared subscription round-robin: each should be near
1/N). On 2 cores, 2 instances cannot be twice as fast: the point is that the work
splits and the CPU per status stays the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from fleetgate.cli import UP_PORT_OPTIONS
from fleetgate.stack.home import HomeSecrets
from fleetgate.stack.postgres import DATABASE, SUPERUSER
from fleetgate.stack.processes import pick_free_ports, port_is_free

PARALLEL = 16


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid``, every thread."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def up_ports() -> dict[str, int]:
    while True:
        chosen = dict(zip(UP_PORT_OPTIONS, pick_free_ports(len(UP_PORT_OPTIONS)), strict=True))
        second = chosen["api-port"] + 1
        if second not in chosen.values() and port_is_free(second):
            return chosen


async def gathered(items: list[Any], work: Any) -> list[Any]:
    gate = asyncio.Semaphore(PARALLEL)

    async def one(item: Any) -> Any:
        async with gate:
            return await work(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


def publish_statuses(port: int, password: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 with at most 1,000 unacknowledged; return once all are acked."""
    done = threading.Semaphore(1000)
    acked = threading.Event()
    count = [0]

    def on_publish(*_: object) -> None:
        done.release()
        count[0] += 1
        if count[0] == len(messages):
            acked.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="fleetgate:bench-scale")
    client.username_pw_set("fleetgate-service", password)
    client.max_inflight_messages_set(1000)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            done.acquire()
            client.publish(topic, payload, qos=1)
        if not acked.wait(300):
            raise SystemExit("the broker did not acknowledge every status")
    finally:
        client.disconnect()
        client.loop_stop()


async def run(instances: int, devices: int, root: Path) -> dict[str, Any]:
    home = root / "home"
    ports = up_ports()
    cmd = [sys.executable, "-m", "fleetgate.cli", "--log-level", "WARNING", "up"]
    cmd += ["--home", str(home), "--certs-dir", str(root / "certs")]
    cmd += ["--instances", str(instances)]
    for flag, port in ports.items():
        cmd += [f"--{flag}", str(port)]
    with (root / "up.log").open("ab") as log:
        up = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    try:
        while not (home / "stack.json").exists():
            if up.poll() is not None:
                raise SystemExit(f"fleetgate up failed, see {root / 'up.log'}")
            await asyncio.sleep(0.1)
        stack = json.loads((home / "stack.json").read_text())
        admin = stack["admin"]
        auth = (f"{admin['tenant']}/{admin['username']}", admin["password"])
        pids = (
            [int((home / "instances" / f"{i}.pid").read_text()) for i in range(instances)]
            if instances > 1
            else [up.pid]
        )
        async with httpx.AsyncClient(base_url=stack["api_url"], auth=auth, timeout=60) as api:
            serials = [f"scale-{i:05d}" for i in range(devices)]

            async def register(serial: str) -> str:
                made = await api.post(
                    "/inventory/managedObjects",
                    json={"name": serial, "c8y_IsDevice": {},
                          "c8y_SupportedOperations": ["c8y_Restart"]},
                )  # fmt: skip
                made.raise_for_status()
                object_id = str(made.json()["id"])
                ext = await api.post(
                    f"/identity/globalIds/{object_id}/externalIds",
                    json={"type": "c8y_Serial", "externalId": serial},
                )
                ext.raise_for_status()
                return object_id

            ids = await gathered(serials, register)

            async def create(object_id: str) -> str:
                made = await api.post(
                    "/devicecontrol/operations", json={"deviceId": object_id, "c8y_Restart": {}}
                )
                made.raise_for_status()
                return str(made.json()["id"])

            op_ids = await gathered(ids, create)
            messages = [
                (f"fg/d/{serial}/op/status", json.dumps({"id": op, "status": status}).encode())
                for status in ("EXECUTING", "SUCCESSFUL")
                for serial, op in zip(serials, op_ids, strict=True)
            ]
            password = HomeSecrets.load_or_create(home).service_password
            before = [cpu_seconds(p) for p in pids]
            started = time.monotonic()
            publishing = asyncio.create_task(
                asyncio.to_thread(publish_statuses, ports["mqtt-service-port"], password, messages)
            )
            # Counted in PostgreSQL itself: asking an instance's API would add its CPU
            # to one instance only.
            database = await asyncpg.connect(
                f"postgresql://{SUPERUSER}:{HomeSecrets.load_or_create(home).database_password}"
                f"@127.0.0.1:{ports['postgres-port']}/{DATABASE}"
            )
            try:
                while True:
                    done = await database.fetchval(
                        "SELECT count(*) FROM operation WHERE status = 'SUCCESSFUL'"
                    )
                    if done >= devices:
                        break
                    if time.monotonic() - started > 600:
                        raise SystemExit("not every operation became SUCCESSFUL within 600 s")
                    await asyncio.sleep(0.05)
            finally:
                await database.close()
            elapsed = time.monotonic() - started
            after = [cpu_seconds(p) for p in pids]
            await publishing
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
    cpu = [b - a for a, b in zip(before, after, strict=True)]
    return {
        "instances": instances,
        "statuses": 2 * devices,
        "seconds": elapsed,
        "per_second": 2 * devices / elapsed,
        "cpu_ms_per_status": 1000 * sum(cpu) / (2 * devices),
        "shares": [c / sum(cpu) for c in cpu],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    args = parser.parse_args()
    results = []
    for instances in (1, 2):
        root = Path(tempfile.mkdtemp(prefix=f"fleetgate-scale-{instances}-"))
        root.chmod(0o755)
        results.append(await run(instances, args.devices, root))
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.devices} devices, {2 * args.devices} statuses per run")
    print("| instances | statuses persisted/s | service CPU per status | each instance's share |")
    print("|---|---|---|---|")
    for r in results:
        shares = " / ".join(f"{100 * s:.0f}%" for s in r["shares"])
        print(
            f"| {r['instances']} | {r['per_second']:,.0f} | {r['cpu_ms_per_status']:.2f} ms"
            f" | {shares} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
