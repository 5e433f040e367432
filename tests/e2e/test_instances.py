"""Two service instances (`fleetgate up --instances 2`) against one PostgreSQL and one
broker (decision 0018): operations created on either reach devices and finish; the live
stream of one instance shows what the other committed; an instance SIGKILLed during a
flood of statuses loses none and moves none back."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleetgate.device import Status
from fleetgate.device.enrolment import StackInfo
from fleetgate.device.simulator import Simulation, SimulationConfig
from fleetgate.stack.processes import port_is_free
from fleetgate.watch.sse import EventStreamParser, ServerSentEvent

from serve_support import running
from stack_support import Up, ports, processes_under
from waiting import eventually

pytestmark = pytest.mark.e2e

FIRMWARE = {"c8y_Firmware": {"name": "fw", "version": "2", "url": "http://fw.example/2.bin"}}
ORDER = {"PENDING": 0, "EXECUTING": 1, "SUCCESSFUL": 2, "FAILED": 2}


class Pair:
    """The running stack: instance A's and B's API clients, as the admin."""

    def __init__(self, up: Up, description: dict[str, Any], workdir: Path) -> None:
        self.up = up
        self.info = StackInfo.model_validate(description)
        admin = description["admin"]
        auth = (f"{admin['tenant']}/{admin['username']}", admin["password"])
        urls = description["api_urls"]
        self.a = httpx.AsyncClient(base_url=urls[0], auth=auth, timeout=60)
        self.b = httpx.AsyncClient(base_url=urls[1], auth=auth, timeout=60)
        self.workdir = workdir

    def simulation(self, prefix: str, devices: int, **options: Any) -> Simulation:
        return Simulation(
            SimulationConfig(
                stack=self.info, devices=devices, state_dir=self.workdir / "sim",
                prefix=prefix, **options,
            )
        )  # fmt: skip

    async def object_id(self, serial: str) -> str:
        ext = await self.a.get(f"/identity/externalIds/c8y_Serial/{serial}")
        assert ext.status_code == 200, ext.text
        return str(ext.json()["managedObject"]["id"])

    async def declared(self, serials: list[str]) -> bool:
        for serial in serials:
            ext = await self.a.get(f"/identity/externalIds/c8y_Serial/{serial}")
            if ext.status_code != 200:
                return False
            mo = await self.a.get(f"/inventory/managedObjects/{ext.json()['managedObject']['id']}")
            if "c8y_SupportedOperations" not in mo.json():
                return False
        return True

    async def create(self, api: httpx.AsyncClient, serial: str) -> str:
        body = {"deviceId": await self.object_id(serial), **FIRMWARE}
        made = await api.post("/devicecontrol/operations", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def statuses(self) -> dict[str, str]:
        found: dict[str, str] = {}
        page = 1
        while True:
            got = await self.a.get(f"/devicecontrol/operations?pageSize=2000&currentPage={page}")
            batch = got.json()["operations"]
            found.update({o["id"]: o["status"] for o in batch})
            if len(batch) < 2000:
                return found
            page += 1

    def instance_pid(self, index: int) -> int:
        return int((self.up.home / "instances" / f"{index}.pid").read_text())


def two_instance_ports() -> dict[str, int]:
    """Free ports for `up`, with the port after the API's free too (instance B's)."""
    while True:
        chosen = ports()
        second = chosen["api-port"] + 1
        if second not in chosen.values() and port_is_free(second):
            return chosen


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pair]:
    from conftest import shared_tmpdir

    workdir = shared_tmpdir("fleetgate-e2e-instances-")
    home = workdir / "home"
    up = Up(home, workdir / "certs", two_instance_ports(), ["--instances", "2"])
    try:
        description = await asyncio.to_thread(up.wait_ready, 240)
        running_pair = Pair(up, description, workdir)
        try:
            yield running_pair
        finally:
            await running_pair.a.aclose()
            await running_pair.b.aclose()
    finally:
        assert await asyncio.to_thread(up.terminate) == 0, up.output
        assert processes_under(workdir) == []
        shutil.rmtree(workdir, ignore_errors=True)


async def test_the_stream_of_one_instance_shows_what_the_other_committed(pair: Pair) -> None:
    async with running(pair.simulation("watch", 1, delay=0.2)):
        await eventually(lambda: pair.declared(["watch-0001"]), "the declaration")
        device = await pair.object_id("watch-0001")
        seen: list[str] = []
        path = f"/devicecontrol/operations/stream?deviceId={device}"
        async with pair.a.stream("GET", path) as stream:
            op = await pair.create(pair.b, "watch-0001")  # committed by instance B
            parser = EventStreamParser()
            async with asyncio.timeout(120):
                async for chunk in stream.aiter_bytes():
                    for event in parser.feed(chunk):
                        body = json.loads(event.data)
                        assert body["id"] == op
                        seen.append(body["status"])
                    if seen and seen[-1] == "SUCCESSFUL":
                        break
        assert seen == ["PENDING", "EXECUTING", "SUCCESSFUL"]


async def test_an_event_id_of_one_instance_resumes_on_the_other(pair: Pair) -> None:
    async with running(pair.simulation("resume", 1, delay=0.2)):
        await eventually(lambda: pair.declared(["resume-0001"]), "the declaration")
        device = await pair.object_id("resume-0001")
        path = f"/devicecontrol/operations/stream?deviceId={device}"
        async with pair.a.stream("GET", path) as stream:
            op = await pair.create(pair.a, "resume-0001")
            [pending] = await _events(stream, 1)
        assert json.loads(pending.data)["status"] == "PENDING"

        async def finished() -> bool:
            got = await pair.b.get(f"/devicecontrol/operations/{op}")
            return bool(got.json()["status"] == "SUCCESSFUL")

        await eventually(finished, "SUCCESSFUL")
        headers = {"Last-Event-ID": pending.last_event_id or ""}
        async with pair.b.stream("GET", path, headers=headers) as stream:
            replayed = await _events(stream, 3)
    assert replayed[0].type == "resumed"
    assert [json.loads(e.data)["status"] for e in replayed[1:]] == ["EXECUTING", "SUCCESSFUL"]


async def test_sigkill_of_an_instance_during_a_status_flood_applies_every_status_once(
    pair: Pair,
) -> None:
    """200 devices report while instance B is SIGKILLed (and `up` starts it again):
    afterwards every operation holds the last status its device got acknowledged, and
    the change log shows each operation's moves once each and only forwards — none
    lost, none applied twice, none moved back.

    What it cannot show is every intermediate status: the broker deals a device's
    messages round-robin, so an EXECUTING that B held unacknowledged when it died comes
    back after the SUCCESSFUL that A applied, and is refused as a move back (decision
    0018, "Ordering")."""
    count = 200
    simulation = pair.simulation("kill", count, delay=2.0, failure_rate=0.2, connect_parallel=16)
    async with running(simulation):
        serials = list(simulation.config.device_ids)
        await eventually(lambda: pair.declared(serials), "the declarations", timeout=240)
        start = await _last_position(pair)
        gate = asyncio.Semaphore(16)

        async def create(i: int, serial: str) -> str:
            async with gate:
                return await pair.create(pair.a if i % 2 else pair.b, serial)

        op_ids = await asyncio.gather(*(create(i, s) for i, s in enumerate(serials)))
        device_of = dict(zip(op_ids, serials, strict=True))

        def some_reported() -> bool:
            return sum(len(v) for v in simulation.acknowledged.values()) >= count // 5

        await eventually(some_reported, "the first reports", timeout=120)
        killed = pair.instance_pid(1)
        os.kill(killed, signal.SIGKILL)
        reported_at_kill = sum(len(v) for v in simulation.acknowledged.values())

        def all_final() -> bool:
            acked = simulation.acknowledged
            return all(
                acked.get(device_of[i], {}).get(i) in (Status.SUCCESSFUL, Status.FAILED)
                for i in op_ids
            )

        await eventually(all_final, "every device to finish", timeout=300)

        async def database_agrees() -> bool:
            statuses = await pair.statuses()
            acked = simulation.acknowledged
            return all(statuses[i] == acked[device_of[i]][i].value for i in op_ids)

        await eventually(database_agrees, "the database to hold every acknowledged status")
    assert reported_at_kill < 3 * count  # the kill happened while reports were flowing
    moves = await _moves_since(pair, start, set(op_ids))
    statuses = await pair.statuses()
    for op in op_ids:
        seen = moves.get(op, [])
        ranks = [ORDER[s] for s in seen]
        assert ranks == sorted(set(ranks)), (op, seen)  # forwards only, each once
        assert (seen[0], seen[-1]) == ("PENDING", statuses[op]), (op, seen)
    assert {statuses[op] for op in op_ids} == {"SUCCESSFUL", "FAILED"}

    async def restarted() -> bool:
        if pair.instance_pid(1) == killed:
            return False
        try:
            return (await pair.b.get("/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(restarted, "up to start instance B again")


async def _last_position(pair: Pair) -> str:
    """The id of the newest change now (a stream's first event after it is newer)."""
    async with pair.a.stream(
        "GET", "/devicecontrol/operations/stream", headers={"Last-Event-ID": "0"}
    ) as stream:
        parser = EventStreamParser()
        last = "0"
        try:
            async with asyncio.timeout(5):
                async for chunk in stream.aiter_bytes():
                    for event in parser.feed(chunk):
                        last = event.last_event_id or last
        except TimeoutError:
            pass
    return last


async def _moves_since(pair: Pair, after: str, ops: set[str]) -> dict[str, list[str]]:
    """Each operation's statuses as the change log (replayed on instance A) holds them."""
    moves: dict[str, list[str]] = {}
    parser = EventStreamParser()
    async with pair.a.stream(
        "GET", "/devicecontrol/operations/stream", headers={"Last-Event-ID": after}
    ) as stream:
        try:
            async with asyncio.timeout(10):
                async for chunk in stream.aiter_bytes():
                    for event in parser.feed(chunk):
                        if event.type == "operation":
                            body = json.loads(event.data)
                            if body["id"] in ops:
                                moves.setdefault(body["id"], []).append(body["status"])
        except TimeoutError:
            pass  # the replay is over; the stream goes on live
    return moves


async def _events(stream: httpx.Response, count: int) -> list[ServerSentEvent]:
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    async with asyncio.timeout(60):
        async for chunk in stream.aiter_bytes():
            events.extend(parser.feed(chunk))
            if len(events) >= count:
                return events[:count]
    raise AssertionError(f"the stream ended after {len(events)} of {count} events")
