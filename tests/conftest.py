"""Shared fixtures: a real PostgreSQL for every test that needs one.

``FLEETGATE_TEST_DATABASE_URL`` names a server to use (the user must be allowed to
create databases); otherwise a private cluster is started once per test session on a
free port, from Debian's server binaries, and removed afterwards. Each test gets its
own fresh database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from fleetgate.db.migrations import migrate
from fleetgate.db.pool import create_pool, drop_database, ensure_database
from fleetgate.stack.processes import PORT_RANGE_ENV, pick_free_ports


def _worker_port_range() -> None:
    """Under pytest-xdist, each worker (and every process it starts) chooses free ports in
    a range of its own: two workers never pick the same port between choosing and binding."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or not worker[2:].isdigit() or PORT_RANGE_ENV in os.environ:
        return
    first, last = 20000, 32767  # below the kernel's usual ephemeral range
    size = (last - first + 1) // workers
    start = first + int(worker[2:]) * size
    os.environ[PORT_RANGE_ENV] = f"{start}-{start + size - 1}"


_worker_port_range()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (outside the kernel's ephemeral range)."""
    return pick_free_ports(count)


def shared_tmpdir(prefix: str) -> Path:
    """A temporary directory that the postgres and mosquitto users can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
async def postgres_admin_url() -> AsyncIterator[str]:
    """URL of a PostgreSQL server database from which test databases are created."""
    external = os.environ.get("FLEETGATE_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from fleetgate.stack.postgres import ClusterLocation, PostgresCluster

    root = shared_tmpdir("fleetgate-test-pg-")
    cluster = PostgresCluster(
        ClusterLocation(root / "data", free_port(), secrets.token_urlsafe(16))
    )
    await cluster.start()
    try:
        yield cluster.location.url("postgres")
    finally:
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def empty_database_url(postgres_admin_url: str) -> AsyncIterator[str]:
    """A fresh, empty database, dropped after the test."""
    name = f"fleetgate_test_{secrets.token_hex(6)}"
    await ensure_database(postgres_admin_url, name)
    try:
        yield _with_database(postgres_admin_url, name)
    finally:
        await drop_database(postgres_admin_url, name)


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A fresh database with every migration applied."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return empty_database_url


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on a fresh, migrated database, made as the service makes it."""
    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await close_pool(pool)


#: How long a test's pool may wait for its connections to come back at teardown.
POOL_CLOSE_BOUND = 60.0


async def close_pool(pool: asyncpg.Pool) -> None:
    """Close ``pool`` gracefully; if a connection is still held after
    :data:`POOL_CLOSE_BOUND` seconds (seen once in a loaded parallel run: a teardown that
    waited 300 s for one), terminate the pool and say so, with the tasks still alive, so
    that a leaked connection is visible without hanging the suite."""
    try:
        await asyncio.wait_for(asyncio.shield(pool.close()), POOL_CLOSE_BOUND)
    except TimeoutError:
        alive = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        warnings.warn(
            f"a test pool still held connections after {POOL_CLOSE_BOUND} s; terminated."
            f" Tasks alive: {[t.get_coro() for t in alive]!r:.2000}",
            stacklevel=1,
        )
        pool.terminate()


async def seed_tenants(
    pool: asyncpg.Pool,
    *tenants: str,
    admin_password: str = "admin-pw",
    bootstrap_password: str = "boot-pw",
) -> None:
    """The first-start state for each tenant: its admin and bootstrap users (and the
    management tenant), with these passwords."""
    from fleetgate.db.users import PgUsers
    from fleetgate.services.seed import InitialState, ensure_initial_state

    for tenant in tenants:
        await ensure_initial_state(
            PgUsers(pool),
            InitialState.build(
                management_tenant="management",
                tenant=tenant,
                admin_username="admin",
                admin_password=admin_password,
                management_admin_password="mgmt-pw",
                bootstrap_username="devicebootstrap",
                bootstrap_password=bootstrap_password,
            ),
        )


TEST_BASE_URL = "http://fleetgate.test"


@contextlib.asynccontextmanager
async def api_client(pool: asyncpg.Pool) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The REST app on ``pool`` (real authentication; no services on ``app.state`` yet)
    and an HTTP client calling it in process."""
    from fleetgate.api.app import create_app
    from fleetgate.api.auth import ApiContext
    from fleetgate.db.users import PgUsers
    from fleetgate.services.auth import Authenticator

    app = create_app(ApiContext(Authenticator(PgUsers(pool)), TEST_BASE_URL))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=TEST_BASE_URL) as client:
        yield app, client


@pytest.fixture
def scratch_dir() -> Iterator[Path]:
    path = shared_tmpdir("fleetgate-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
