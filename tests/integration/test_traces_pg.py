"""Traces and secret regenerations in the real PostgreSQL (migration 0022): entries only
while a trace runs, the newest MAX_ENTRIES kept, an expired trace ended once by several
sweepers at once, the 3-day limit held by the table too, and a regeneration that changes
the hash and records who in one go (a certificate device has none)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from fleetgate.db.traces import PgTraces
from fleetgate.domain.devices import NO_PASSWORD
from fleetgate.domain.traces import MAX_ENTRIES, EntryKind, TraceEntry

from conftest import seed_tenants

pytestmark = pytest.mark.integration


@pytest.fixture
async def traces(pool: asyncpg.Pool) -> PgTraces:
    await seed_tenants(pool, "t1", bootstrap_password="b")
    return PgTraces(pool)


async def device(pool: asyncpg.Pool, device_id: str, password_hash: str = NO_PASSWORD) -> int:
    async with pool.acquire() as conn:
        object_id = await conn.fetchval(
            "INSERT INTO managed_object (tenant_id, name, fragments)"
            " VALUES ('t1', $1, '{\"c8y_IsDevice\": {}}') RETURNING id",
            device_id,
        )
        await conn.execute(
            "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
            " VALUES ('t1', 'c8y_Serial', $1, $2)",
            device_id,
            object_id,
        )
        await conn.execute(
            "INSERT INTO app_user (tenant_id, username, password_hash, roles)"
            " VALUES ('t1', $1, $2, '{ROLE_DEVICE}')",
            f"device_{device_id}",
            password_hash,
        )
    return int(object_id)


def entry(device_id: str, n: int) -> TraceEntry:
    return TraceEntry(device_id, EntryKind.DISCONNECT, f"#{n}", {"n": n, "odd": "\0\ud800"})


async def test_entries_are_kept_while_the_trace_runs_newest_first_and_bounded(
    pool: asyncpg.Pool, traces: PgTraces
) -> None:
    object_id = await device(pool, "pg-1")
    assert await traces.device_of("t1", object_id) == "pg-1"
    await traces.record([entry("pg-1", 0)])  # no trace yet: dropped
    assert await traces.entries("pg-1") == []
    await traces.start("t1", object_id, "pg-1", "admin", timedelta(minutes=5))
    await traces.record([entry("pg-1", n) for n in range(MAX_ENTRIES + 30)])
    kept = await traces.entries("pg-1")
    assert len(kept) == MAX_ENTRIES
    assert [k.entry.detail["n"] for k in kept[:2]] == [MAX_ENTRIES + 29, MAX_ENTRIES + 28]
    assert kept[0].entry.detail["odd"] == "\\x00\\ud800"
    newer = await traces.entries("pg-1", after=kept[1].id)
    assert [k.id for k in newer] == [kept[0].id]
    # Restarting keeps the record; stopping drops it.
    await traces.start("t1", object_id, "pg-1", "other", timedelta(seconds=30))
    assert len(await traces.entries("pg-1")) == MAX_ENTRIES
    assert (await traces.stop("t1", object_id)) is not None
    assert await traces.entries("pg-1") == []
    assert await traces.stop("t1", object_id) is None


async def test_an_expired_trace_is_ended_once_by_concurrent_sweeps(
    pool: asyncpg.Pool, traces: PgTraces
) -> None:
    ids = [await device(pool, f"sweep-{n}") for n in range(20)]
    for n, object_id in enumerate(ids):
        await traces.start("t1", object_id, f"sweep-{n}", "admin", timedelta(minutes=5))
        await traces.record([entry(f"sweep-{n}", 1)])
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE device_trace SET started_at = started_at - interval '1 hour',"
            " expires_at = now() - interval '1 second' WHERE device_id LIKE 'sweep-%'"
        )
    assert await traces.running() == {}
    assert await traces.get("t1", ids[0]) is None
    ended = await asyncio.gather(*(traces.expire() for _ in range(4)))
    assert sorted(d for batch in ended for d in batch) == sorted(f"sweep-{n}" for n in range(20))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM trace_entry") == 0


async def test_the_table_refuses_a_trace_longer_than_three_days(
    pool: asyncpg.Pool, traces: PgTraces
) -> None:
    object_id = await device(pool, "long-1")
    with pytest.raises(asyncpg.CheckViolationError):
        await traces.start("t1", object_id, "long-1", "admin", timedelta(days=3, seconds=1))
    started = await traces.start("t1", object_id, "long-1", "admin", timedelta(days=3))
    assert started.expires_at - started.started_at == timedelta(days=3)


async def test_a_regeneration_changes_the_hash_and_records_who(
    pool: asyncpg.Pool, traces: PgTraces
) -> None:
    password_device = await device(pool, "pw-9", "scrypt:old")
    certificate_device = await device(pool, "cert-9")
    done = await traces.regenerate_secret("t1", password_device, "pw-9", "scrypt:new", "admin")
    assert done is not None
    assert done[0].password_hash == "scrypt:new"
    assert done[2] is False  # the device itself is not disabled
    assert await traces.regenerations("t1", password_device) == [("admin", done[1])]
    none = await traces.regenerate_secret("t1", certificate_device, "cert-9", "scrypt:x", "admin")
    assert none is None
    assert await traces.regenerations("t1", certificate_device) == []
    user = await traces.device_user("t1", "cert-9")
    assert user is not None
    assert user.password_hash == NO_PASSWORD
