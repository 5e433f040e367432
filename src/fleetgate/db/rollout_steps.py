"""The scheduler's step over one bulk operation, in one short transaction.

1. Claim a due bulk operation: ``FOR UPDATE SKIP LOCKED`` — two schedulers (two service
   instances) never step the same one at once, and never wait on each other.
2. Fold its operations' status changes (``bulk_operation_change``, appended by a
   trigger) into its counts, so that reading a bulk operation never counts operations.
3. Decide with :func:`fleetgate.domain.rollouts.next_step` (pure).
4. For a creation: claim the targets (``FOR UPDATE SKIP LOCKED``), check the prototype
   for each device (the caller's ``check``: a single POST's checks), insert the batch's
   operations with **one** ``INSERT … SELECT FROM unnest`` and update the targets and the
   counts. The unique index on (bulk operation, device, attempt) makes a second
   operation for a device and attempt impossible, whatever crashed when.

The operations are published by the caller after the commit; should the process die
between, they are PENDING and never dispatched, and the next start's
``dispatch_undispatched`` sends them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.db.bulk_operations import Conn, bulk_from_row, cancel_locked
from fleetgate.db.operation_rows import DEVICE_COLUMNS, operation_of_row
from fleetgate.domain import rollouts
from fleetgate.domain.bulk_operations import (
    RETRY_FRAGMENT,
    BulkOperation,
    BulkStatus,
    Prepared,
    Refusal,
    StepReport,
)
from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.operations import DeviceTarget, Operation
from fleetgate.domain.rollouts import Create, Snapshot, Tally

#: Checks the prototype for a batch of devices (tenant, prototype, devices).
Check = Callable[[str, dict[str, Any], Sequence[DeviceTarget]], Awaitable[list[Prepared | Refusal]]]


def _baseline(raw: str) -> Tally:
    b = json.loads(raw)
    return Tally(
        b.get("pending", 0), b.get("executing", 0), b.get("successful", 0),
        b.get("failed", 0), b.get("timed_out", 0),
    )  # fmt: skip


class PgRolloutSteps:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def step(self, check: Check) -> StepReport | None:
        """One step of one due bulk operation; None when none is due."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT *, now() AS now FROM bulk_operation"
                " WHERE NOT settled AND next_step_at <= now()"
                " ORDER BY next_step_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            if row is None:
                return None
            before = bulk_from_row(row)
            deltas = await conn.fetch(
                """
                WITH d AS (DELETE FROM bulk_operation_change WHERE bulk_operation_id = $1
                           RETURNING old_status, new_status)
                SELECT s, sum(n)::int AS n
                  FROM (SELECT old_status AS s, -1 AS n FROM d
                        UNION ALL SELECT new_status, 1 FROM d) x
                 WHERE s IS NOT NULL GROUP BY s
                """,
                before.id,
            )
            tally = rollouts.fold(before.tally, {r["s"]: r["n"] for r in deltas})
            bulk = replace(before, tally=tally)
            snapshot = await self._snapshot(conn, bulk, row)
            decision = rollouts.next_step(snapshot)
            created: list[Operation] = []
            refused: list[Refusal] = []
            status = bulk.status
            paused = bulk.paused_reason
            next_step_at: datetime = snapshot.now + rollouts.IDLE
            next_creation_at = row["next_creation_at"]
            counts = {"created": 0, "skipped": 0, "retried": 0, "failed": 0, "timed_out": 0}
            if isinstance(decision, rollouts.Wait):
                next_step_at = max(decision.until, snapshot.now)
                next_step_at = min(next_step_at, snapshot.now + rollouts.IDLE)
                if snapshot.now < bulk.start_date:
                    next_step_at = min(bulk.start_date, snapshot.now + rollouts.IDLE * 20)
            elif isinstance(decision, rollouts.Pause):
                paused = decision.reason
            elif isinstance(decision, rollouts.Cancel):
                await cancel_locked(conn, bulk.id, decision.reason)
                status = BulkStatus.DELETED
            elif isinstance(decision, rollouts.Complete):
                status = BulkStatus.COMPLETED
            else:
                created, refused = await self._create(conn, bulk, decision, check, counts)
                made = len(created) + len(refused)
                next_creation_at = rollouts.next_creation_after(snapshot, made, decision.interval)
                next_step_at = max(next_creation_at, snapshot.now)
                if status is BulkStatus.ACTIVE:
                    status = BulkStatus.IN_PROGRESS
            settled = status in (BulkStatus.COMPLETED, BulkStatus.DELETED) and tally.open == 0
            saved = await conn.fetchrow(
                """
                UPDATE bulk_operation
                   SET pending = $2::int, executing = $3::int, successful = $4::int,
                       failed = $5::int - $14::int, timed_out = $6::int - $15::int,
                       status = CASE WHEN status = 'DELETED' THEN status ELSE $7::text END,
                       paused_reason = CASE WHEN $7::text IN ('DELETED', 'COMPLETED') THEN NULL
                                            ELSE $8::text END,
                       next_step_at = $9, next_creation_at = $10, settled = $11,
                       created = created + $12::int, skipped = skipped + $13::int,
                       retried = retried + $14::int,
                       last_updated = CASE WHEN $16::bool THEN now() ELSE last_updated END
                 WHERE id = $1 RETURNING *
                """,
                bulk.id,
                tally.pending,
                tally.executing,
                tally.successful,
                tally.failed,
                tally.timed_out,
                str(status),
                paused,
                next_step_at,
                next_creation_at,
                settled,
                counts["created"],
                counts["skipped"],
                counts["retried"],
                counts["timed_out"],
                bool(deltas or created or refused)
                or (status, paused) != (before.status, before.paused_reason),
            )
            assert saved is not None
            after = bulk_from_row(saved)
        changed = _visible(before) != _visible(after)
        return StepReport(after, created, refused, changed)

    async def _snapshot(self, conn: Conn, bulk: BulkOperation, row: asyncpg.Record) -> Snapshot:
        rollout = bulk.rollout
        canary_targets = waiting_canary = retryable = 0
        canary = Tally()
        if rollout is not None and rollout.canary is not None and not bulk.canary_passed:
            c = await conn.fetchrow(
                """
                SELECT count(*)::int AS targets,
                       count(*) FILTER (WHERE t.state = 'WAITING')::int AS waiting,
                       count(*) FILTER (WHERE o.status = 'SUCCESSFUL')::int AS successful,
                       count(*) FILTER (WHERE o.status = 'FAILED' OR t.state = 'SKIPPED')::int
                           AS failed
                  FROM bulk_operation_target t LEFT JOIN operation o ON o.id = t.operation_id
                 WHERE t.bulk_operation_id = $1 AND t.canary
                """,
                bulk.id,
            )
            assert c is not None
            canary_targets, waiting_canary = c["targets"], c["waiting"]
            canary = Tally(successful=c["successful"], failed=c["failed"])
        if rollout is not None and rollout.retries is not None and rollout.retries.max > 0:
            retryable = int(
                await conn.fetchval(
                    f"SELECT count(*) FROM ({_RETRYABLE}) r",  # noqa: S608 — constant
                    bulk.id,
                    rollout.retries.max,
                    str(rollout.retries.failure_type),
                )
            )
        return Snapshot(
            now=row["now"],
            start_date=bulk.start_date,
            creation_ramp=bulk.creation_ramp,
            rollout=rollout,
            paused=bulk.paused_reason is not None,
            closed=bulk.status in (BulkStatus.COMPLETED, BulkStatus.DELETED),
            tally=bulk.tally,
            waiting_canary=waiting_canary,
            waiting_rest=bulk.waiting - waiting_canary,
            canary_targets=canary_targets,
            canary=canary,
            canary_passed=bulk.canary_passed,
            retryable=retryable,
            next_creation_at=row["next_creation_at"] if bulk.created or bulk.skipped else None,
            baseline=_baseline(row["baseline"]),
        )

    async def _create(
        self,
        conn: Conn,
        bulk: BulkOperation,
        decision: Create,
        check: Check,
        counts: dict[str, int],
    ) -> tuple[list[Operation], list[Refusal]]:
        retry_rows = []
        if decision.retries:
            assert bulk.rollout is not None
            assert bulk.rollout.retries is not None
            retry_rows = await conn.fetch(
                f"{_RETRYABLE} ORDER BY t.position LIMIT $4 FOR UPDATE OF t SKIP LOCKED",
                bulk.id,
                bulk.rollout.retries.max,
                str(bulk.rollout.retries.failure_type),
                decision.retries,
            )
        new_rows = []
        if decision.new:
            new_rows = await conn.fetch(
                "SELECT t.device_id, t.attempts, NULL::bigint AS operation_id, NULL AS old_status"
                " FROM bulk_operation_target t"
                " WHERE t.bulk_operation_id = $1 AND t.state = 'WAITING' AND (t.canary OR NOT $2)"
                " ORDER BY t.canary DESC, t.position LIMIT $3 FOR UPDATE SKIP LOCKED",
                bulk.id,
                decision.canary_only,
                decision.new,
            )
        claimed = {r["device_id"]: r for r in [*retry_rows, *new_rows]}
        if not claimed:
            return [], []
        devices = await _devices(conn, bulk.tenant_id, list(claimed))
        verdicts = await check(bulk.tenant_id, bulk.prototype, devices)
        prepared = [v for v in verdicts if isinstance(v, Prepared)]
        refused = [v for v in verdicts if isinstance(v, Refusal)]
        for p in prepared:
            old = claimed[p.device_id]["operation_id"]
            if old is not None:
                p.fragments[RETRY_FRAGMENT] = {
                    "operationId": str(old), "attempt": claimed[p.device_id]["attempts"] + 1,
                }  # fmt: skip
        rows = await conn.fetch(
            f"""
            WITH v AS (
                SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[],
                                     $6::text[], $7::int[])
                    AS v(device_id, serial, fragment_type, description, fragments, attempt)),
            o AS (
                INSERT INTO operation (tenant_id, device_id, serial, fragment_type,
                                       description, fragments, bulk_operation_id, bulk_attempt)
                SELECT $1, device_id, serial, fragment_type, description, fragments::jsonb,
                       $8, attempt FROM v
                ON CONFLICT DO NOTHING RETURNING *)
            SELECT o.*, {DEVICE_COLUMNS} FROM o JOIN managed_object m ON m.id = o.device_id
            """,  # noqa: S608 — fixed fragments
            bulk.tenant_id,
            [p.device_id for p in prepared],
            [p.serial for p in prepared],
            [p.fragment_type for p in prepared],
            [p.description for p in prepared],
            [json.dumps(p.fragments) for p in prepared],
            [claimed[p.device_id]["attempts"] + 1 for p in prepared],
            bulk.id,
        )
        created = [operation_of_row(r) for r in rows]
        made = {op.device_id for op in created}
        refused += [
            Refusal(p.device_id, "An open operation of the device conflicts with this one")
            for p in prepared
            if p.device_id not in made
        ]
        await conn.execute(
            """
            UPDATE bulk_operation_target t
               SET state = 'CREATED', operation_id = v.op, attempts = t.attempts + 1
              FROM unnest($2::bigint[], $3::bigint[]) AS v(device_id, op)
             WHERE t.bulk_operation_id = $1 AND t.device_id = v.device_id
            """,
            bulk.id,
            [op.device_id for op in created],
            [op.id for op in created],
        )
        # A refused first attempt is SKIPPED; a refused retry keeps its failed operation
        # and retries no more.
        await conn.execute(
            """
            UPDATE bulk_operation_target t
               SET state = CASE WHEN t.state = 'WAITING' THEN 'SKIPPED' ELSE t.state END,
                   attempts = CASE WHEN t.state = 'WAITING' THEN t.attempts ELSE 1000 END,
                   reason = v.reason
              FROM unnest($2::bigint[], $3::text[]) AS v(device_id, reason)
             WHERE t.bulk_operation_id = $1 AND t.device_id = v.device_id
            """,
            bulk.id,
            [r.device_id for r in refused],
            [r.reason for r in refused],
        )
        for op in created:
            row = claimed[op.device_id]
            if row["operation_id"] is None:
                counts["created"] += 1
            else:
                counts["retried"] += 1
                counts["timed_out"] += row["old_status"] == "TIMED_OUT"
        counts["skipped"] = sum(1 for r in refused if claimed[r.device_id]["operation_id"] is None)
        return created, refused


#: Targets of bulk operation $1 whose latest operation failed (of kind $3) with attempts
#: left ($2 retries: attempts ≤ $2).
_RETRYABLE = """
SELECT t.device_id, t.attempts, t.operation_id,
       bulk_operation_status(o.status, o.failure_reason) AS old_status
  FROM bulk_operation_target t JOIN operation o ON o.id = t.operation_id
 WHERE t.bulk_operation_id = $1 AND t.state = 'CREATED' AND o.status = 'FAILED'
   AND t.attempts <= $2
   AND ($3 = 'ALL' OR bulk_operation_status(o.status, o.failure_reason) = $3)
"""


async def _devices(conn: Conn, tenant_id: str, ids: list[int]) -> list[DeviceTarget]:
    rows = await conn.fetch(
        """
        SELECT m.id, m.type, m.fragments, e.value AS serial FROM managed_object m
          LEFT JOIN external_id e ON e.managed_object_id = m.id AND e.type = $3
         WHERE m.tenant_id = $1 AND m.id = ANY($2::bigint[]) ORDER BY m.id
        """,
        tenant_id,
        ids,
        DEVICE_ID_TYPE,
    )
    return [DeviceTarget(r["id"], r["serial"], r["type"], json.loads(r["fragments"])) for r in rows]


def _visible(bulk: BulkOperation) -> tuple[object, ...]:
    return (bulk.status, bulk.paused_reason, bulk.tally, bulk.created, bulk.skipped, bulk.retried)
