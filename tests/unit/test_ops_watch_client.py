"""``ops watch`` over real HTTP, against a small fake of the operations API (Starlette,
served by uvicorn on a free port): paging, the live stream, reconnecting, errors."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Generator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fleetgate.domain.errors import AuthenticationFailed
from fleetgate.watch import watch_command
from fleetgate.watch.client import (
    ApiUnavailable,
    Backoff,
    Changed,
    Connection,
    Endpoint,
    Loaded,
    OperationFilter,
    follow,
    load_operations,
    open_client,
)
from fleetgate.watch.sse import encode_event
from fleetgate.watch.table import OperationTable

from conftest import free_port
from waiting import eventually

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
USER, PASSWORD = "t1/admin", "secret"


def iso(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")[:-6] + "Z"


def operation(op_id: int, device: str = "1234", status: str = "PENDING") -> dict[str, Any]:
    return {
        "id": str(op_id),
        "deviceId": device,
        "deviceName": f"sim-{device}",
        "status": status,
        "creationTime": iso(op_id),
        "statusTime": iso(op_id),
        "c8y_Firmware": {"name": "fw", "version": "2.0"},
    }


class FakeOperationsApi:
    """Just enough of ``/devicecontrol/operations``: a list paged ``page_size`` at a time
    (whatever ``pageSize`` asks) and the SSE stream of changes."""

    def __init__(self, ops: list[dict[str, Any]], *, page_size: int = 2) -> None:
        self.ops = {op["id"]: op for op in ops}
        self.page_size = page_size
        self.origin = ""  # set once serving
        self.next_origin: str | None = None  # a server that misnames itself
        self.list_queries: list[dict[str, str]] = []
        self.requests: list[str] = []  # "list" and "stream", in the order they came
        self.stream_requests: list[Request] = []
        self.streams: list[tuple[dict[str, str], asyncio.Queue[bytes | None]]] = []
        self.sequence = 0
        #: Every change sent, as (sequence, deviceId, event); replayed to a resuming
        #: stream when ``resumable`` (as the service's history), else it is told `reset`.
        self.sent: list[tuple[int, str, bytes]] = []
        self.resumable = False
        self.clock = 100.0
        self.app = Starlette(
            routes=[
                Route("/devicecontrol/operations/stream", self.stream),
                Route("/devicecontrol/operations", self.list),
            ]
        )

    @staticmethod
    def refused(request: Request) -> Response | None:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") == f"Basic {token}":
            return None
        body = {"error": "security/Unauthorized", "message": "Invalid credentials!"}
        return JSONResponse(body, status_code=401)

    async def list(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        query = dict(request.query_params)
        self.list_queries.append(query)
        self.requests.append("list")
        found = sorted(self.ops.values(), key=lambda o: int(o["id"]), reverse="revert" in query)
        if "deviceId" in query:
            found = [o for o in found if o["deviceId"] == query["deviceId"]]
        if "status" in query:
            found = [o for o in found if o["status"] in query["status"].split(",")]
        page = int(query.get("currentPage", "1"))
        chunk = found[(page - 1) * self.page_size : page * self.page_size]
        body: dict[str, Any] = {"operations": chunk, "statistics": {"currentPage": page}}
        if len(chunk) == self.page_size:
            following = urlencode({**query, "currentPage": str(page + 1)})
            body["next"] = f"{self.next_origin or self.origin}/devicecontrol/operations?{following}"
        return JSONResponse(body)

    async def stream(self, request: Request) -> Response:
        if (refusal := self.refused(request)) is not None:
            return refusal
        self.stream_requests.append(request)
        self.requests.append("stream")
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        subscriber = (dict(request.query_params), queue)
        self.streams.append(subscriber)

        last_event_id = request.headers.get("last-event-id")

        async def events() -> AsyncIterator[bytes]:
            try:
                yield b": stream of operation changes\n\n"
                if last_event_id is not None and self.resumable:
                    yield encode_event("{}", event_type="resumed")
                    for sequence, device, event in self.sent:
                        if sequence > int(last_event_id) and subscribed(subscriber[0], device):
                            yield event
                elif last_event_id is not None:
                    yield encode_event("{}", event_type="reset")
                while (item := await queue.get()) is not None:
                    yield item
            finally:
                self.streams.remove(subscriber)

        return StreamingResponse(events(), media_type="text/event-stream")

    def change(self, op_id: int, status: str, *, at: float | None = None, **fields: Any) -> None:
        """Move an operation on (at the fake's clock, or ``at``) and tell the streams."""
        self.clock += 1
        op = {**self.ops[str(op_id)], "status": status, **fields}
        op["statusTime"] = iso(self.clock if at is None else at)
        if at is None:
            self.ops[op["id"]] = op
        self.send(op)

    def send(self, op: dict[str, Any], *, crlf: bool = False) -> None:
        self.sequence += 1
        data = encode_event(json.dumps(op), event_type="operation", event_id=str(self.sequence))
        if crlf:
            data = data.replace(b"\n", b"\r\n")
        self.sent.append((self.sequence, op["deviceId"], data))
        for query, queue in self.streams:
            if subscribed(query, op["deviceId"]):
                queue.put_nowait(data)

    def drop_streams(self) -> None:
        for _, queue in self.streams:
            queue.put_nowait(None)


def subscribed(query: dict[str, str], device: str) -> bool:
    return query.get("deviceId", device) == device


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the test runner keeps its signals


@contextlib.asynccontextmanager
async def serving(api: FakeOperationsApi) -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        api.app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the fake API did not start"
        await asyncio.sleep(0.01)
    api.origin = f"http://127.0.0.1:{port}"
    try:
        yield api.origin
    finally:
        api.drop_streams()
        server.should_exit = True
        await task


def watch_args(url: str, *argv: str, password: str = PASSWORD) -> argparse.Namespace:
    from fleetgate.watch import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    login = ["--url", url, "--user", USER, "--password", password]
    return parser.parse_args(["ops", "watch", *login, *argv])


@pytest.fixture
async def api() -> AsyncIterator[FakeOperationsApi]:
    fake = FakeOperationsApi([operation(i) for i in range(1, 6)])
    async with serving(fake):
        yield fake


# --- the list -------------------------------------------------------------------------------


async def test_once_prints_every_operation_reading_page_after_page(
    api: FakeOperationsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.ops["4"] = {**api.ops["4"], "status": "FAILED", "failureReason": "disk full"}
    await watch_command(watch_args(api.origin, "--once"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "PENDING 4  FAILED 1  total 5"
    assert [line.split()[0] for line in lines[2:]] == ["5", "4", "3", "2", "1"]
    assert "FAILED      disk full" in lines[3]
    assert [q.get("currentPage") for q in api.list_queries] == [None, "2", "3"]
    assert api.list_queries[0] == {"pageSize": "500", "revert": "true"}


async def test_filters_go_to_the_list(
    api: FakeOperationsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.ops["6"] = operation(6, device="999", status="EXECUTING")
    args = watch_args(api.origin, "--once", "--device", "999", "--status", "executing,failed")
    await watch_command(args)
    assert api.list_queries[0]["deviceId"] == "999"
    assert api.list_queries[0]["status"] == "EXECUTING,FAILED"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "EXECUTING 1  total 1"
    assert lines[2].split()[:4] == ["6", "sim-999", "c8y_Firmware", "EXECUTING"]


async def test_loading_stops_at_the_limit(api: FakeOperationsApi) -> None:
    async with open_client(Endpoint(api.origin, USER, PASSWORD)) as client:
        loaded = await load_operations(client, OperationFilter(), limit=3)
    assert [r.id for r in loaded.rows] == ["5", "4", "3"]
    assert loaded.truncated


async def test_a_next_link_to_another_host_is_followed_on_ours(api: FakeOperationsApi) -> None:
    api.next_origin = "http://elsewhere.invalid"  # our credentials must not go there
    async with open_client(Endpoint(api.origin, USER, PASSWORD)) as client:
        loaded = await load_operations(client, OperationFilter())
    assert [r.id for r in loaded.rows] == ["5", "4", "3", "2", "1"]
    assert not loaded.truncated


async def test_refused_credentials_are_fleetgates_error_with_the_servers_message(
    api: FakeOperationsApi,
) -> None:
    with pytest.raises(AuthenticationFailed, match=r"401 Invalid credentials!.*--password"):
        await watch_command(watch_args(api.origin, "--once", password="wrong"))
    async with open_client(Endpoint(api.origin, USER, "wrong")) as client:
        events = follow(client, OperationFilter())
        assert await anext(events) == Connection("connecting")
        with pytest.raises(AuthenticationFailed):  # not worth retrying
            await anext(events)


async def test_an_unreachable_api_is_reported_and_retried() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiUnavailable, match="cannot read"):
        await watch_command(watch_args(url, "--once"))
    async with open_client(Endpoint(url, USER, PASSWORD)) as client:
        events = follow(client, OperationFilter(), backoff=Backoff(0.1, 0.2))
        states = [await anext(events) for _ in range(6)]
        await events.aclose()
    said = [s.state for s in states if isinstance(s, Connection)]
    assert len(said) == len(states)
    assert said[::2] == ["connecting"] * 3
    assert [s[:22] for s in said[1::2]] == [
        "reconnecting in 0.1 s:",
        "reconnecting in 0.2 s:",
        "reconnecting in 0.2 s:",
    ]


# --- live -----------------------------------------------------------------------------------


async def following(
    api: FakeOperationsApi, table: OperationTable, states: list[str], backoff: Backoff
) -> None:
    """What ``ops watch`` does with :func:`follow`: the table, and the connection states."""
    async with open_client(Endpoint(api.origin, USER, PASSWORD)) as client:
        events = follow(client, OperationFilter(), backoff=backoff)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, Loaded):
                    for row in event.rows:
                        table.apply(row)
                elif isinstance(event, Changed):
                    table.apply(event.row)
                else:
                    states.append(event.state)


async def test_following_merges_the_list_and_the_stream_and_reconnects(
    api: FakeOperationsApi,
) -> None:
    table = OperationTable()
    states: list[str] = []
    task = asyncio.create_task(following(api, table, states, Backoff(0.05, 0.2)))
    try:
        await eventually(lambda: "live" in states, "live")
        # the stream was opened before the list was read (three pages)
        assert api.requests == ["stream", "list", "list", "list"]
        api.change(1, "EXECUTING")
        api.change(1, "SUCCESSFUL")
        api.change(2, "EXECUTING")
        api.change(2, "FAILED", failureReason="checksum mismatch")
        api.change(1, "EXECUTING", at=101)  # a late, older event
        api.send({**api.ops["3"], "status": "EXECUTING", "statusTime": iso(120)}, crlf=True)
        await eventually(lambda: status(table, "3") == "EXECUTING", "the last event")
        assert status(table, "1") == "SUCCESSFUL"
        assert status(table, "2") == "FAILED"
        assert table.get("2").failure_reason == "checksum mismatch"  # type: ignore[union-attr]

        api.drop_streams()
        await eventually(lambda: any(s.startswith("reconnecting") for s in states), "dropped")
        api.ops["4"] = {**api.ops["4"], "status": "SUCCESSFUL", "statusTime": iso(130)}
        await eventually(lambda: status(table, "4") == "SUCCESSFUL", "reloaded after")
        assert states[-1] == "live"
        assert api.requests[4:] == ["stream", "list", "list", "list"]
        assert api.stream_requests[1].headers["last-event-id"] == "6"
        assert table.counts() == {"PENDING": 1, "EXECUTING": 1, "SUCCESSFUL": 2, "FAILED": 1}
        assert [s.split(":")[0] for s in states] == [
            "connecting",
            "live",
            "reconnecting in 0.1 s",
            "connecting",
            "live",
        ]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_resumed_stream_replays_what_was_missed_without_reloading(
    api: FakeOperationsApi,
) -> None:
    api.resumable = True
    table = OperationTable()
    states: list[str] = []
    task = asyncio.create_task(following(api, table, states, Backoff(0.3, 0.6)))
    try:
        await eventually(lambda: "live" in states, "live")
        api.change(1, "EXECUTING")
        await eventually(lambda: status(table, "1") == "EXECUTING", "the first change")
        api.drop_streams()
        await eventually(lambda: any(s.startswith("reconnecting") for s in states), "dropped")
        api.change(1, "SUCCESSFUL")  # while disconnected: only the replay can bring it
        await eventually(lambda: status(table, "1") == "SUCCESSFUL", "the missed change")
        assert api.stream_requests[1].headers["last-event-id"] == "1"
        assert api.requests == ["stream", "list", "list", "list", "stream"]  # no reload
        assert states[-1] == "live"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def status(table: OperationTable, op_id: str) -> str | None:
    row = table.get(op_id)
    return None if row is None else row.status


async def test_the_command_prints_a_line_per_change_when_piped(
    api: FakeOperationsApi, capsys: pytest.CaptureFixture[str]
) -> None:
    output: list[str] = []
    errors: list[str] = []

    def lines() -> list[str]:
        said = capsys.readouterr()
        output.extend(said.out.splitlines())
        errors.extend(said.err.splitlines())
        return output

    task = asyncio.create_task(watch_command(watch_args(api.origin, "--status", "EXECUTING")))
    try:
        await eventually(lambda: bool(api.streams) and api.list_queries != [], "subscribed")
        # an operation entering the wanted status shows up, one leaving it is seen to go
        assert "status" not in api.streams[0][0]
        api.change(1, "EXECUTING")
        api.change(2, "EXECUTING")
        api.change(1, "SUCCESSFUL")
        api.change(3, "FAILED", failureReason="no")
        api.change(5, "EXECUTING")
        await eventually(lambda: len(lines()) == 3, "three lines")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [line.split("\t")[1:5:3] for line in output] == [
        ["1", "EXECUTING"],
        ["2", "EXECUTING"],
        ["5", "EXECUTING"],
    ]
    assert output[0].split("\t")[2:4] == ["sim-1234", "c8y_Firmware"]
    lines()
    assert errors == ["fleetgate ops watch: connecting", "fleetgate ops watch: live"]
