"""Message traces and their bounded records in PostgreSQL (docs/decisions/0016), and the
record of regenerated device secrets.

Every statement is safe with several service instances: a trace is one row per device
(an upsert starts or restarts it), entries are inserted only while their trace runs, the
trimming to the newest :data:`fleetgate.domain.traces.MAX_ENTRIES` and the sweep of
expired traces are deletes that any number of instances may run at once with the same
result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from fleetgate.db.users import user_of_row
from fleetgate.domain.devices import DEVICE_ID_TYPE, NO_PASSWORD, device_username
from fleetgate.domain.traces import MAX_ENTRIES, EntryKind, Trace, TraceEntry
from fleetgate.domain.users import User

_MAX_TEXT = 2000


def _storable(text: str) -> str:
    """``text`` as PostgreSQL stores it: lone surrogates and NUL written out, bounded."""
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
    return clean[:_MAX_TEXT]


def _clean(value: Any) -> Any:
    """``value`` with every string as jsonb can hold it (no NUL, no lone surrogate)."""
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return {_storable(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _storable_json(detail: Any) -> str:
    return json.dumps(_clean(detail))


def _trace(row: asyncpg.Record) -> Trace:
    return Trace(
        tenant_id=row["tenant_id"],
        managed_object_id=row["managed_object_id"],
        device_id=row["device_id"],
        started_by=row["started_by"],
        started_at=row["started_at"],
        expires_at=row["expires_at"],
    )


class StoredEntry:
    """A kept entry: what happened, with its id (the order) and time."""

    __slots__ = ("at", "entry", "id")

    def __init__(self, entry_id: int, at: datetime, entry: TraceEntry) -> None:
        self.id = entry_id
        self.at = at
        self.entry = entry


def _entry(row: asyncpg.Record) -> StoredEntry:
    detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
    return StoredEntry(
        row["id"],
        row["at"],
        TraceEntry(row["device_id"], EntryKind(row["kind"]), row["summary"], detail),
    )


class PgTraces:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def device_of(self, tenant_id: str, object_id: int) -> str | None:
        """The device id (c8y_Serial) of the tenant's managed object, or None."""
        async with self._pool.acquire() as conn:
            value: str | None = await conn.fetchval(
                "SELECT value FROM external_id"
                " WHERE tenant_id = $1 AND type = $2 AND managed_object_id = $3",
                tenant_id,
                DEVICE_ID_TYPE,
                object_id,
            )
        return value

    async def start(
        self, tenant_id: str, object_id: int, device_id: str, by: str, duration: timedelta
    ) -> Trace:
        """Start the device's trace, or restart a running one from now (its record stays)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                INSERT INTO device_trace (managed_object_id, tenant_id, device_id, started_by,
                                          started_at, expires_at)
                VALUES ($1, $2, $3, $4, now(), now() + $5::interval)
                ON CONFLICT (managed_object_id) DO UPDATE
                   SET started_by = EXCLUDED.started_by, started_at = EXCLUDED.started_at,
                       expires_at = EXCLUDED.expires_at, device_id = EXCLUDED.device_id
                RETURNING *
                """,
                object_id,
                tenant_id,
                device_id,
                by,
                duration,
            )
        assert row is not None
        return _trace(row)

    async def get(self, tenant_id: str, object_id: int) -> Trace | None:
        """The device's running trace (not one that expired and is not swept yet)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM device_trace"
                " WHERE tenant_id = $1 AND managed_object_id = $2 AND expires_at > now()",
                tenant_id,
                object_id,
            )
        return None if row is None else _trace(row)

    async def stop(self, tenant_id: str, object_id: int) -> Trace | None:
        """End the device's trace and drop its record; None when none ran."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "DELETE FROM device_trace WHERE tenant_id = $1 AND managed_object_id = $2"
                " RETURNING *",
                tenant_id,
                object_id,
            )
        return None if row is None else _trace(row)

    async def running(self) -> dict[str, datetime]:
        """Device id → expiry of every running trace (of every tenant)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT device_id, expires_at FROM device_trace WHERE expires_at > now()"
            )
        return {row["device_id"]: row["expires_at"] for row in rows}

    async def expire(self) -> list[str]:
        """End every trace whose time is up; the device ids that this call ended (another
        instance sweeping at once ends the others: a row is deleted once)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "DELETE FROM device_trace WHERE expires_at <= now() RETURNING device_id"
            )
        return [row["device_id"] for row in rows]

    async def record(self, entries: Sequence[TraceEntry]) -> None:
        """Keep ``entries`` of devices whose trace runs (the others are dropped), then only
        the newest MAX_ENTRIES of each of those devices."""
        if not entries:
            return
        device_ids = [_storable(e.device_id) for e in entries]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO trace_entry (device_id, kind, summary, detail)
                SELECT v.device_id, v.kind, v.summary, v.detail::jsonb
                  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
                       AS v(device_id, kind, summary, detail, n)
                  JOIN device_trace t ON t.device_id = v.device_id AND t.expires_at > now()
                 ORDER BY v.n
                """,
                device_ids,
                [e.kind.value for e in entries],
                [_storable(e.summary) for e in entries],
                [_storable_json(dict(e.detail)) for e in entries],
            )
            await conn.execute(
                """
                DELETE FROM trace_entry WHERE id IN (
                    SELECT id FROM (
                        SELECT id, row_number() OVER (PARTITION BY device_id
                                                      ORDER BY id DESC) AS n
                          FROM trace_entry WHERE device_id = ANY($1::text[])) AS ranked
                     WHERE n > $2)
                """,
                sorted(set(device_ids)),
                MAX_ENTRIES,
            )

    async def entries(
        self, device_id: str, *, after: int = 0, limit: int = MAX_ENTRIES
    ) -> list[StoredEntry]:
        """The device's kept entries with an id above ``after``, newest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, device_id, at, kind, summary, detail::text AS detail"
                " FROM trace_entry WHERE device_id = $1 AND id > $2"
                " ORDER BY id DESC LIMIT $3",
                device_id,
                after,
                limit,
            )
        return [_entry(row) for row in rows]

    # --- regenerated secrets -------------------------------------------------------------

    async def device_user(self, tenant_id: str, device_id: str) -> User | None:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM app_user WHERE tenant_id = $1 AND username = $2",
                tenant_id,
                device_username(device_id),
            )
        return None if row is None else user_of_row(row)

    async def regenerate_secret(
        self, tenant_id: str, object_id: int, device_id: str, password_hash: str, by: str
    ) -> tuple[User, datetime, bool] | None:
        """Give the password device ``device_id`` the new hash and record who did it, in
        one transaction: (its user, when, whether the device itself is disabled); None when
        it has no password login (no device user, or a certificate device's)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE app_user SET password_hash = $3, last_password_change = now()"
                " WHERE tenant_id = $1 AND username = $2 AND password_hash <> $4"
                " RETURNING *",
                tenant_id,
                device_username(device_id),
                password_hash,
                NO_PASSWORD,
            )
            if row is None:
                return None
            at: datetime = await conn.fetchval(
                "INSERT INTO secret_regeneration (tenant_id, managed_object_id, device_id,"
                " regenerated_by) VALUES ($1, $2, $3, $4) RETURNING regenerated_at",
                tenant_id,
                object_id,
                device_id,
                by,
            )
            disabled = await conn.fetchval(
                "SELECT disabled FROM managed_object WHERE id = $1", object_id
            )
        return user_of_row(row), at, bool(disabled)

    async def regenerations(self, tenant_id: str, object_id: int) -> list[tuple[str, datetime]]:
        """(who, when) of every regeneration of the device's secret, newest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT regenerated_by, regenerated_at FROM secret_regeneration"
                " WHERE tenant_id = $1 AND managed_object_id = $2 ORDER BY id DESC",
                tenant_id,
                object_id,
            )
        return [(row["regenerated_by"], row["regenerated_at"]) for row in rows]
