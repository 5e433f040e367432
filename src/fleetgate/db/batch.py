"""Staged batch updates in PostgreSQL (migration 0021): the upload, its valid records
with their values at the upload, and each record's outcome once confirmed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from fleetgate.db.inventory import object_of_row, update_object
from fleetgate.domain.batch import Invalid
from fleetgate.domain.batch_apply import Refusal, StagedRecord, Unchanged, decide
from fleetgate.domain.batch_state import (
    BatchState,
    Claim,
    NewBatch,
    Outcome,
    RecordOutcome,
)
from fleetgate.domain.devices import ManagedObject

_STATE = """
SELECT b.*,
       count(r.outcome) FILTER (WHERE r.outcome = 'UPDATED') AS updated,
       count(r.outcome) FILTER (WHERE r.outcome = 'UNCHANGED') AS unchanged,
       count(r.outcome) FILTER (WHERE r.outcome = 'FAILED') AS failed
  FROM batch_update b LEFT JOIN batch_update_record r ON r.batch_id = b.id
 WHERE b.tenant_id = $1 AND b.id = $2
 GROUP BY b.id
"""


def _state(row: asyncpg.Record, failures: list[RecordOutcome]) -> BatchState:
    return BatchState(
        id=row["id"],
        tenant_id=row["tenant_id"],
        device_type=row["device_type"],
        file_name=row["file_name"],
        created_by=row["created_by"],
        creation_time=row["creation_time"],
        expires_at=row["expires_at"],
        status=row["status"],
        confirmed_by=row["confirmed_by"],
        applied_at=row["applied_at"],
        records=row["records"],
        invalid_records=row["invalid_records"],
        invalid=[Invalid(i["row"], i["column"], i["cause"]) for i in json.loads(row["invalid"])],
        updated=row["updated"],
        unchanged=row["unchanged"],
        failed=row["failed"],
        failures=failures,
    )


class PgBatchUpdates:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def devices(self, tenant_id: str, ids: list[int]) -> dict[int, ManagedObject]:
        rows = await self._pool.fetch(
            "SELECT * FROM managed_object WHERE tenant_id = $1 AND id = ANY($2::bigint[])",
            tenant_id,
            ids,
        )
        return {r["id"]: object_of_row(r) for r in rows}

    async def save(self, batch: NewBatch) -> int:
        """Store the staged upload and its valid records in one transaction; its id."""
        async with self._pool.acquire() as conn, conn.transaction():
            batch_id: int = await conn.fetchval(
                "INSERT INTO batch_update (tenant_id, device_type, file_name, created_by,"
                " creation_time, expires_at, records, invalid_records, invalid)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING id",
                batch.tenant_id,
                batch.device_type,
                batch.file_name,
                batch.created_by,
                batch.creation_time,
                batch.expires_at,
                batch.records,
                batch.invalid_records,
                json.dumps(
                    [{"row": i.row, "column": i.column, "cause": i.cause} for i in batch.invalid]
                ),
            )
            await conn.copy_records_to_table(
                "batch_update_record",
                records=[
                    (
                        batch_id,
                        r.row,
                        r.object_id,
                        json.dumps(r.changes),
                        json.dumps(r.before),
                    )
                    for r in batch.valid
                ],
                columns=["batch_id", "row_number", "managed_object_id", "changes", "before"],
            )
        return batch_id

    async def get(self, tenant_id: str, batch_id: int) -> BatchState | None:
        row = await self._pool.fetchrow(_STATE, tenant_id, batch_id)
        if row is None:
            return None
        failures = await self._pool.fetch(
            "SELECT row_number, managed_object_id, outcome, cause FROM batch_update_record"
            " WHERE batch_id = $1 AND outcome = 'FAILED' ORDER BY row_number",
            batch_id,
        )
        return _state(
            row,
            [
                RecordOutcome(f["row_number"], f["managed_object_id"], Outcome.FAILED, f["cause"])
                for f in failures
            ],
        )

    async def claim(
        self, tenant_id: str, batch_id: int, by: str, now: datetime, lease: timedelta
    ) -> Claim:
        """Take the batch to apply it: STAGED and not expired, or APPLYING by an instance
        whose lease ran out."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status, expires_at, claimed_until FROM batch_update"
                " WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                tenant_id,
                batch_id,
            )
            if row is None:
                return Claim.NOT_FOUND
            if row["status"] == "APPLIED":
                return Claim.APPLIED
            if row["status"] == "APPLYING" and row["claimed_until"] > now:
                return Claim.BUSY
            if row["status"] == "STAGED" and row["expires_at"] <= now:
                return Claim.EXPIRED
            await conn.execute(
                "UPDATE batch_update SET status = 'APPLYING', claimed_until = $2,"
                " confirmed_by = $3 WHERE id = $1",
                batch_id,
                now + lease,
                by,
            )
            return Claim.CLAIMED

    async def pending(self, batch_id: int, limit: int) -> list[StagedRecord]:
        rows = await self._pool.fetch(
            "SELECT row_number, managed_object_id, changes, before FROM batch_update_record"
            " WHERE batch_id = $1 AND outcome IS NULL ORDER BY row_number LIMIT $2",
            batch_id,
            limit,
        )
        return [
            StagedRecord(
                r["row_number"],
                r["managed_object_id"],
                json.loads(r["changes"]),
                json.loads(r["before"]),
            )
            for r in rows
        ]

    async def apply(
        self, tenant_id: str, batch_id: int, device_type: str, record: StagedRecord
    ) -> RecordOutcome:
        """Apply one record atomically: lock its device, decide against what it holds
        now (:func:`fleetgate.domain.batch_apply.decide`), write, and record the outcome in the
        same transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchrow(
                "SELECT * FROM managed_object WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                tenant_id,
                record.object_id,
            )
            decision = decide(record, object_of_row(found) if found else None, device_type)
            cause: str | None = None
            if isinstance(decision, Refusal):
                outcome, cause = Outcome.FAILED, decision.cause
            elif isinstance(decision, Unchanged):
                outcome = Outcome.UNCHANGED
            else:
                await update_object(
                    conn, tenant_id, record.object_id, decision.plain, decision.fragments
                )
                outcome = Outcome.UPDATED
            await conn.execute(
                "UPDATE batch_update_record SET outcome = $3, cause = $4"
                " WHERE batch_id = $1 AND row_number = $2",
                batch_id,
                record.row,
                outcome.value,
                cause,
            )
        return RecordOutcome(record.row, record.object_id, outcome, cause)

    async def finish(self, batch_id: int, now: datetime) -> None:
        await self._pool.execute(
            "UPDATE batch_update SET status = 'APPLIED', applied_at = $2, claimed_until = NULL"
            " WHERE id = $1",
            batch_id,
            now,
        )

    async def discard(self, tenant_id: str, batch_id: int) -> bool:
        """Delete a batch that is not being applied; False when there is none such."""
        deleted: Any = await self._pool.fetchval(
            "DELETE FROM batch_update WHERE tenant_id = $1 AND id = $2"
            " AND status <> 'APPLYING' RETURNING id",
            tenant_id,
            batch_id,
        )
        return deleted is not None

    async def purge(self, before: datetime) -> int:
        """Forget batches that expired (or were applied) before ``before``."""
        result: str = await self._pool.execute(
            "DELETE FROM batch_update WHERE status <> 'APPLYING' AND expires_at < $1",
            before,
        )
        return int(result.split()[-1])
