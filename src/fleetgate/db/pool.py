"""Connecting to PostgreSQL, with asyncpg's errors translated at this boundary."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from fleetgate.domain.errors import ConfigurationError

log = logging.getLogger(__name__)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A connection pool; a database that cannot be reached is a :class:`ConfigurationError`."""
    try:
        pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConfigurationError(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


async def wait_until_accepting(url: str, *, timeout: float = 30.0) -> None:
    """Poll until PostgreSQL at ``url`` accepts a connection, or raise after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            conn = await asyncpg.connect(url, timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            last = exc
            await asyncio.sleep(0.1)
            continue
        await conn.close()
        return
    raise ConfigurationError(f"PostgreSQL did not accept connections within {timeout}s: {last}")


async def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` through ``admin_url`` unless it exists."""
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}")
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await conn.close()
