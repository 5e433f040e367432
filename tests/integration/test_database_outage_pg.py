"""A PostgreSQL that is frozen (SIGSTOP) or dead (SIGKILL): the service's pool gives up
within its bounds with ServiceUnavailable, the API answers 503 with Retry-After, and
both recover by themselves when the server is back. A private cluster, since these
tests stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from fleetgate.api import media
from fleetgate.api.services import services_of
from fleetgate.db.migrations import migrate
from fleetgate.db.pool import (
    BoundedPool,
    Timeouts,
    create_pool,
    ensure_database,
    ping,
    unbounded_connection,
)
from fleetgate.domain.errors import ConfigurationError, ServiceUnavailable
from fleetgate.services.health import Health
from fleetgate.stack.postgres import ClusterLocation, PostgresCluster

from conftest import api_client, free_port, seed_tenants, shared_tmpdir

pytestmark = pytest.mark.integration

WAIT = 30.0  # a generous bound for waiting, never an assertion about time
SHORT = Timeouts(connect=1.0, acquire=1.0, command=1.0)
ADMIN = ("t1/admin", "admin-pw")


@pytest.fixture(scope="module")
def location() -> Iterator[ClusterLocation]:
    root = shared_tmpdir("fleetgate-test-outage-")
    try:
        yield ClusterLocation(root / "data", free_port(), secrets.token_urlsafe(16))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def children(pid: int) -> list[int]:
    """Pids of ``pid``'s children (PostgreSQL's backends each lead their own process
    group, so signalling the server's group would miss them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


class Server:
    """The private cluster, with what a test does to it."""

    def __init__(self, location: ClusterLocation) -> None:
        self.cluster = PostgresCluster(location)
        self.url = location.url()
        self.frozen: list[int] = []

    @property
    def pid(self) -> int:
        assert self.cluster.pid is not None
        return self.cluster.pid

    def freeze(self) -> None:
        """SIGSTOP the server, then every backend: a machine that hangs, as far as the
        service can tell."""
        os.kill(self.pid, signal.SIGSTOP)  # first, so that it starts no new backend
        self.frozen = [self.pid, *children(self.pid)]
        for pid in self.frozen[1:]:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    async def kill(self) -> None:
        """SIGKILL the server, then wait until its backends have followed it."""
        backends = children(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        await asyncio.wait_for(self.cluster.wait(), WAIT)
        async with asyncio.timeout(WAIT):
            while True:
                if not any(Path(f"/proc/{pid}").exists() for pid in backends):
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
async def server(location: ClusterLocation) -> AsyncIterator[Server]:
    server = Server(location)
    await server.cluster.start()
    try:
        async with unbounded_connection(server.url) as conn:
            await migrate(conn)
        yield server
    finally:
        server.thaw()
        await server.cluster.stop()


@pytest.fixture
async def pool(server: Server) -> AsyncIterator[BoundedPool]:
    pool = await create_pool(server.url, timeouts=SHORT)
    try:
        await seed_tenants(pool, "t1")
        yield pool
    finally:
        server.thaw()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(pool.close(), WAIT)


async def test_a_frozen_database_is_unavailable_within_the_bound_then_back(
    server: Server, pool: BoundedPool
) -> None:
    assert await pool.fetchval("SELECT 1") == 1
    server.freeze()
    # A pooled connection to the frozen server: the command times out.
    with pytest.raises(ServiceUnavailable, match=r"did not answer within 1 s") as raised:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), WAIT)
    assert raised.value.retry_after > 0
    # Its connection was dropped; a new one cannot be made: the acquire times out.
    with pytest.raises(ServiceUnavailable, match=r"did not answer within 1 s"):
        await asyncio.wait_for(pool.fetchval("SELECT 1"), WAIT)
    server.thaw()
    assert await asyncio.wait_for(pool.fetchval("SELECT 1"), WAIT) == 1


async def test_a_dead_database_is_unavailable_then_the_pool_reconnects(
    server: Server, pool: BoundedPool
) -> None:
    assert await pool.fetchval("SELECT 1") == 1
    await server.kill()
    for _ in range(2):  # the broken pooled connection, then a refused new one
        with pytest.raises(ServiceUnavailable, match="cannot be reached"):
            await asyncio.wait_for(pool.fetchval("SELECT 1"), WAIT)
    await server.cluster.start()
    assert await asyncio.wait_for(pool.fetchval("SELECT 1"), WAIT) == 1


async def test_a_connection_lost_under_a_statement_is_unavailable(
    server: Server, pool: BoundedPool
) -> None:
    statement = asyncio.create_task(pool.fetchval("SELECT pg_sleep(60)"))
    async with unbounded_connection(server.url) as admin:
        async with asyncio.timeout(WAIT):
            while True:
                backend = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'"
                )
                if backend is not None:
                    break
                await asyncio.sleep(0.02)
        # As when PostgreSQL ends a backend (a restart, an administrator, a crash).
        await admin.execute("SELECT pg_terminate_backend($1)", backend)
    with pytest.raises(ServiceUnavailable, match="cannot be reached"):
        await asyncio.wait_for(statement, WAIT)
    assert await pool.fetchval("SELECT 1") == 1


async def test_a_database_that_cannot_be_made_says_so() -> None:
    # What the stack's PostgreSQL runner gets when a restarted server goes away again.
    nowhere = f"postgresql://fleetgate:x@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(ConfigurationError, match="cannot connect to PostgreSQL"):
        await asyncio.wait_for(ensure_database(nowhere, "fleetgate"), WAIT)


async def test_errors_that_are_not_about_availability_pass_unchanged(
    pool: BoundedPool,
) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError):
        await pool.execute("SELEC 1")
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO tenant (id) VALUES ('t1')")
    assert await pool.fetchval("SELECT 1") == 1


@pytest.mark.parametrize("outage", ["frozen", "dead"])
async def test_the_api_answers_503_with_retry_after_while_the_database_is_away(
    server: Server, pool: BoundedPool, outage: str
) -> None:
    async with api_client(pool) as (app, api):
        services_of(app).health = Health(
            lambda: ping(pool, 1.0), {"brokerBridge": lambda: True}, database_timeout=1.0
        )
        assert (await api.get("/user/currentUser", auth=ADMIN)).status_code == 200
        ready = await api.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "UP",
            "components": {"database": {"status": "UP"}, "brokerBridge": {"status": "UP"}},
        }
        if outage == "frozen":
            server.freeze()
        else:
            await server.kill()
        answer = await asyncio.wait_for(api.get("/user/currentUser", auth=ADMIN), WAIT)
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith(media.ERROR)
        assert int(answer.headers["retry-after"]) > 0
        body = answer.json()
        assert body["error"] == "general/serviceUnavailable"
        assert body["message"].startswith("The database ")
        assert body["message"].endswith("; try again later.")
        live = await asyncio.wait_for(api.get("/health/live"), WAIT)
        assert (live.status_code, live.json()) == (200, {"status": "UP"})
        ready = await asyncio.wait_for(api.get("/health/ready"), WAIT)
        assert ready.status_code == 503
        assert ready.headers["cache-control"] == "no-store"
        assert ready.json() == {
            "status": "DOWN",
            "components": {
                "database": {
                    "status": "DOWN",
                    "details": {"error": "does not answer (waited at most 1 s)"},
                },
                "brokerBridge": {"status": "UP"},
            },
        }
        if outage == "frozen":
            server.thaw()
        else:
            await server.cluster.start()
        again = await asyncio.wait_for(api.get("/user/currentUser", auth=ADMIN), WAIT)
        assert again.status_code == 200, again.text
        assert (await api.get("/health/ready")).status_code == 200
