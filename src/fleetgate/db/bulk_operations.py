"""Bulk operations in PostgreSQL: the rows operators create, read, reschedule, pause,
resume and cancel. The scheduler's steps are in :mod:`fleetgate.db.rollout_steps`.

A bulk operation's targets are fixed when it is created (one ``INSERT … SELECT``): the
devices the caller found (its group's, at any depth and narrowed by a query, through
``GroupStore.device_ids``; or :meth:`PgBulkOperations.failed_devices`, the devices whose
latest operation of the failed parent is FAILED). Every change takes the bulk operation's row
lock, so an operator's change and a scheduler's step never interleave.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence

import asyncpg

from fleetgate.domain.bulk import GROUP_FRAGMENT, SUBGROUP_FRAGMENT
from fleetgate.domain.bulk_operations import (
    BulkFilter,
    BulkOperation,
    BulkStatus,
    NewBulkOperation,
    Target,
    TargetState,
)
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.rollout_fragment import parse_rollout, rollout_json
from fleetgate.domain.rollouts import Rollout, Tally

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: Devices whose latest operation of bulk operation $2 FAILED.
_FAILED_DEVICES = """
SELECT t.device_id AS id FROM bulk_operation_target t
  JOIN bulk_operation b ON b.id = t.bulk_operation_id
  JOIN operation o ON o.id = t.operation_id
 WHERE b.tenant_id = $1 AND t.bulk_operation_id = $2 AND o.status = 'FAILED'
 ORDER BY t.device_id
"""


def bulk_from_row(row: asyncpg.Record) -> BulkOperation:
    rollout = row["rollout"]
    return BulkOperation(
        id=row["id"],
        tenant_id=row["tenant_id"],
        group_id=row["group_id"],
        failed_parent_id=row["failed_parent_id"],
        start_date=row["start_date"],
        creation_ramp=row["creation_ramp"],
        prototype=json.loads(row["prototype"]),
        note=row["note"],
        rollout=parse_rollout(json.loads(rollout)) if rollout is not None else None,
        status=BulkStatus(row["status"]),
        paused_reason=row["paused_reason"],
        cancel_reason=row["cancel_reason"],
        targets=row["targets"],
        created=row["created"],
        skipped=row["skipped"],
        retried=row["retried"],
        tally=Tally(
            row["pending"], row["executing"], row["successful"], row["failed"], row["timed_out"]
        ),
        creation_time=row["creation_time"],
        last_updated=row["last_updated"],
        canary_passed=row["canary_passed"],
        target_query=row["target_query"],
    )


def _rollout_json(rollout: Rollout | None) -> str | None:
    return json.dumps(rollout_json(rollout)) if rollout is not None else None


class PgBulkOperations:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        tenant_id: str,
        new: NewBulkOperation,
        devices: Sequence[int],
        canary: Collection[int] = (),
    ) -> BulkOperation:
        """The bulk operation and its targets (``devices`` of the tenant, in id order;
        ``canary``: those of the canary group), in one transaction. ``NotFound`` for a
        group or parent that is not the tenant's, 422 for an object that is no group."""
        async with self._pool.acquire() as conn, conn.transaction():
            if new.group_id is not None:
                await _check_group(conn, tenant_id, new.group_id, "groupId")
            else:
                assert new.failed_parent_id is not None
                if await _parent(conn, tenant_id, new.failed_parent_id) is None:
                    raise _parent_not_found(new.failed_parent_id)
            rollout_canary = new.rollout.canary if new.rollout is not None else None
            if rollout_canary is not None and rollout_canary.group_id is not None:
                await _check_group(conn, tenant_id, rollout_canary.group_id, "canary group")
            row = await _insert_bulk(conn, tenant_id, new)
            await _insert_targets(conn, tenant_id, row["id"], devices, canary, new.rollout)
            counted = await conn.fetchrow(
                "UPDATE bulk_operation SET targets = (SELECT count(*) FROM"
                " bulk_operation_target WHERE bulk_operation_id = $1) WHERE id = $1 RETURNING *",
                row["id"],
            )
        assert counted is not None
        return bulk_from_row(counted)

    async def failed_devices(self, tenant_id: str, bulk_id: int) -> list[int] | None:
        """The devices whose latest operation of the bulk operation FAILED, ascending;
        None when the tenant has no such bulk operation."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await _parent(conn, tenant_id, bulk_id) is None:
                return None
            return [r["id"] for r in await conn.fetch(_FAILED_DEVICES, tenant_id, bulk_id)]

    async def get(self, tenant_id: str, bulk_id: int) -> BulkOperation | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM bulk_operation WHERE tenant_id = $1 AND id = $2", tenant_id, bulk_id
        )
        return bulk_from_row(row) if row else None

    async def find(
        self, tenant_id: str, flt: BulkFilter, offset: int, limit: int
    ) -> list[BulkOperation]:
        rows = await self._pool.fetch(
            "SELECT * FROM bulk_operation WHERE tenant_id = $1"
            " AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))"
            " ORDER BY id OFFSET $3 LIMIT $4",
            tenant_id,
            [str(s) for s in flt.statuses],
            offset,
            limit,
        )
        return [bulk_from_row(r) for r in rows]

    async def count(self, tenant_id: str, flt: BulkFilter) -> int:
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM bulk_operation WHERE tenant_id = $1"
                " AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))",
                tenant_id,
                [str(s) for s in flt.statuses],
            )
        )

    async def reschedule(
        self, tenant_id: str, bulk_id: int, merged: NewBulkOperation
    ) -> tuple[BulkOperation, BulkOperation | None] | None:
        """A PUT, as Cumulocity does it: a bulk operation that created nothing yet is
        changed in place; a started one is cancelled and a new one, with the changes, is
        made for its devices that have no operation yet. (the bulk operation, the one it
        replaced or None); None when there is no such bulk operation."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await _lock(conn, tenant_id, bulk_id)
            if row is None:
                return None
            current = bulk_from_row(row)
            if current.status in (BulkStatus.DELETED, BulkStatus.COMPLETED):
                raise ValidationFailed(
                    f"Bulk operation {bulk_id} is {current.status}: there is nothing left to"
                    " reschedule (create a new one, or one with failedParentId)",
                    code="devicecontrol/Invalid Data",
                )
            if current.created == 0 and current.skipped == 0:
                updated = await conn.fetchrow(
                    "UPDATE bulk_operation SET start_date = $2, creation_ramp = $3,"
                    " prototype = $4::jsonb, note = $5, rollout = $6::jsonb,"
                    " next_step_at = now(), next_creation_at = $2, last_updated = now()"
                    " WHERE id = $1 RETURNING *",
                    bulk_id,
                    merged.start_date,
                    merged.creation_ramp,
                    json.dumps(merged.prototype),
                    merged.note,
                    _rollout_json(merged.rollout),
                )
                assert updated is not None
                return bulk_from_row(updated), None
            replacement = await _insert_bulk(conn, tenant_id, merged)
            await conn.execute(
                """
                WITH moved AS (
                    UPDATE bulk_operation_target SET state = 'CANCELED'
                     WHERE bulk_operation_id = $1 AND state = 'WAITING'
                    RETURNING device_id, position, canary)
                INSERT INTO bulk_operation_target (bulk_operation_id, device_id, position, canary)
                SELECT $2, device_id, position, canary FROM moved
                """,
                bulk_id,
                replacement["id"],
            )
            new_row = await conn.fetchrow(
                "UPDATE bulk_operation SET targets = (SELECT count(*) FROM"
                " bulk_operation_target WHERE bulk_operation_id = $1) WHERE id = $1 RETURNING *",
                replacement["id"],
            )
            old_row = await conn.fetchrow(
                "UPDATE bulk_operation SET status = 'DELETED', paused_reason = NULL,"
                " cancel_reason = $2, next_step_at = now(), last_updated = now()"
                " WHERE id = $1 RETURNING *",
                bulk_id,
                f"Rescheduled as bulk operation {replacement['id']}",
            )
        assert new_row is not None
        assert old_row is not None
        return bulk_from_row(new_row), bulk_from_row(old_row)

    async def cancel(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None:
        """No more operations are created (the created ones go on: Cumulocity's cancel)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await _lock(conn, tenant_id, bulk_id)
            if row is None:
                return None
            if row["status"] in ("DELETED", "COMPLETED"):
                return bulk_from_row(row)
            return bulk_from_row(await cancel_locked(conn, bulk_id, reason))

    async def pause(self, tenant_id: str, bulk_id: int, reason: str) -> BulkOperation | None:
        return await self._set_paused(tenant_id, bulk_id, reason)

    async def resume(self, tenant_id: str, bulk_id: int) -> BulkOperation | None:
        """Creation goes on; the abort criteria count from the current tally, and a canary
        that stopped it counts as passed (the operator decided)."""
        return await self._set_paused(tenant_id, bulk_id, None)

    async def _set_paused(
        self, tenant_id: str, bulk_id: int, reason: str | None
    ) -> BulkOperation | None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await _lock(conn, tenant_id, bulk_id)
            if row is None:
                return None
            if row["status"] in ("DELETED", "COMPLETED"):
                raise ValidationFailed(
                    f"Bulk operation {bulk_id} is {row['status']}: it cannot be paused or resumed",
                    code="devicecontrol/Invalid Data",
                )
            if reason is not None:
                updated = await conn.fetchrow(
                    "UPDATE bulk_operation SET paused_reason = $2, last_updated = now()"
                    " WHERE id = $1 RETURNING *",
                    bulk_id,
                    reason,
                )
            else:
                updated = await conn.fetchrow(
                    """
                    UPDATE bulk_operation
                       SET paused_reason = NULL, last_updated = now(), next_step_at = now(),
                           canary_passed = canary_passed OR paused_reason LIKE 'Canary%',
                           baseline = jsonb_build_object(
                               'pending', pending, 'executing', executing,
                               'successful', successful, 'failed', failed,
                               'timed_out', timed_out)
                     WHERE id = $1 RETURNING *
                    """,
                    bulk_id,
                )
        assert updated is not None
        return bulk_from_row(updated)

    async def targets(
        self, tenant_id: str, bulk_id: int, state: TargetState | None, offset: int, limit: int
    ) -> list[Target]:
        rows = await self._pool.fetch(
            """
            SELECT t.*, o.status FROM bulk_operation_target t
              JOIN bulk_operation b ON b.id = t.bulk_operation_id
              LEFT JOIN operation o ON o.id = t.operation_id
             WHERE b.tenant_id = $1 AND t.bulk_operation_id = $2
               AND ($3::text IS NULL OR t.state = $3)
             ORDER BY t.canary DESC, t.position OFFSET $4 LIMIT $5
            """,
            tenant_id,
            bulk_id,
            str(state) if state is not None else None,
            offset,
            limit,
        )
        return [
            Target(
                r["device_id"], r["position"], r["canary"], TargetState(r["state"]),
                r["attempts"], r["operation_id"], r["reason"], r["status"],
            )
            for r in rows
        ]  # fmt: skip

    async def count_targets(self, tenant_id: str, bulk_id: int, state: TargetState | None) -> int:
        count: int = await self._pool.fetchval(
            """
            SELECT count(*) FROM bulk_operation_target t
              JOIN bulk_operation b ON b.id = t.bulk_operation_id
             WHERE b.tenant_id = $1 AND t.bulk_operation_id = $2
               AND ($3::text IS NULL OR t.state = $3)
            """,
            tenant_id,
            bulk_id,
            str(state) if state is not None else None,
        )
        return count


async def _lock(conn: Conn, tenant_id: str, bulk_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM bulk_operation WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        tenant_id,
        bulk_id,
    )
    return row


async def cancel_locked(conn: Conn, bulk_id: int, reason: str) -> asyncpg.Record:
    """Cancel the bulk operation whose row lock ``conn`` holds."""
    await conn.execute(
        "UPDATE bulk_operation_target SET state = 'CANCELED'"
        " WHERE bulk_operation_id = $1 AND state = 'WAITING'",
        bulk_id,
    )
    row = await conn.fetchrow(
        "UPDATE bulk_operation SET status = 'DELETED', paused_reason = NULL,"
        " cancel_reason = $2, next_step_at = now(), last_updated = now()"
        " WHERE id = $1 RETURNING *",
        bulk_id,
        reason,
    )
    assert row is not None
    return row


async def _parent(conn: Conn, tenant_id: str, bulk_id: int) -> int | None:
    found: int | None = await conn.fetchval(
        "SELECT 1 FROM bulk_operation WHERE tenant_id = $1 AND id = $2", tenant_id, bulk_id
    )
    return found


def _parent_not_found(bulk_id: int) -> NotFound:
    return NotFound(f"Bulk operation {bulk_id} not found", code="devicecontrol/Not Found")


async def _check_group(conn: Conn, tenant_id: str, group_id: int, what: str) -> None:
    row = await conn.fetchrow(
        "SELECT fragments ? $3 OR fragments ? $4 AS is_group FROM managed_object"
        " WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        group_id,
        GROUP_FRAGMENT,
        SUBGROUP_FRAGMENT,
    )
    if row is None:
        raise NotFound(f"Group {group_id} not found", code="devicecontrol/Not Found")
    if not row["is_group"]:
        raise ValidationFailed(
            f"{what} {group_id} is not a device group ({GROUP_FRAGMENT} or {SUBGROUP_FRAGMENT})",
            code="devicecontrol/Invalid Data",
        )


async def _insert_bulk(conn: Conn, tenant_id: str, new: NewBulkOperation) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        INSERT INTO bulk_operation (tenant_id, group_id, failed_parent_id, start_date,
                                    creation_ramp, prototype, note, rollout,
                                    next_creation_at, next_step_at, target_query)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::jsonb, $4, now(), $9)
        RETURNING *
        """,
        tenant_id,
        new.group_id,
        new.failed_parent_id,
        new.start_date,
        new.creation_ramp,
        json.dumps(new.prototype),
        new.note,
        _rollout_json(new.rollout),
        new.target_query,
    )
    assert row is not None
    return row


async def _insert_targets(
    conn: Conn,
    tenant_id: str,
    bulk_id: int,
    devices: Sequence[int],
    canary_group: Collection[int],
    rollout: Rollout | None,
) -> None:
    """The targets in device-id order (the tenant's devices that still exist: one may
    have been deleted since the group was walked); the canary's marked (the first
    ``size`` of them, or those in the canary group)."""
    canary = rollout.canary if rollout is not None else None
    size = canary.size if canary is not None and canary.size is not None else 0
    await conn.execute(
        """
        INSERT INTO bulk_operation_target (bulk_operation_id, device_id, position, canary)
        SELECT $2, id, n, (n <= $4) OR id = ANY($5::bigint[])
          FROM (SELECT m.id, row_number() OVER (ORDER BY m.id)::int AS n
                  FROM managed_object m
                 WHERE m.tenant_id = $1 AND m.id = ANY($3::bigint[])) d
        """,
        tenant_id,
        bulk_id,
        sorted(set(devices)),
        size,
        list(canary_group),
    )
