"""The live operation stream over real HTTP (uvicorn on a free port, real PostgreSQL):
a watcher that leaves is the normal end of a stream, not an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from fleetgate.api import server
from fleetgate.api.app import create_app
from fleetgate.api.auth import ApiContext
from fleetgate.api.services import services_of
from fleetgate.db.binaries import PgBinaries
from fleetgate.db.operations import PgOperations
from fleetgate.db.users import PgUsers
from fleetgate.domain.operations import Operation, Status
from fleetgate.files.store import FileStore
from fleetgate.services.auth import Authenticator
from fleetgate.services.binaries import Binaries
from fleetgate.services.operation_feed import OperationFeed
from fleetgate.services.operations import FileSigning, Operations

from conftest import free_port, seed_tenants
from fakes import RecordingPublisher

pytestmark = pytest.mark.integration

ADMIN = ("t1/admin", "admin-pw")
WAIT = 30.0  # a generous bound for waiting, never an assertion about time


class Served:
    """The REST app served by uvicorn; each finished request's outcome is queued."""

    def __init__(self, url: str, feed: OperationFeed) -> None:
        self.url = url
        self.feed = feed
        self.finished: asyncio.Queue[BaseException | None] = asyncio.Queue()


@contextlib.asynccontextmanager
async def served_api(pool: asyncpg.Pool, files: Path) -> AsyncIterator[Served]:
    base = f"http://127.0.0.1:{free_port()}"
    app = create_app(ApiContext(Authenticator(PgUsers(pool)), base))
    feed = OperationFeed()
    services_of(app).operations = Operations(
        PgOperations(pool, base),
        Binaries(PgBinaries(pool), FileStore(files)),
        RecordingPublisher(),
        FileSigning(b"s" * 32, base, 600),
        feed,
    )
    served = Served(base, feed)

    async def observed(scope: Scope, receive: Receive, send: Send) -> None:
        # Only watches how the real app's call ends; it changes nothing.
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            served.finished.put_nowait(exc)
            raise
        served.finished.put_nowait(None)

    sock = server.bind("127.0.0.1", int(base.rsplit(":", 1)[1]))
    started = asyncio.Event()
    task = asyncio.create_task(server.serve(observed, sock, started))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(started.wait(), WAIT)
        yield served
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def change(op_id: int) -> Operation:
    now = datetime.now(UTC)
    return Operation(
        id=op_id, tenant_id="t1", device_id=7, serial="d-7", device_name="d-7",
        fragment_type="c8y_Restart", status=Status.PENDING, failure_reason=None,
        description=None, fragments={"c8y_Restart": {}}, bulk_operation_id=None,
        creation_time=now, status_time=now,
    )  # fmt: skip


@pytest.mark.parametrize("events_first", [0, 1], ids=["at-once", "after-a-change"])
async def test_a_watcher_that_leaves_ends_its_stream_quietly(
    pool: asyncpg.Pool, scratch_dir: Path, caplog: pytest.LogCaptureFixture, events_first: int
) -> None:
    await seed_tenants(pool, "t1")
    caplog.set_level(logging.DEBUG)
    async with served_api(pool, scratch_dir / "files") as api, httpx.AsyncClient() as client:
        async with client.stream(
            "GET", f"{api.url}/devicecontrol/operations/stream", auth=ADMIN
        ) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith(":")  # the opening comment: it is live
            for op_id in range(1, events_first + 1):
                api.feed.deliver([(op_id, change(op_id))], op_id)
                while not (line := await anext(lines)).startswith("data:"):
                    pass
                assert f'"id":"{op_id}"' in line
        # The client has closed the connection; the server ends that request.
        outcome = await asyncio.wait_for(api.finished.get(), WAIT)
    assert outcome is None, f"the stream ended with {outcome!r}"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
