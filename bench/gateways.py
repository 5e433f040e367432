"""G gateways x C children, one firmware operation per child, created → all SUCCESSFUL;
beside it, in the same run, the same status messages through a plain mosquitto on G
connections to one subscriber. The ratio is what fleetgate's status path costs.

    .venv/bin/python bench/gateways.py [--gateways 10] [--children 1000] [--in-flight 32]

It starts its own `fleetgate up` and runs the gateways of the simulator library in a
process of their own (``--simulator``; real certificates, auto-registered on connect;
each declares its children, which fleetgate registers through it), so that the load
generator's CPU is measured apart. Once every child is declared it opens the live stream,
uploads one small firmware binary and creates one ``c8y_Firmware`` operation per child
(at most ``--in-flight`` requests at once). The children hold each command until all N
have arrived: creating operations is one measured phase, carrying them out another, in
which the 2N statuses reach fleetgate as fast as the gateways can send them — each child
reports EXECUTING, downloads and verifies the file over its signed URL (``--no-download``:
a URL outside fleetgate, nothing to download), reports SUCCESSFUL. Statuses persisted per
second is 2N over that phase (release → the last SUCCESSFUL on the stream). Then every
operation must be SUCCESSFUL, none missing, each child must have had both statuses of
exactly its operation acknowledged, and a sample of children must show the new firmware;
the run exits non-zero otherwise.

Baseline, same run: the same 2N status payloads (QoS 1), published on G gateway
connections (aiomqtt, TLS, the same certificates, the SDK's window of 100 publishes in
flight per connection, each child's two in turn) to a plain mosquitto (no plugin, no
service; fleetgate's queue limits), received by one paho-mqtt subscriber to
``fg/d/+/c/+/op/status`` in a process of its own, as the service's device link is. Every
process's CPU time comes from ``/proc`` over each measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from operations import (
    FIRMWARE,
    SAMPLE,
    Failed,
    Stream,
    child_with,
    connect_devices,
    cpu_by_program,
    create_operations,
    plain_broker,
    start_subscriber,
    total,
    upload_firmware,
    used,
    wait_or_fail,
)

from fleetgate.device import Command, Device, Status
from fleetgate.device.enrolment import load_stack
from fleetgate.device.messages import encode_status
from fleetgate.device.simulated import CHILD_INVENTORY
from fleetgate.device.simulator import Simulation, SimulationConfig, numbered
from fleetgate.pki import ensure_dev_pki

from embedded import free_ports, percentile, running_stack

PREFIX = "gb"
CHILD_TYPE = str(CHILD_INVENTORY.type)
CHILD_STATUSES = "fg/d/+/c/+/op/status"
#: A firmware URL that is not fleetgate's: the command carries no file to download.
OUTSIDE_URL = "http://firmware.example/bench-fw-2.0.bin"
#: Publishes in flight per gateway connection: the SDK link's default window.
WINDOW = 100


# --- the gateways, in a process of their own -------------------------------------------


async def simulate(spec: dict[str, Any]) -> None:
    """The ``--simulator`` process: runs the gateways; says ``ready`` once every child is
    declared and ``held`` once every child holds its command; ``go`` on standard input
    releases them, ``report`` prints what the broker acknowledged, end of input stops.
    With ``"hold": false`` in ``spec`` the children carry out each command as it arrives
    (no ``held``, no ``go``: bench/rollout.py)."""
    config = SimulationConfig(
        stack=load_stack(Path(spec["stack"])),
        devices=0,
        gateways=spec["gateways"],
        children=spec["children"],
        state_dir=Path(spec["state_dir"]),
        prefix=PREFIX,
        delay=0,
        connect_parallel=spec["connect_parallel"],
        seed=1,
    )
    acked: dict[str, float] = {}
    go, all_acked = asyncio.Event(), asyncio.Event()
    everyone, held = spec["gateways"] * spec["children"], 0

    def observe(_device: str, op_id: str, status: Status, at: float) -> None:
        acked.setdefault(f"{op_id}/{status.value}", at)
        if len(acked) == 2 * everyone:
            all_acked.set()

    simulation = Simulation(config, observer=observe)
    execute = simulation.work.execute

    async def hold(device: Device, command: Command) -> None:
        nonlocal held
        held += 1
        if held == everyone:
            print("held", flush=True)
        await go.wait()
        await execute(device, command)

    if spec.get("hold", True):
        simulation.work.execute = hold  # type: ignore[method-assign]
    running = asyncio.create_task(simulation.run())
    await simulation.ready.wait()
    print("ready", flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        if line.strip() == "go":
            go.set()
        elif line.strip() == "report":
            # The service may commit a status before this busy process has read its
            # PUBACK: wait (a while) until every status's PUBACK has been read.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await all_acked.wait()
            acknowledged = {
                child: {op: status.value for op, status in ops.items()}
                for child, ops in simulation.acknowledged.items()
            }
            print(json.dumps({"acked": acked, "acknowledged": acknowledged}), flush=True)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running


class Gateways:
    """The ``--simulator`` process seen from the benchmark."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, spec: dict[str, Any]) -> Gateways:
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--simulator", json.dumps(spec),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=256 * 1024 * 1024,
        )  # fmt: skip
        return cls(process)

    async def expect(self, word: str, timeout: float) -> None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if line.strip() != word.encode():
            raise Failed(f"the gateways said {line[:200]!r}, not {word!r}")

    async def say(self, word: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{word}\n".encode())
        await self.process.stdin.drain()

    async def report(self) -> dict[str, Any]:
        await self.say("report")
        assert self.process.stdout is not None
        result: dict[str, Any] = json.loads(await self.process.stdout.readline())
        return result

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.send_signal(signal.SIGKILL)
                await self.process.wait()


# --- fleetgate ---------------------------------------------------------------------------


async def children_objects(api: httpx.AsyncClient, expected: int, timeout: float) -> dict[str, str]:
    """Child id → managed object id, once all ``expected`` children declared themselves."""
    deadline = time.monotonic() + timeout
    query = {"type": CHILD_TYPE, "fragmentType": "c8y_SupportedOperations"}
    while (declared := await total(api, "/inventory/managedObjects", **query)) < expected:
        if time.monotonic() > deadline:
            raise Failed(f"only {declared} of {expected} children declared after {timeout:g} s")
        await asyncio.sleep(0.5)
    objects: dict[str, str] = {}
    for page in range(1, expected // 2000 + 2):
        response = await api.get(
            "/inventory/managedObjects",
            params={**query, "pageSize": "2000", "currentPage": str(page)},
        )
        response.raise_for_status()
        objects.update({o["name"]: o["id"] for o in response.json()["managedObjects"]})
    return objects


def check(
    created: dict[str, tuple[str, float]],
    stream: Stream,
    report: dict[str, Any],
    counts: dict[str, int],
    n: int,
) -> None:
    """Every operation SUCCESSFUL, both statuses of each acknowledged, nothing lost."""
    problems = []
    if len(created) != n:
        problems.append(f"{len(created)} operations created, not {n}")
    for status in ("EXECUTING", "SUCCESSFUL"):
        unacked = [op for op in created if f"{op}/{status}" not in report["acked"]]
        if unacked:
            problems.append(f"{len(unacked)} {status} never acknowledged (e.g. {unacked[:3]})")
    unseen = [op for op in created if (op, "SUCCESSFUL") not in stream.arrived]
    if unseen:
        problems.append(f"{len(unseen)} SUCCESSFUL never on the stream (e.g. {unseen[:3]})")
    expected = {serial: {op: "SUCCESSFUL"} for op, (serial, _) in created.items()}
    if report["acknowledged"] != expected:
        wrong = [c for c in expected if report["acknowledged"].get(c) != expected[c]]
        problems.append(f"{len(wrong)} children did not succeed once (e.g. {wrong[:3]})")
    if counts["SUCCESSFUL"] != n or sum(counts.values()) != n:
        problems.append(f"the API counts {counts}")
    if problems:
        raise Failed("; ".join(problems))


async def run_fleetgate(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    n = args.gateways * args.children
    async with running_stack(root) as stack:
        up = child_with(b"fleetgate.cli")
        admin = stack["admin"]
        spec = {
            "stack": str(root / "home" / "stack.json"),
            "gateways": args.gateways,
            "children": args.children,
            "state_dir": str(root / "simulator"),
            "connect_parallel": args.connect_parallel,
        }
        gateways = await Gateways.start(spec)
        async with httpx.AsyncClient(
            base_url=stack["api_url"],
            auth=(f"{admin['tenant']}/{admin['username']}", admin["password"]),
            timeout=60,
            # Below the server's keep-alive (uvicorn: 5 s, httpx's default too): a request
            # on a connection the server is closing at that moment fails with ReadError.
            limits=httpx.Limits(max_connections=args.in_flight + 4, keepalive_expiry=1.0),
        ) as api:
            stream = Stream(n)
            following = asyncio.create_task(stream.follow(api), name="the stream")
            try:
                began = time.monotonic()
                await gateways.expect("ready", args.timeout)
                objects = await children_objects(api, n, args.timeout)
                declared_s = time.monotonic() - began
                url = OUTSIDE_URL if args.no_download else await upload_firmware(api)
                await wait_or_fail("stream opened", stream.opened, following, 30)
                sim = gateways.process.pid

                def cpu() -> dict[str, float]:
                    found = cpu_by_program(up)
                    found["gateways"] = cpu_by_program(sim)["service"]
                    found["this process"] = time.process_time()
                    return found

                created: dict[str, tuple[str, float]] = {}
                before = cpu()
                start = time.monotonic()
                serials = sorted(objects)
                await create_operations(api, serials, objects, url, args.in_flight, created)
                all_created = time.monotonic()
                await gateways.expect("held", args.timeout)
                delivered = time.monotonic()
                middle = cpu()
                await gateways.say("go")
                released = time.monotonic()
                await wait_or_fail(f"{n} SUCCESSFUL", stream.finished, following, args.timeout)
                after = cpu()
                if stream.overflow:
                    raise Failed("the stream overflowed: this benchmark read it too slowly")
                report = await gateways.report()
                counts = {
                    s: await total(api, "/devicecontrol/operations", status=s)
                    for s in ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")
                }
                check(created, stream, report, counts, n)
                for serial in serials[:: max(1, n // SAMPLE)][:SAMPLE]:
                    device = (await api.get(f"/inventory/managedObjects/{objects[serial]}")).json()
                    if device.get("c8y_Firmware", {}).get("version") != FIRMWARE["version"]:
                        raise Failed(f"{serial} has firmware {device.get('c8y_Firmware')}")
            finally:
                following.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await following
                await gateways.stop()
    arrived = stream.arrived
    end = max(at for (_, status), at in arrived.items() if status == "SUCCESSFUL")
    latency = [
        arrived[(op, status)] - at
        for key, at in report["acked"].items()
        for op, _, status in [key.partition("/")]
        if (op, status) in arrived
    ]
    return {
        "declared_s": declared_s,
        "create_s": all_created - start,
        "deliver_s": delivered - start,
        "drain_s": end - released,
        "total_s": end - start,
        "statuses_per_s": 2 * n / (end - released),
        "p50": statistics.median(latency),
        "p99": percentile(latency, 99),
        "timed": len(latency),
        "cpu_create": used(before, middle),
        "cpu_drain": used(middle, after),
    }


# --- the baseline ------------------------------------------------------------------------


async def run_baseline(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    gateway_ids = numbered(f"{PREFIX}-gw", args.gateways)
    device_port, service_port = free_ports(2)
    broker = plain_broker(root, device_port, service_port)
    n = args.gateways * args.children
    clients = {}
    try:
        clients = await connect_devices(
            device_port,
            ensure_dev_pki(root / "certs").ca_file,
            root / "simulator" / "devices",
            list(gateway_ids),
            args.connect_parallel,
            in_flight=WINDOW,
        )
        receiver = await start_subscriber(service_port, 2 * n, args.timeout, CHILD_STATUSES)
        assert receiver.stdout is not None
        sent: dict[str, float] = {}
        numbers = iter(range(1, n + 1))

        async def gateway(gateway_id: str) -> None:
            client = clients[gateway_id]
            pending = iter(numbered(f"{gateway_id}-c", args.children))

            async def worker() -> None:
                for child in pending:
                    op_id = str(next(numbers))
                    topic = f"fg/d/{gateway_id}/c/{child}/op/status"
                    for status in (Status.EXECUTING, Status.SUCCESSFUL):
                        sent[f"{op_id}/{status.value}"] = time.monotonic()
                        await client.publish(topic, encode_status(op_id, status), qos=1)

            await asyncio.gather(*(worker() for _ in range(WINDOW)))

        before, own = cpu_by_program(broker.pid), time.process_time()
        start = time.monotonic()
        await asyncio.gather(*(gateway(g) for g in gateway_ids))
        own = time.process_time() - own
        received = json.loads(await receiver.stdout.read())
        cpu = used(before, cpu_by_program(broker.pid))
        await receiver.wait()
    finally:
        await asyncio.gather(
            *(c.__aexit__(None, None, None) for c in clients.values()), return_exceptions=True
        )
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)
    arrived: dict[str, float] = received["arrived"]
    if len(arrived) != 2 * n:
        raise Failed(f"the baseline's subscriber received {len(arrived)} of {2 * n} messages")
    latency = [arrived[key] - at for key, at in sent.items()]
    elapsed = max(arrived.values()) - start
    return {
        "elapsed": elapsed,
        "statuses_per_s": 2 * n / elapsed,
        "p50": statistics.median(latency),
        "p99": percentile(latency, 99),
        "cpu": {"mosquitto": cpu["mosquitto"], "subscriber": received["cpu"], "publishers": own},
    }


# --- the report --------------------------------------------------------------------------


def table(args: argparse.Namespace, fleet: dict[str, Any], plain: dict[str, Any]) -> str:
    n = args.gateways * args.children

    def ms(seconds: float | None) -> str:
        return "—" if seconds is None else f"{seconds / n * 1000:.2f} ms"

    create, drain = fleet["cpu_create"], fleet["cpu_drain"]
    rows = [
        ("", "fleetgate", "plain mosquitto"),
        (f"{n} operations created (REST)", f"{fleet['create_s']:.2f} s", "—"),
        ("  operations created/s", f"{n / fleet['create_s']:.0f}", "—"),
        (
            f"{2 * n} statuses: release → all SUCCESSFUL / sent → received",
            f"{fleet['drain_s']:.2f} s",
            f"{plain['elapsed']:.2f} s",
        ),
        (
            "  statuses/s (persisted / received)",
            f"{fleet['statuses_per_s']:.0f}",
            f"{plain['statuses_per_s']:.0f}",
        ),
        (
            "  latency p50 / p99 (PUBACK → stream / publish → received)",
            f"{fleet['p50'] * 1000:.0f} / {fleet['p99'] * 1000:.0f} ms",
            f"{plain['p50'] * 1000:.0f} / {plain['p99'] * 1000:.0f} ms",
        ),
        ("created → all SUCCESSFUL", f"{fleet['total_s']:.2f} s", "—"),
        ("CPU per operation, creating: the service", ms(create.get("service")), "—"),
        ("  PostgreSQL", ms(create.get("postgres")), "—"),
        ("  mosquitto", ms(create.get("mosquitto")), "—"),
        ("  the gateways (receiving the commands)", ms(create.get("gateways")), "—"),
        ("  the API client and the stream (this process)", ms(create.get("this process")), "—"),
        (
            "CPU per operation, carrying out: the service / the subscriber",
            ms(drain.get("service")),
            ms(plain["cpu"]["subscriber"]),
        ),
        ("  PostgreSQL", ms(drain.get("postgres")), "—"),
        ("  mosquitto", ms(drain.get("mosquitto")), ms(plain["cpu"]["mosquitto"])),
        (
            "  the gateways / the publishers",
            ms(drain.get("gateways")),
            ms(plain["cpu"]["publishers"]),
        ),
        ("  the stream (this process)", ms(drain.get("this process")), "—"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>17}  {c:>15}" for a, b, c in rows]
    server = sum(drain.get(k, 0.0) for k in ("service", "postgres", "mosquitto"))
    raw = plain["cpu"]["mosquitto"] + plain["cpu"]["subscriber"]
    service = create.get("service", 0.0) + drain.get("service", 0.0)
    generator = create.get("gateways", 0.0) + drain.get("gateways", 0.0)
    notes = [
        f"every operation SUCCESSFUL; {min(SAMPLE, n)} children checked for the new firmware;"
        f" {fleet['timed']} of {2 * n} statuses timed on the stream",
        f"carrying out, CPU of broker + service + PostgreSQL / broker + subscriber:"
        f" {server / raw:.1f}; time: {fleet['drain_s'] / plain['elapsed']:.1f}",
        f"the gateways' CPU per operation, whole run: {generator / n * 1000:.2f} ms, the"
        f" service's {service / n * 1000:.2f} ms ({generator / service:.0%})",
    ]
    header = (
        f"{args.gateways} gateways x {args.children} children,"
        f" {'no download' if args.no_download else 'firmware downloaded'},"
        f" requests in flight: {args.in_flight}; all declared in {fleet['declared_s']:.1f} s;"
        f" {os.cpu_count()} cores, load average before the run {args.load:.2f}"
    )
    return "\n".join([header, *lines, *notes])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10)
    parser.add_argument("--children", type=int, default=1000, help="per gateway (1000)")
    parser.add_argument(
        "--in-flight", type=int, default=32, help="operation requests in flight at once (32)"
    )
    parser.add_argument(
        "--no-download", action="store_true", help="a firmware URL outside fleetgate"
    )
    parser.add_argument("--connect-parallel", type=int, default=8, help="TLS handshakes (8)")
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds each phase may take (900)"
    )
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="fleetgate-gateways-"))
    root.chmod(0o755)
    try:
        fleet = await run_fleetgate(args, root)
        plain = await run_baseline(args, root)
    except Failed as failure:
        raise SystemExit(f"gateways benchmark FAILED: {failure}") from None
    finally:
        shutil.rmtree(root, ignore_errors=True)  # its PostgreSQL, broker, certificates: ~180 MB
    print(table(args, fleet, plain))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--simulator"]:
        asyncio.run(simulate(json.loads(sys.argv[2])))
    else:
        asyncio.run(main())
