"""One bulk firmware operation to a group of N simulated devices, created → all
SUCCESSFUL; beside it, in the same run, the same status messages through a plain
mosquitto to one subscriber (bench/operations.py's baseline).

    .venv/bin/python bench/rollout.py [--devices 10000] [--delay 0]

It starts its own `fleetgate up`, runs N devices of the simulator library in this
process (real certificates, auto-registered on connect), puts them in one device group
(through the REST API: the group, then a child asset reference per device), uploads a 16
KiB firmware binary and POSTs **one** bulk operation (`creationRamp` 0, no rollout
limits). The scheduler creates the operations in batches server-side; each device
reports EXECUTING, downloads and verifies the file, reports SUCCESSFUL. Measured: POST →
every operation created (operations created per second, from the operations'
`creationTime`), POST → the bulk operation SUCCESSFUL, and the CPU of each process in
that window (per operation). The run fails unless every device got exactly one operation
and every one is SUCCESSFUL.

(The gateway simulator, children of gateways as a cheaper load generator, is not on main
yet; this uses the plain simulator.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from operations import (
    Failed,
    FleetRun,
    bounded,
    child_with,
    cpu_by_program,
    run_baseline,
    used,
)

from fleetgate.device.enrolment import load_stack
from fleetgate.device.simulator import SimulationConfig

from embedded import running_stack

FIRMWARE = {"name": "bench-fw", "version": "2.0.0"}


async def _database(root: Path) -> asyncpg.Connection:
    home = root / "home"
    secrets = json.loads((home / "secrets.json").read_text())
    port = (home / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[3]
    url = f"postgresql://fleetgate:{secrets['database_password']}@127.0.0.1:{port}/fleetgate"
    return await asyncpg.connect(url)


async def _group(api: httpx.AsyncClient, object_ids: list[str], in_flight: int) -> str:
    made = await api.post(
        "/inventory/managedObjects",
        json={"name": "bench", "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": {}},
    )
    if made.status_code != 201:
        raise Failed(f"the group was refused: {made.status_code} {made.text}")
    group = str(made.json()["id"])

    async def add(object_id: str) -> None:
        added = await api.post(
            f"/inventory/managedObjects/{group}/childAssets",
            json={"managedObject": {"id": object_id}},
        )
        if added.status_code != 201:
            raise Failed(f"{object_id} was not added: {added.status_code} {added.text}")

    await bounded(object_ids, in_flight, add)
    return group


async def run_rollout(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    async with running_stack(root) as stack:
        up = child_with(b"fleetgate.cli")
        config = SimulationConfig(
            stack=load_stack(root / "home" / "stack.json"),
            devices=args.devices,
            state_dir=root / "simulator",
            prefix="op",
            delay=args.delay,
            connect_parallel=args.connect_parallel,
            seed=1,
        )
        admin = stack["admin"]
        async with httpx.AsyncClient(
            base_url=stack["api_url"],
            auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
            timeout=60,
            limits=httpx.Limits(max_connections=args.in_flight + 4),
        ) as api:
            run = FleetRun(args, api, config)
            simulating = asyncio.create_task(run.simulation.run(), name="the simulation")
            db = await _database(root)
            try:
                began = time.monotonic()
                await run.wait_declared(simulating)
                declared_s = time.monotonic() - began
                url = await run.upload_firmware()
                await run.find_devices()
                group = await _group(api, list(run.objects.values()), args.in_flight)
                cpu_before, own_before = cpu_by_program(up), time.process_time()
                start = time.monotonic()
                response = await api.post(
                    "/devicecontrol/bulkoperations",
                    json={
                        "groupId": group,
                        "startDate": "2020-01-01T00:00:00Z",
                        "creationRamp": 0,
                        "operationPrototype": {"c8y_Firmware": {**FIRMWARE, "url": url}},
                    },
                )
                if response.status_code != 201:
                    raise Failed(f"the bulk operation was refused: {response.text}")
                bulk_id = response.json()["id"]
                deadline = start + args.timeout
                while True:
                    bulk = (await api.get(f"/devicecontrol/bulkoperations/{bulk_id}")).json()
                    if bulk["generalStatus"] in ("SUCCESSFUL", "FAILED"):
                        break
                    if time.monotonic() > deadline:
                        raise Failed(f"not done after {args.timeout:g} s: {bulk['progress']}")
                    await asyncio.sleep(0.2)
                end = time.monotonic()
                cpu = used(cpu_before, cpu_by_program(up))
                cpu["this process"] = time.process_time() - own_before
                rows = await db.fetch(
                    "SELECT count(*) AS n, count(DISTINCT device_id) AS devices,"
                    " min(creation_time) AS first, max(creation_time) AS last,"
                    " count(*) FILTER (WHERE status = 'SUCCESSFUL') AS ok"
                    " FROM operation WHERE bulk_operation_id = $1",
                    int(bulk_id),
                )
            finally:
                await db.close()
                simulating.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await simulating
    [r] = rows
    if not (r["n"] == r["devices"] == r["ok"] == args.devices):
        raise Failed(f"operations {r['n']}, devices {r['devices']}, SUCCESSFUL {r['ok']}")
    first: datetime = r["first"]
    last: datetime = r["last"]
    creating = max((last - first).total_seconds(), 1e-3)
    return {
        "declared_s": declared_s,
        "elapsed": end - start,
        "creating_s": creating,
        "created_per_s": args.devices / creating,
        "cpu": cpu,
    }


def table(args: argparse.Namespace, fleet: dict[str, Any], plain: dict[str, Any]) -> str:
    n = args.devices

    def per_op(run: dict[str, Any], program: str) -> str:
        seconds = run["cpu"].get(program)
        return "—" if seconds is None else f"{seconds / n * 1000:.2f} ms"

    rows = [
        ("", "fleetgate", "plain mosquitto"),
        (f"1 bulk operation, {n} devices → all SUCCESSFUL / {2 * n} statuses → received",
         f"{fleet['elapsed']:.2f} s", f"{plain['elapsed']:.2f} s"),
        ("operations created/s (server-side, first → last creationTime)",
         f"{fleet['created_per_s']:.0f}", "—"),
        ("CPU per operation: mosquitto", per_op(fleet, "mosquitto"), per_op(plain, "mosquitto")),
        ("  service / the subscriber", per_op(fleet, "service"), per_op(plain, "service")),
        ("  PostgreSQL", per_op(fleet, "postgres"), "—"),
        ("  this process (simulator / publishers)", per_op(fleet, "this process"),
         per_op(plain, "this process")),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>10}  {c:>15}" for a, b, c in rows]
    gateway = sum(v for k, v in fleet["cpu"].items() if k != "this process")
    raw = plain["cpu"]["mosquitto"] + plain["cpu"]["service"]
    return "\n".join(
        [
            f"devices: {n}, delay {args.delay} s; connected and declared in"
            f" {fleet['declared_s']:.1f} s; {os.cpu_count()} cores, load before {args.load:.2f}",
            *lines,
            f"ratio, time: {fleet['elapsed'] / plain['elapsed']:.1f}; CPU of broker + service"
            f" + PostgreSQL / broker + subscriber: {gateway / raw:.1f}",
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--in-flight", type=int, default=32, help="lookups in flight (32)")
    parser.add_argument("--connect-parallel", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.devices + 1024)), hard)
    )
    root = Path(tempfile.mkdtemp(prefix="fleetgate-rollout-"))
    root.chmod(0o755)
    try:
        fleet = await run_rollout(args, root)
        plain = await run_baseline(args, root)
    except Failed as failure:
        raise SystemExit(f"rollout benchmark FAILED: {failure}") from None
    print(table(args, fleet, plain))


if __name__ == "__main__":
    asyncio.run(main())
