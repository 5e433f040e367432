"""One firmware operation for each of N simulated devices, created → SUCCESSFUL; beside
it, in the same run, the same status messages through a plain mosquitto to one subscriber.
The ratio is what fleetgate costs.

    .venv/bin/python bench/operations.py [--devices 2000] [--delay 0] [--in-flight 32]

It starts its own `fleetgate up`, runs N devices of the simulator library in this process
(their own certificates, auto-registered on connect; each operation takes ``--delay``
seconds, jittered, so that 0 measures fleetgate and not the fake work) and waits until
every device is connected and declared. It opens the live stream
(``/devicecontrol/operations/stream``), uploads one small firmware binary and creates one
``c8y_Firmware`` operation per device (at most ``--in-flight`` requests at once). Each
device reports EXECUTING, downloads and verifies the file, reports SUCCESSFUL. A status's
latency is its arrival on the stream (committed and announced) minus the broker's PUBACK
to the device (the simulator's observer). Then every operation must be SUCCESSFUL, none
missing, and a sample of devices must show the new firmware: the run exits non-zero
otherwise.

Baseline, same run: the same 2N status messages (the device's own payload, QoS 1),
published by N device connections (aiomqtt, TLS, the same certificates, each sending its
two in turn) to a plain mosquitto (no plugin, no service; fleetgate's queue limits) and
received by one paho-mqtt subscriber in a process of its own, as the service's device
link is. Every time is ``time.monotonic()``: on Linux one clock for all processes.

Both runs also count the CPU time (``/proc``) that each process spent in the measured
window: the load generator shares the machine, and on few cores it, not fleetgate, can
set the pace; CPU per operation says what fleetgate itself costs either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from fleetgate.device.commands import Status
from fleetgate.device.enrolment import load_stack
from fleetgate.device.messages import encode_status
from fleetgate.device.simulator import Simulation, SimulationConfig
from fleetgate.pki import ensure_dev_pki
from fleetgate.watch.sse import EventStreamParser

from embedded import free_ports, percentile, running_stack

FIRMWARE = {"name": "bench-fw", "version": "2.0.0"}
#: What each device reports, in this order, for its operation.
STATUSES = (Status.EXECUTING, Status.SUCCESSFUL)
ALL_STATUSES = ("PENDING", "EXECUTING", "SUCCESSFUL", "FAILED")
DECLARED = {"fragmentType": "c8y_SupportedOperations"}
#: The stream sends a keepalive every 15 s; a read waits longer than that.
STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
#: Devices whose managed object is read back for the new firmware.
SAMPLE = 50


class Failed(Exception):
    """The run went wrong (lost or unfinished operations, lost messages): no figures."""


async def bounded(
    items: Iterable[Any], in_flight: int, work: Callable[[Any], Awaitable[None]]
) -> None:
    """``work(item)`` for every item, at most ``in_flight`` at once: that many workers
    share one iterator (no task per item; DESIGN.md on gathering thousands)."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def total(api: httpx.AsyncClient, path: str, **params: str) -> int:
    response = await api.get(path, params={**params, "pageSize": 1, "withTotalPages": "true"})
    response.raise_for_status()
    return int(response.json()["statistics"]["totalElements"])


async def upload_firmware(api: httpx.AsyncClient) -> str:
    """A small firmware binary; its URL (``…/inventory/binaries/<id>``)."""
    image = random.Random(0).randbytes(16 * 1024)
    obj = json.dumps({**FIRMWARE, "type": "c8y_Firmware"})
    response = await api.post(
        "/inventory/binaries",
        files={
            "object": (None, obj, "application/json"),
            "file": ("bench-fw.bin", image, "application/octet-stream"),
        },
    )
    if response.status_code != 201:
        raise Failed(f"the firmware upload was refused: {response.status_code} {response.text}")
    return str(response.json()["self"])


async def create_operations(
    api: httpx.AsyncClient,
    serials: Iterable[str],
    objects: dict[str, str],
    url: str,
    in_flight: int,
    created: dict[str, tuple[str, float]],
) -> None:
    """One ``c8y_Firmware`` operation of ``url`` for each serial (``objects``: its managed
    object id), ``in_flight`` requests at once; ``created``: operation id → (serial, when)."""

    async def create(serial: str) -> None:
        response = await api.post(
            "/devicecontrol/operations",
            json={"deviceId": objects[serial], "c8y_Firmware": {**FIRMWARE, "url": url}},
        )
        if response.status_code != 201:
            raise Failed(f"{serial}: {response.status_code} {response.text}")
        created[response.json()["id"]] = (serial, time.monotonic())

    await bounded(serials, in_flight, create)


# --- CPU time from /proc ------------------------------------------------------------------


def processes() -> dict[int, tuple[str, int, float]]:
    """pid → (program name, parent pid, CPU seconds so far: user + system, every thread,
    and of its children that ended and were waited for).

    A process that ends takes its CPU time out of the sum of the living; its parent's
    ``cutime``/``cstime`` holds it from then on, so the tree's total never goes back
    (PostgreSQL's backends come and go with the pool's connections)."""
    found = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else None
        except OSError:
            continue  # gone meanwhile
        if stat is not None:
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3, "state"
            cpu = sum(int(value) for value in fields[11:15]) / ticks
            found[int(entry.name)] = (name, int(fields[1]), cpu)
    return found


def cpu_by_program(root: int) -> dict[str, float]:
    """CPU seconds so far of ``root`` and its descendants, summed by program:
    ``postgres``, ``mosquitto``, and everything else as ``service``."""
    table = processes()
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, (_, parent, _) in table.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    found: dict[str, float] = {}
    for pid in tree & table.keys():
        name, _, seconds = table[pid]
        program = name if name in ("postgres", "mosquitto") else "service"
        found[program] = found.get(program, 0.0) + seconds
    return found


def child_with(marker: bytes) -> int:
    """The pid of this process's child whose command line contains ``marker``."""
    for pid, (_, parent, _) in processes().items():
        with contextlib.suppress(OSError):
            if parent == os.getpid() and marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise Failed(f"no child process runs {marker.decode()}")


def start_profiler(output: Path | None, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy (a dev extra) recording ``pid``'s Python stacks into ``output`` (raw,
    collapsed stacks: one line per stack with its sample count), or nothing."""
    if output is None:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    command = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "-o", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    """Stop py-spy so that it writes its profile (it does so on SIGINT)."""
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


# --- fleetgate --------------------------------------------------------------------------


class Stream:
    """The live stream of operation changes: when each (operation id, status) arrived."""

    def __init__(self, expected: int) -> None:
        self.arrived: dict[tuple[str, str], float] = {}
        self.repeated = 0  # events of an (operation, status) that had arrived already
        self.opened = asyncio.Event()
        self.finished = asyncio.Event()  # ``expected`` operations SUCCESSFUL, or overflow
        self.overflow = False
        self._expected = expected
        self._successful = 0

    async def follow(self, api: httpx.AsyncClient) -> None:
        parser = EventStreamParser()
        path = "/devicecontrol/operations/stream"
        async with api.stream("GET", path, timeout=STREAM_TIMEOUT) as response:
            response.raise_for_status()
            self.opened.set()  # the server subscribed before it sent the headers
            async for chunk in response.aiter_bytes():
                now = time.monotonic()
                for event in parser.feed(chunk):
                    if event.type == "overflow":
                        self.overflow = True
                        self.finished.set()
                        return
                    if event.type == "operation":
                        self._arrive(json.loads(event.data), now)

    def _arrive(self, op: dict[str, Any], now: float) -> None:
        key = (op["id"], op["status"])
        if key in self.arrived:
            self.repeated += 1
            return
        self.arrived[key] = now
        if op["status"] == Status.SUCCESSFUL:
            self._successful += 1
            if self._successful == self._expected:
                self.finished.set()


async def wait_or_fail(
    what: str, event: asyncio.Event, task: asyncio.Task[Any], timeout: float
) -> None:
    """Wait for ``event``; fail when ``task`` (the simulation, the stream) ends first."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiting, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if event.is_set():
        return
    if task.done():
        error = task.exception() if not task.cancelled() else None
        raise Failed(f"{what}: {task.get_name()} ended first ({error!r})")
    raise Failed(f"{what}: not within {timeout:g} s")


class FleetRun:
    """The fleetgate half: a running stack, its simulated devices, the stream."""

    def __init__(
        self, args: argparse.Namespace, api: httpx.AsyncClient, config: SimulationConfig
    ) -> None:
        self.args = args
        self.api = api
        self.simulation = Simulation(config, observer=self.observe)
        self.stream = Stream(args.devices)
        #: (operation id, status) → when the device's coroutine saw the PUBACK.
        self.acked: dict[tuple[str, str], float] = {}
        self.created: dict[str, tuple[str, float]] = {}  # operation id → (device, when)
        self.objects: dict[str, str] = {}  # device id → managed object id

    def observe(self, device_id: str, op_id: str, status: Status, at: float) -> None:
        self.acked.setdefault((op_id, status.value), at)

    async def wait_declared(self, simulating: asyncio.Task[None]) -> None:
        """Every device connected and its declaration committed (visible in the inventory)."""
        timeout, n = self.args.timeout, self.args.devices
        await wait_or_fail("devices connected", self.simulation.ready, simulating, timeout)
        deadline = time.monotonic() + timeout
        while (declared := await total(self.api, "/inventory/managedObjects", **DECLARED)) < n:
            if time.monotonic() > deadline:
                raise Failed(f"only {declared} of {n} devices declared after {timeout:g} s")
            await asyncio.sleep(0.2)

    async def find_devices(self) -> None:
        async def look_up(serial: str) -> None:
            response = await self.api.get(f"/identity/externalIds/c8y_Serial/{serial}")
            response.raise_for_status()
            self.objects[serial] = response.json()["managedObject"]["id"]

        await bounded(self.simulation.config.device_ids, self.args.in_flight, look_up)

    async def upload_firmware(self) -> str:
        return await upload_firmware(self.api)

    async def create_all(self, url: str) -> None:
        await create_operations(
            self.api, self.simulation.config.device_ids, self.objects, url, self.args.in_flight,
            self.created,
        )  # fmt: skip

    async def check(self) -> int:
        """Every operation SUCCESSFUL, both statuses of each acknowledged, nothing lost;
        fails otherwise. Returns how many EXECUTING changes the stream did not announce."""
        n, arrived = self.args.devices, self.stream.arrived
        problems = []
        if len(self.created) != n:
            problems.append(f"{len(self.created)} operations created, not {n}")
        for status in STATUSES:
            unacked = [op for op in self.created if (op, status.value) not in self.acked]
            if unacked:
                problems.append(f"{len(unacked)} {status} never acknowledged (e.g. {unacked[:3]})")
        unseen = [op for op in self.created if (op, Status.SUCCESSFUL.value) not in arrived]
        if unseen:
            problems.append(f"{len(unseen)} SUCCESSFUL never on the stream (e.g. {unseen[:3]})")
        strangers = {op for op, _ in arrived} - self.created.keys()
        if strangers:
            problems.append(f"changes of {len(strangers)} operations not created here")
        acknowledged = self.simulation.acknowledged
        wrong = [d for d, ops in acknowledged.items() if list(ops.values()) != [Status.SUCCESSFUL]]
        if wrong or len(acknowledged) != n:
            problems.append(f"{n - len(acknowledged) + len(wrong)} devices did not succeed once")
        counts = await self.counts()
        if counts["SUCCESSFUL"] != n or sum(counts.values()) != n:
            problems.append(f"the API counts {counts}")
        serials = sorted(serial for serial, _ in self.created.values())
        for serial in random.Random(0).sample(serials, min(SAMPLE, len(serials))):
            device = (
                await self.api.get(f"/inventory/managedObjects/{self.objects[serial]}")
            ).json()
            if device.get("c8y_Firmware", {}).get("version") != FIRMWARE["version"]:
                problems.append(f"{serial} has firmware {device.get('c8y_Firmware')}")
                break
        if problems:
            raise Failed("; ".join(problems))
        return sum(1 for op in self.created if (op, Status.EXECUTING.value) not in arrived)

    async def counts(self) -> dict[str, int]:
        return {
            s: await total(self.api, "/devicecontrol/operations", status=s) for s in ALL_STATUSES
        }


async def run_fleetgate(args: argparse.Namespace, root: Path) -> dict[str, Any]:
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
            following = asyncio.create_task(run.stream.follow(api), name="the stream")
            try:
                began = time.monotonic()
                await run.wait_declared(simulating)
                declared_s = time.monotonic() - began
                url = await run.upload_firmware()
                await run.find_devices()
                await wait_or_fail("stream opened", run.stream.opened, following, 30)
                profiler = start_profiler(args.profile, up)
                cpu_before, own_before = cpu_by_program(up), time.process_time()
                start = time.monotonic()
                await run.create_all(url)
                all_created = time.monotonic()
                await wait_or_fail(
                    f"{args.devices} operations SUCCESSFUL",
                    run.stream.finished,
                    following,
                    args.timeout,
                )
                cpu = used(cpu_before, cpu_by_program(up))
                cpu["this process"] = time.process_time() - own_before
                stop_profiler(profiler)
                if run.stream.overflow:
                    raise Failed("the stream overflowed: this benchmark read it too slowly")
                unannounced = await run.check()
            except Failed as failure:
                state = f"{run.simulation.summary()}; in the API: {await run.counts()}"
                raise Failed(f"{failure}; {state}") from None
            finally:
                for task in (simulating, following):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
    arrived = run.stream.arrived
    # Each device reports EXECUTING before SUCCESSFUL and the service commits in the
    # broker's order: when the last SUCCESSFUL arrives, all 2N reports are committed.
    end = max(at for (_, status), at in arrived.items() if status == Status.SUCCESSFUL)
    latency = [arrived[key] - at for key, at in run.acked.items() if key in arrived]
    round_trip = [arrived[(op, "SUCCESSFUL")] - at for op, (_, at) in run.created.items()]
    return {
        "declared_s": declared_s,
        "elapsed": end - start,
        "created_per_s": args.devices / (all_created - start),
        "statuses_per_s": len(STATUSES) * args.devices / (end - start),
        "p50": statistics.median(latency),
        "p99": percentile(latency, 99),
        "timed": len(latency),
        "round_trip_p50": statistics.median(round_trip),
        "round_trip_p99": percentile(round_trip, 99),
        "unannounced": unannounced,
        "repeated": run.stream.repeated,
        "cpu": cpu,
    }


# --- the baseline ------------------------------------------------------------------------


#: What the baseline's subscriber subscribes to by default: every device's statuses.
DEVICE_STATUSES = "fg/d/+/op/status"


def subscribe(port: int, count: int, timeout: float, topic_filter: str = DEVICE_STATUSES) -> None:
    """The baseline's receiver, in a process of its own: paho-mqtt, QoS 1. Prints ``ready``
    once subscribed, then ``{"arrived": {"<op id>/<status>": when}, "cpu": seconds}`` once
    ``count`` have arrived or ``timeout`` has passed. Operation ids must be unique among
    the messages (they are: one operation per device or child)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    arrived: dict[str, float] = {}
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="baseline-subscriber")
    client.max_inflight_messages_set(1000)

    def on_connect(c: paho.Client, _u: object, _f: object, _r: object, _p: object) -> None:
        c.subscribe(topic_filter, qos=1)

    def on_subscribe(_c: object, _u: object, _m: object, _r: object, _p: object) -> None:
        print("ready", flush=True)

    def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
        now = time.monotonic()
        body = json.loads(message.payload)
        arrived.setdefault(f"{body['id']}/{body['status']}", now)
        if len(arrived) >= count:
            done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    ready = time.process_time()
    done.wait(timeout)
    cpu = time.process_time() - ready
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"arrived": arrived, "cpu": cpu}), flush=True)


def plain_broker(root: Path, device_port: int, service_port: int) -> subprocess.Popen[bytes]:
    """mosquitto with fleetgate's queue limits, no plugin: TLS with the devices'
    certificates for them, plain TCP on loopback for the subscriber."""
    pki = ensure_dev_pki(root / "certs")
    ca = root / "plain-ca.crt"
    ca.write_bytes((root / "simulator" / "ca.crt").read_bytes())
    ca.chmod(0o644)
    conf = root / "plain.conf"
    conf.write_text(
        "per_listener_settings false\nallow_anonymous true\nmax_connections -1\n"
        "max_inflight_messages 1000\nmax_queued_messages 1000000\n"
        "max_queued_bytes 1073741824\nmax_inflight_bytes 0\n"
        f"listener {service_port} 127.0.0.1\n"
        f"listener {device_port} 127.0.0.1\ncafile {ca}\n"
        f"certfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
        "require_certificate true\nuse_identity_as_username true\n"
    )
    conf.chmod(0o644)
    return subprocess.Popen(
        ["mosquitto", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def connect_devices(
    port: int,
    ca_file: Path,
    keys: Path,
    serials: list[str],
    parallel: int,
    in_flight: int | None = None,
) -> dict[str, aiomqtt.Client]:
    """TLS clients with each serial's certificate; ``in_flight`` bounds each one's
    publishes awaiting PUBACK (as the SDK's link does), unbounded when None."""
    clients: dict[str, aiomqtt.Client] = {}

    async def connect(serial: str) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        context.load_cert_chain(keys / f"{serial}.crt", keys / f"{serial}.key")
        client = aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=serial,
            tls_context=context,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=60,
            max_inflight_messages=in_flight,
            max_concurrent_outgoing_calls=in_flight,
        )
        if in_flight is not None:
            client.pending_calls_threshold = in_flight + 10
        for attempt in range(100):
            try:
                await client.__aenter__()
                break
            except aiomqtt.MqttError:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.1)  # the broker is still starting
        clients[serial] = client

    await bounded(serials, parallel, connect)
    return clients


async def start_subscriber(
    port: int, count: int, timeout: float, topic_filter: str = DEVICE_STATUSES
) -> asyncio.subprocess.Process:
    """:func:`subscribe` in a process of its own, once it has subscribed."""
    receiver = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--subscriber",
        str(port),
        str(count),
        str(timeout),
        topic_filter,
        stdout=asyncio.subprocess.PIPE,
    )
    assert receiver.stdout is not None
    if (await asyncio.wait_for(receiver.stdout.readline(), 30)).strip() != b"ready":
        raise Failed("the baseline's subscriber did not start")
    return receiver


async def run_baseline(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    serials = [f"op-{n:04d}" for n in range(1, args.devices + 1)]
    device_port, service_port = free_ports(2)
    broker = plain_broker(root, device_port, service_port)
    count = len(STATUSES) * len(serials)
    clients: dict[str, aiomqtt.Client] = {}
    try:
        clients = await connect_devices(
            device_port,
            ensure_dev_pki(root / "certs").ca_file,
            root / "simulator" / "devices",
            serials,
            args.connect_parallel,
        )
        receiver = await start_subscriber(service_port, count, args.timeout)
        assert receiver.stdout is not None
        sent: dict[str, float] = {}

        async def report(op_id: int, serial: str) -> None:
            for status in STATUSES:
                sent[f"{op_id}/{status}"] = time.monotonic()
                await clients[serial].publish(
                    f"fg/d/{serial}/op/status", encode_status(str(op_id), status), qos=1
                )

        cpu_before, own_before = cpu_by_program(broker.pid), time.process_time()
        start = time.monotonic()
        # One task per device, but each device's client has one publish in flight at a
        # time: aiomqtt's quadratic case (thousands on one client) does not arise.
        await asyncio.gather(*(report(n, serial) for n, serial in enumerate(serials, 1)))
        own = time.process_time() - own_before
        received = json.loads(await receiver.stdout.read())
        cpu = used(cpu_before, cpu_by_program(broker.pid))
        await receiver.wait()
    finally:
        await asyncio.gather(
            *(c.__aexit__(None, None, None) for c in clients.values()), return_exceptions=True
        )
        broker.send_signal(signal.SIGTERM)
        broker.wait(30)
    arrived: dict[str, float] = received["arrived"]
    if len(arrived) != count:
        raise Failed(f"the baseline's subscriber received {len(arrived)} of {count} messages")
    latency = [arrived[key] - at for key, at in sent.items()]
    elapsed = max(arrived.values()) - start
    return {
        "elapsed": elapsed,
        "statuses_per_s": count / elapsed,
        "p50": statistics.median(latency),
        "p99": percentile(latency, 99),
        "cpu": {"mosquitto": cpu["mosquitto"], "service": received["cpu"], "this process": own},
    }


# --- the report --------------------------------------------------------------------------


def table(args: argparse.Namespace, fleet: dict[str, Any], plain: dict[str, Any]) -> str:
    n = args.devices

    def ms_per_op(run: dict[str, Any], program: str) -> str:
        seconds = run["cpu"].get(program)
        return "—" if seconds is None else f"{seconds / n * 1000:.2f} ms"

    rows = [
        ("", "fleetgate", "plain mosquitto"),
        (
            f"{n} operations created → all SUCCESSFUL / {2 * n} statuses sent → received",
            f"{fleet['elapsed']:.2f} s",
            f"{plain['elapsed']:.2f} s",
        ),
        (
            "status updates/s (committed / received)",
            f"{fleet['statuses_per_s']:.0f}",
            f"{plain['statuses_per_s']:.0f}",
        ),
        ("operations created/s", f"{fleet['created_per_s']:.0f}", "—"),
        (
            "status latency p50 (PUBACK → stream / publish → received)",
            f"{fleet['p50'] * 1000:.0f} ms",
            f"{plain['p50'] * 1000:.0f} ms",
        ),
        ("status latency p99", f"{fleet['p99'] * 1000:.0f} ms", f"{plain['p99'] * 1000:.0f} ms"),
        (
            "operation created → SUCCESSFUL on the stream, p50",
            f"{fleet['round_trip_p50'] * 1000:.0f} ms",
            "—",
        ),
        (
            "operation created → SUCCESSFUL on the stream, p99",
            f"{fleet['round_trip_p99'] * 1000:.0f} ms",
            "—",
        ),
    ]
    for label, program in (
        ("CPU per operation (2 statuses): mosquitto", "mosquitto"),
        ("  service / the subscriber", "service"),
        ("  PostgreSQL", "postgres"),
        ("  this process (simulator, API client / publishers)", "this process"),
    ):
        rows.append((label, ms_per_op(fleet, program), ms_per_op(plain, program)))
    width = max(len(r[0]) for r in rows)
    lines = [f"{a:<{width}}  {b:>10}  {c:>15}" for a, b, c in rows]
    gateway = sum(v for k, v in fleet["cpu"].items() if k != "this process")
    raw = plain["cpu"]["mosquitto"] + plain["cpu"]["service"]
    notes = [
        f"every operation SUCCESSFUL; {min(SAMPLE, n)} devices checked for the new firmware;"
        f" {fleet['timed']} of {2 * n} statuses timed on the stream",
        f"ratio, time (fleetgate / plain): {fleet['elapsed'] / plain['elapsed']:.1f}; CPU of"
        f" broker + service + PostgreSQL / broker + subscriber: {gateway / raw:.1f}",
    ]
    if fleet["unannounced"] or fleet["repeated"]:
        notes.append(
            f"NOTE: the stream never announced EXECUTING for {fleet['unannounced']} operations"
            f" and repeated {fleet['repeated']} changes (EXECUTING and SUCCESSFUL of one"
            " operation committed in one batch are both announced as SUCCESSFUL)"
        )
    header = (
        f"devices: {n}, operation delay: {args.delay} s, requests in flight: {args.in_flight};"
        f" all connected and declared in {fleet['declared_s']:.1f} s;"
        f" {os.cpu_count()} cores, load average before the run {args.load:.2f}"
    )
    return "\n".join([header, *lines, *notes])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds each operation takes, jittered (0)"
    )
    parser.add_argument(
        "--in-flight", type=int, default=32, help="operation requests in flight at once (32)"
    )
    parser.add_argument(
        "--connect-parallel", type=int, default=16, help="TLS handshakes at once (16)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds each phase may take (600)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record the service's stacks over the operations with py-spy into this file",
    )
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.devices + 1024)), hard)
    )
    root = Path(tempfile.mkdtemp(prefix="fleetgate-operations-"))
    root.chmod(0o755)
    try:
        fleet = await run_fleetgate(args, root)
        plain = await run_baseline(args, root)
    except Failed as failure:
        raise SystemExit(
            f"operations benchmark FAILED: {failure} (its logs are kept in {root})"
        ) from None
    print(table(args, fleet, plain))
    shutil.rmtree(root, ignore_errors=True)  # its PostgreSQL, broker and certificates (~100 MB)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--subscriber"]:
        subscribe(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), *sys.argv[5:6])
    else:
        asyncio.run(main())
