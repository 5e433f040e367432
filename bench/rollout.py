"""One bulk firmware operation to a group of 10,000 devices — the children of 10
simulated gateways — created → all SUCCESSFUL; beside it, in the same run, the same
status messages through a plain mosquitto to one subscriber.

    .venv/bin/python bench/rollout.py [--gateways 10] [--children 1000] [--in-flight 32]
    .venv/bin/python bench/rollout.py --devices 1000     # plain simulated devices instead

It starts its own `fleetgate up` and runs the load generator: by default G gateways of
the simulator library with C children each, in a process of their own
(bench/gateways.py's ``--simulator``, its children carrying out each command as it
arrives), so that the generator's CPU is measured apart from this process's; with
``--devices N``, N plain simulated devices in this process, one TLS connection each (as
bench/operations.py does). Every device or child is auto-registered and declared. It puts
all of them in one device group through the REST API (the group, then one ``childAssets``
reference per device, ``--in-flight`` requests at once), uploads a 16 KiB firmware binary
and POSTs **one** bulk operation (``creationRamp`` 0, no rollout limits). The scheduler
creates the operations in batches server-side; each device reports EXECUTING, downloads
and verifies the file over its signed URL, reports SUCCESSFUL. Measured: POST → the last
operation created and operations created per second (from the operations'
``creationTime``), POST → the bulk operation SUCCESSFUL, and the CPU (``/proc``) of
mosquitto, the service, PostgreSQL and the load generator in that window, per operation.
The run fails unless every device got exactly one operation, every one is SUCCESSFUL in
the database, and every device had the SUCCESSFUL of exactly that operation acknowledged
by the broker.

Baseline, same run: the same 2N status messages through a plain mosquitto (no plugin, no
service; fleetgate's queue limits) to one paho-mqtt subscriber in a process of its own —
bench/gateways.py's (G connections publishing for their children) or, with
``--devices``, bench/operations.py's (N device connections). The working directory (its
PostgreSQL, brokers, certificates) is removed after a successful run and kept after a
failed one: ``up.log`` and ``home/postgres/postgresql.log`` in it say what went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import gateways
import httpx
import operations
from operations import (
    FIRMWARE,
    Failed,
    FleetRun,
    bounded,
    child_with,
    cpu_by_program,
    upload_firmware,
    used,
)

from fleetgate.device.enrolment import load_stack
from fleetgate.device.simulator import SimulationConfig

from embedded import running_stack


async def _database(root: Path) -> asyncpg.Connection:
    home = root / "home"
    secrets = json.loads((home / "secrets.json").read_text())
    port = (home / "postgres" / "data" / "postmaster.pid").read_text().splitlines()[3]
    url = f"postgresql://fleetgate:{secrets['database_password']}@127.0.0.1:{port}/fleetgate"
    return await asyncpg.connect(url)


async def _group(api: httpx.AsyncClient, object_ids: list[str], in_flight: int) -> str:
    """A device group with every object as a child asset: one reference per request,
    ``in_flight`` requests at once (Cumulocity's API adds one reference per POST)."""
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


# --- the load generators -------------------------------------------------------------------


class Load(Protocol):
    """What the benchmark needs of its load generator."""

    async def start(self) -> None: ...
    async def declared(self) -> dict[str, str]:
        """Once every device is declared: device id → managed object id."""
        ...

    def cpu(self) -> float:
        """CPU seconds the generator has used so far."""
        ...

    async def acknowledged(self) -> Mapping[str, Mapping[str, str]]:
        """Device id → operation id → the last status the broker acknowledged."""
        ...

    async def stop(self) -> None: ...


class Children:
    """G gateways x C children in bench/gateways.py's ``--simulator`` process."""

    def __init__(self, args: argparse.Namespace, root: Path, api: httpx.AsyncClient) -> None:
        self.args, self.root, self.api = args, root, api
        self.process: gateways.Gateways | None = None

    async def start(self) -> None:
        self.process = await gateways.Gateways.start(
            {
                "stack": str(self.root / "home" / "stack.json"),
                "gateways": self.args.gateways,
                "children": self.args.children,
                "state_dir": str(self.root / "simulator"),
                "connect_parallel": self.args.connect_parallel,
                "hold": False,
            }
        )

    async def declared(self) -> dict[str, str]:
        assert self.process is not None
        await self.process.expect("ready", self.args.timeout)
        return await gateways.children_objects(self.api, self.args.n, self.args.timeout)

    def cpu(self) -> float:
        assert self.process is not None
        return cpu_by_program(self.process.process.pid)["service"]

    async def acknowledged(self) -> Mapping[str, Mapping[str, str]]:
        assert self.process is not None
        report = await self.process.report()
        found: dict[str, dict[str, str]] = report["acknowledged"]
        return found

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


class Devices:
    """N plain simulated devices in this process (bench/operations.py's)."""

    def __init__(self, args: argparse.Namespace, root: Path, api: httpx.AsyncClient) -> None:
        config = SimulationConfig(
            stack=load_stack(root / "home" / "stack.json"),
            devices=args.devices,
            state_dir=root / "simulator",
            prefix="op",
            delay=args.delay,
            connect_parallel=args.connect_parallel,
            seed=1,
        )
        self.run = FleetRun(args, api, config)
        self.simulating: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.simulating = asyncio.create_task(self.run.simulation.run(), name="the simulation")

    async def declared(self) -> dict[str, str]:
        assert self.simulating is not None
        await self.run.wait_declared(self.simulating)
        await self.run.find_devices()
        return self.run.objects

    def cpu(self) -> float:
        return time.process_time()  # the simulator and this benchmark's API client

    async def acknowledged(self) -> Mapping[str, Mapping[str, str]]:
        return self.run.simulation.acknowledged

    async def stop(self) -> None:
        if self.simulating is not None:
            self.simulating.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.simulating


def check(
    r: asyncpg.Record, ops: dict[str, str], acknowledged: Mapping[str, Mapping[str, str]], n: int
) -> None:
    """One operation per device, all SUCCESSFUL, each device's acknowledged; ``ops``:
    operation id → the device's id (its external id, as the simulator names it)."""
    if not (r["n"] == r["devices"] == r["ok"] == n):
        raise Failed(f"operations {r['n']}, devices {r['devices']}, SUCCESSFUL {r['ok']}")
    expected = {device: {op: "SUCCESSFUL"} for op, device in ops.items()}
    got = {
        device: {op: str(s) for op, s in by_op.items()} for device, by_op in acknowledged.items()
    }
    wrong = [device for device in expected if got.get(device) != expected[device]]
    if wrong or len(got) != n:
        raise Failed(
            f"{len(wrong)} devices did not have exactly their operation's SUCCESSFUL"
            f" acknowledged (e.g. {wrong[:3]}); {len(got)} devices acknowledged any"
        )


async def run_rollout(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    async with running_stack(root) as stack:
        up = child_with(b"fleetgate.cli")
        admin = stack["admin"]
        async with httpx.AsyncClient(
            base_url=stack["api_url"],
            auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
            timeout=60,
            # Below the server's keep-alive: see bench/README (the keep-alive race).
            limits=httpx.Limits(max_connections=args.in_flight + 4, keepalive_expiry=1.0),
        ) as api:
            load: Load = Devices(args, root, api) if args.devices else Children(args, root, api)
            db = await _database(root)
            try:
                await load.start()
                began = time.monotonic()
                objects = await load.declared()
                declared_s = time.monotonic() - began
                url = await upload_firmware(api)
                began = time.monotonic()
                group = await _group(api, list(objects.values()), args.in_flight)
                group_s = time.monotonic() - began
                cpu_before, generator_before = cpu_by_program(up), load.cpu()
                own_before = time.process_time()
                posted, start = time.time(), time.monotonic()
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
                cpu["generator"] = load.cpu() - generator_before
                cpu["this process"] = time.process_time() - own_before
                [r] = await db.fetch(
                    "SELECT count(*) AS n, count(DISTINCT device_id) AS devices,"
                    " min(creation_time) AS first, max(creation_time) AS last,"
                    " count(*) FILTER (WHERE status = 'SUCCESSFUL') AS ok"
                    " FROM operation WHERE bulk_operation_id = $1",
                    int(bulk_id),
                )
                batches = await db.fetch(
                    "SELECT creation_time AS created, count(*) AS n,"
                    " max(dispatched_at) AS dispatched, max(status_time) AS done"
                    " FROM operation WHERE bulk_operation_id = $1"
                    " GROUP BY creation_time ORDER BY creation_time",
                    int(bulk_id),
                )
                names = {object_id: name for name, object_id in objects.items()}
                ops = {
                    str(row["id"]): names.get(str(row["device_id"]), str(row["device_id"]))
                    for row in await db.fetch(
                        "SELECT id, device_id FROM operation WHERE bulk_operation_id = $1",
                        int(bulk_id),
                    )
                }
                check(r, ops, await load.acknowledged(), args.n)
            finally:
                await db.close()
                await load.stop()
    first, last = r["first"].timestamp(), r["last"].timestamp()
    creating = max(last - first, 1e-3)
    created = [b["created"].timestamp() for b in batches]
    dispatched = [b["dispatched"].timestamp() for b in batches]
    gaps = [b - a for a, b in itertools.pairwise(created)] or [0.0]
    return {
        "batches": [b["n"] for b in batches],
        # Each batch: its transaction's now() → its commands published (mark_dispatched).
        "dispatching_s": statistics.median(d - c for c, d in zip(created, dispatched, strict=True)),
        "between_batches_s": statistics.median(gaps),
        "last_dispatched": max(dispatched) - posted,
        "last_successful": max(b["done"].timestamp() for b in batches) - posted,
        "declared_s": declared_s,
        "group_s": group_s,
        "elapsed": end - start,
        "to_last_created": last - posted,
        "creating_s": creating,
        "created_per_s": args.n / creating,
        "created_per_s_from_post": args.n / max(last - posted, 1e-3),
        "cpu": cpu,
    }


async def run_baseline(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The same statuses through a plain mosquitto; CPU as mosquitto, receiver (the
    subscriber) and generator (the publishers, in this process)."""
    if args.devices:
        plain = await operations.run_baseline(args, root)
        cpu = plain["cpu"]
        receiver, generator = cpu["service"], cpu["this process"]
    else:
        plain = await gateways.run_baseline(args, root)
        cpu = plain["cpu"]
        receiver, generator = cpu["subscriber"], cpu["publishers"]
    plain["cpu"] = {"mosquitto": cpu["mosquitto"], "receiver": receiver, "generator": generator}
    return plain


# --- the report ----------------------------------------------------------------------------


def table(args: argparse.Namespace, fleet: dict[str, Any], plain: dict[str, Any]) -> str:
    n = args.n

    def per_op(cpu: dict[str, float], program: str) -> str:
        seconds = cpu.get(program)
        return "—" if seconds is None else f"{seconds / n * 1000:.2f} ms"

    generator = "simulator" if args.devices else "gateways"
    f, p = fleet["cpu"], plain["cpu"]
    rows = [
        ("", "fleetgate", "plain mosquitto"),
        (f"1 bulk operation, {n} devices → all SUCCESSFUL / {2 * n} statuses → received",
         f"{fleet['elapsed']:.2f} s", f"{plain['elapsed']:.2f} s"),
        ("  POST → last operation created", f"{fleet['to_last_created']:.2f} s", "—"),
        ("  operations created/s: POST → last creationTime",
         f"{fleet['created_per_s_from_post']:.0f}", "—"),
        ("  … first → last creationTime (batches of 500)",
         f"{fleet['created_per_s']:.0f}", "—"),
        ("CPU per operation: mosquitto", per_op(f, "mosquitto"), per_op(p, "mosquitto")),
        ("  the service / the subscriber", per_op(f, "service"), per_op(p, "receiver")),
        ("  PostgreSQL", per_op(f, "postgres"), "—"),
        (f"  the load generator ({generator} / publishers)", per_op(f, "generator"),
         per_op(p, "generator")),
    ]  # fmt: skip
    if not args.devices:
        rows.append(("  this process (polling the bulk operation)", per_op(f, "this process"), "—"))
    batches = fleet["batches"]
    notes = [
        f"{len(batches)} batches of up to {max(batches)} operations; per batch (median):"
        f" created → commands published {fleet['dispatching_s'] * 1000:.0f} ms, created →"
        f" the next created {fleet['between_batches_s'] * 1000:.0f} ms; after the POST:"
        f" last command published {fleet['last_dispatched']:.2f} s, last SUCCESSFUL"
        f" committed {fleet['last_successful']:.2f} s, the bulk operation seen SUCCESSFUL"
        f" {fleet['elapsed']:.2f} s",
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>10}  {c:>15}" for a, b, c in rows]
    server = sum(f.get(k, 0.0) for k in ("mosquitto", "service", "postgres"))
    raw = p["mosquitto"] + p["receiver"]
    shape = (
        f"{n} plain devices"
        if args.devices
        else f"{args.gateways} gateways x {args.children} children"
    )
    loads = "/".join(f"{x:.2f}" for x in args.load)
    return "\n".join(
        [
            f"{shape}, delay {args.delay} s; declared in {fleet['declared_s']:.1f} s; group of"
            f" {n} made in {fleet['group_s']:.1f} s ({n / fleet['group_s']:.0f} references/s,"
            f" {args.in_flight} in flight); {os.cpu_count()} cores,"
            f" load average (1/5/15 min) before the run {loads}",
            *lines,
            f"ratio, time: {fleet['elapsed'] / plain['elapsed']:.1f}; CPU of broker + service"
            f" + PostgreSQL / broker + subscriber: {server / raw:.1f}",
            *notes,
        ]
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--children", type=int, default=1000, help="per gateway (1000)")
    parser.add_argument(
        "--devices", type=int, default=0, help="N plain simulated devices instead of children"
    )
    parser.add_argument("--delay", type=float, default=0.0, help="plain devices only (0)")
    parser.add_argument("--in-flight", type=int, default=32, help="REST requests at once (32)")
    parser.add_argument(
        "--connect-parallel", type=int, help="TLS handshakes at once (8; 16 with --devices)"
    )
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    args.n = args.devices or args.gateways * args.children
    if args.connect_parallel is None:  # as gateways.py and operations.py
        args.connect_parallel = 16 if args.devices else 8
    args.load = os.getloadavg()
    connections = args.devices or args.gateways
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * connections + 1024)), hard))
    root = Path(tempfile.mkdtemp(prefix="fleetgate-rollout-"))
    root.chmod(0o755)
    try:
        fleet = await run_rollout(args, root)
        plain = await run_baseline(args, root)
    except Failed as failure:
        raise SystemExit(f"rollout benchmark FAILED: {failure} (its logs: {root})") from None
    shutil.rmtree(root, ignore_errors=True)  # its PostgreSQL, brokers, certificates
    print(table(args, fleet, plain))


if __name__ == "__main__":
    asyncio.run(main())
