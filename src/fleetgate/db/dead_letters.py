"""Dead letters (device messages that could not be applied) in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from fleetgate.domain.dead_letters import DeadLetter, DeadLetterFilter, StoredDeadLetter
from fleetgate.domain.devices import DEVICE_ID_TYPE

#: Bytes of a payload kept (larger payloads keep their beginning and their size).
KEPT_PAYLOAD = 64 * 1024
#: Dead letters kept per device id: its newest.
PER_DEVICE = 100
_MAX_TEXT = 2000


def _storable(text: str) -> str:
    """``text`` as PostgreSQL stores it: lone surrogates and NUL written out, bounded."""
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
    return clean[:_MAX_TEXT]


def _letter(row: asyncpg.Record) -> StoredDeadLetter:
    return StoredDeadLetter(
        id=row["id"],
        tenant_id=row["tenant_id"],
        managed_object_id=row["managed_object_id"],
        device_id=row["device_id"],
        topic=row["topic"],
        payload=bytes(row["payload"]),
        payload_size=row["payload_size"],
        error=row["error"],
        reason=row["reason"],
        received_at=row["received_at"],
    )


def _where(tenant_id: str, unowned: bool, flt: DeadLetterFilter) -> tuple[str, list[Any]]:
    """The tenant's (and with ``unowned``, those of device ids no tenant held)."""
    args: list[Any] = [tenant_id]
    clauses = ["(tenant_id = $1 OR tenant_id IS NULL)" if unowned else "tenant_id = $1"]
    for column, value in (
        ("managed_object_id = {}", flt.managed_object_id),
        ("device_id = {}", flt.device_id),
        ("received_at >= {}", flt.date_from),
        ("received_at <= {}", flt.date_to),
    ):
        if value is not None:
            args.append(value)
            clauses.append(column.format(f"${len(args)}"))
    return " AND ".join(clauses), args


class PgDeadLetters:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(self, letters: Sequence[DeadLetter]) -> None:
        """Keep ``letters`` (with the tenant and device holding each device id now — for a
        gateway's message about a child, the gateway's tenant, and the child only when it
        is of that tenant), and only the newest :data:`PER_DEVICE` of each device id in
        each tenant: nobody pushes another tenant's letters out."""
        if not letters:
            return
        device_ids = [_storable(letter.device_id) for letter in letters]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO dead_letter (tenant_id, managed_object_id, device_id, topic,
                                         payload, payload_size, error, reason)
                SELECT CASE WHEN v.gateway IS NULL THEN e.tenant_id ELSE g.tenant_id END,
                       e.managed_object_id, v.device_id, v.topic, v.payload,
                       v.size, v.error, v.reason
                  FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::text[],
                              $6::text[], $8::text[]) WITH ORDINALITY
                       AS v(device_id, topic, payload, size, error, reason, gateway, n)
                  LEFT JOIN external_id g ON g.type = $7 AND g.value = v.gateway
                  LEFT JOIN external_id e
                    ON e.type = $7 AND e.value = v.device_id
                   AND (v.gateway IS NULL OR e.tenant_id = g.tenant_id)
                 ORDER BY v.n
                """,
                device_ids,
                [_storable(letter.topic) for letter in letters],
                [letter.payload[:KEPT_PAYLOAD] for letter in letters],
                [len(letter.payload) for letter in letters],
                [_storable(letter.error) for letter in letters],
                [_storable(letter.reason) for letter in letters],
                DEVICE_ID_TYPE,
                [letter.gateway for letter in letters],
            )
            await conn.execute(
                """
                DELETE FROM dead_letter WHERE id IN (
                    SELECT id FROM (
                        SELECT id, row_number() OVER (PARTITION BY tenant_id, device_id
                                                      ORDER BY id DESC) AS n
                          FROM dead_letter WHERE device_id = ANY($1::text[])) AS ranked
                     WHERE n > $2)
                """,
                sorted(set(device_ids)),
                PER_DEVICE,
            )

    async def find(
        self, tenant_id: str, unowned: bool, flt: DeadLetterFilter, offset: int, limit: int
    ) -> list[StoredDeadLetter]:
        """Newest first."""
        where, args = _where(tenant_id, unowned, flt)
        rows = await self._pool.fetch(
            f"SELECT * FROM dead_letter WHERE {where} ORDER BY id DESC"  # noqa: S608
            f" OFFSET ${len(args) + 1} LIMIT ${len(args) + 2}",
            *args,
            offset,
            limit,
        )
        return [_letter(r) for r in rows]

    async def count(self, tenant_id: str, unowned: bool, flt: DeadLetterFilter) -> int:
        where, args = _where(tenant_id, unowned, flt)
        return int(
            await self._pool.fetchval(f"SELECT count(*) FROM dead_letter WHERE {where}", *args)  # noqa: S608
        )

    async def get(self, tenant_id: str, unowned: bool, letter_id: int) -> StoredDeadLetter | None:
        where, args = _where(tenant_id, unowned, DeadLetterFilter())
        row = await self._pool.fetchrow(
            f"SELECT * FROM dead_letter WHERE {where} AND id = ${len(args) + 1}",  # noqa: S608
            *args,
            letter_id,
        )
        return _letter(row) if row else None

    async def delete(self, tenant_id: str, unowned: bool, flt: DeadLetterFilter) -> int:
        """Delete those that pass ``flt``; how many."""
        where, args = _where(tenant_id, unowned, flt)
        status = await self._pool.execute(f"DELETE FROM dead_letter WHERE {where}", *args)  # noqa: S608
        return int(status.split()[-1])

    async def delete_one(self, tenant_id: str, unowned: bool, letter_id: int) -> bool:
        where, args = _where(tenant_id, unowned, DeadLetterFilter())
        status = await self._pool.execute(
            f"DELETE FROM dead_letter WHERE {where} AND id = ${len(args) + 1}",  # noqa: S608
            *args,
            letter_id,
        )
        return not status.endswith(" 0")
