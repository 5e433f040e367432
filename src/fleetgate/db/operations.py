"""Operations in PostgreSQL.

Status changes go through :func:`fleetgate.domain.operations.move` inside a transaction
that holds the operation's row lock, so two reports at once (a device and an operator, a
redelivered message and its original) cannot both move it, and the device record changes
that success brings are committed with the status that brings them — exactly once.
How a row reads is :mod:`fleetgate.db.operation_rows`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from fleetgate.db.inventory import insert_object, object_of_row
from fleetgate.db.operation_rows import (
    BOUND,
    DEVICE_COLUMNS,
    DEVICE_JOIN,
    GATEWAY,
    HELD,
    SELECT,
    operation_of_row,
    state_of_row,
    where_clause,
)
from fleetgate.domain import commands
from fleetgate.domain import operations as ops
from fleetgate.domain.devices import DEVICE_ID_TYPE, ManagedObject
from fleetgate.domain.errors import Conflict
from fleetgate.domain.operations import (
    Decision,
    DeviceTarget,
    Move,
    Operation,
    OperationFilter,
    Outcome,
    Report,
    Status,
)
from fleetgate.domain.profiles import PROFILE_TYPE

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


def _outcome(decision: Decision, saved: dict[int, Operation]) -> Outcome:
    """The outcome of one decision: with the operation as this report left it (a batch
    may have moved it further since)."""
    found = saved.get(decision.report.operation_id)
    if decision.move is not Move.APPLY or found is None or decision.status is None:
        return Outcome(decision)
    return Outcome(
        decision, replace(found, status=decision.status, failure_reason=decision.failure_reason)
    )


class PgOperations:
    def __init__(self, pool: asyncpg.Pool, base_url: str) -> None:
        self._pool = pool
        self._base_url = base_url

    async def device(self, tenant_id: str, device_id: int) -> DeviceTarget | None:
        row = await self._pool.fetchrow(
            """
            SELECT m.id, m.type, m.fragments, e.value AS serial
              FROM managed_object m
              LEFT JOIN external_id e ON e.managed_object_id = m.id AND e.type = $3
             WHERE m.tenant_id = $1 AND m.id = $2
             LIMIT 1
            """,
            tenant_id,
            device_id,
            DEVICE_ID_TYPE,
        )
        if row is None:
            return None
        return DeviceTarget(row["id"], row["serial"], row["type"], json.loads(row["fragments"]))

    async def configuration_dumps(self, tenant_id: str, url: str) -> list[dict[str, Any]]:
        """Configuration repository entries (c8y_ConfigurationDump) whose file is ``url``."""
        rows = await self._pool.fetch(
            "SELECT fragments FROM managed_object WHERE tenant_id = $1"
            " AND type = 'c8y_ConfigurationDump' AND fragments ->> 'url' = $2",
            tenant_id,
            url,
        )
        return [json.loads(r["fragments"]) for r in rows]

    async def profile(self, tenant_id: str, profile_id: int) -> ManagedObject | None:
        """The tenant's device profile (type c8y_Profile) of this id, or None."""
        row = await self._pool.fetchrow(
            "SELECT * FROM managed_object WHERE tenant_id = $1 AND id = $2 AND type = $3",
            tenant_id,
            profile_id,
            PROFILE_TYPE,
        )
        return object_of_row(row) if row else None

    async def create(
        self,
        tenant_id: str,
        device: DeviceTarget,
        *,
        fragment_type: str,
        description: str | None,
        fragments: dict[str, Any],
        bulk_operation_id: int | None = None,
    ) -> Operation:
        assert device.serial is not None
        try:
            row = await self._pool.fetchrow(
                f"""
                WITH o AS (
                    INSERT INTO operation (tenant_id, device_id, serial, fragment_type,
                                           description, fragments, bulk_operation_id)
                    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) RETURNING *)
                SELECT o.*, {DEVICE_COLUMNS}
                  FROM o JOIN managed_object m ON m.id = o.device_id
                """,  # noqa: S608 — fixed fragments
                tenant_id,
                device.id,
                device.serial,
                fragment_type,
                description,
                json.dumps(fragments),
                bulk_operation_id,
            )
        except asyncpg.UniqueViolationError:
            config_type = (fragments.get(commands.UPLOAD_CONFIG) or {}).get("type")
            raise Conflict(
                f"A configuration snapshot of type {config_type!r} is already PENDING or"
                f" EXECUTING on device {device.id}; wait for it or cancel it first",
                code="devicecontrol/Conflict",
            ) from None
        except asyncpg.ForeignKeyViolationError:
            raise Conflict(
                f"Device {device.id} was deleted", code="devicecontrol/Conflict"
            ) from None
        assert row is not None
        return operation_of_row(row)

    async def get(self, tenant_id: str, operation_id: int) -> Operation | None:
        row = await self._pool.fetchrow(
            f"{SELECT} WHERE o.tenant_id = $1 AND o.id = $2", tenant_id, operation_id
        )
        return operation_of_row(row) if row else None

    async def find(
        self, tenant_id: str, flt: OperationFilter, offset: int, limit: int, *, revert: bool
    ) -> list[Operation]:
        where, args = where_clause(tenant_id, flt)
        order = "DESC" if revert else "ASC"
        rows = await self._pool.fetch(
            f"{SELECT} WHERE {where} ORDER BY o.id {order}"
            f" OFFSET ${len(args) + 1} LIMIT ${len(args) + 2}",
            *args,
            offset,
            limit,
        )
        return [operation_of_row(r) for r in rows]

    async def count(self, tenant_id: str, flt: OperationFilter) -> int:
        where, args = where_clause(tenant_id, flt)
        return int(
            await self._pool.fetchval(
                f"SELECT count(*) FROM operation o WHERE {where}",  # noqa: S608 — fixed fragments
                *args,
            )
        )

    async def update_fields(
        self, tenant_id: str, operation_id: int, description: str | None, fragments: dict[str, Any]
    ) -> Operation | None:
        """Merge extra fragments (not the command) and the description; a null removes."""
        removed = [k for k, v in fragments.items() if v is None]
        kept = {k: v for k, v in fragments.items() if v is not None}
        row = await self._pool.fetchrow(
            f"""
            WITH o AS (
                UPDATE operation
                   SET fragments = (fragments || $3::jsonb) - $4::text[],
                       description = COALESCE($5, description)
                 WHERE tenant_id = $1 AND id = $2 RETURNING *)
            SELECT o.*, {DEVICE_COLUMNS} FROM o {DEVICE_JOIN}
            """,  # noqa: S608 — fixed fragments
            tenant_id,
            operation_id,
            json.dumps(kept),
            removed,
            description,
        )
        return operation_of_row(row) if row else None

    async def apply(self, reports: Sequence[Report]) -> list[Outcome]:
        """Apply status reports in order, in one transaction; returns one outcome each.

        The operations are locked, :func:`fleetgate.domain.operations.decide` decides
        every report, and the moves are saved with what success changes in the device
        records (:func:`~fleetgate.domain.operations.success_effects`).
        """
        if not reports:
            return []
        ids = sorted({r.operation_id for r in reports})
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT o.id, o.tenant_id, o.serial, o.status, o.fragment_type,"  # noqa: S608
                f" o.snapshot_id, {BOUND} AS bound, {GATEWAY}"
                " FROM operation o JOIN managed_object m ON m.id = o.device_id"
                " WHERE o.id = ANY($1::bigint[]) ORDER BY o.id FOR UPDATE OF o",
                ids,
            )
            states = {r["id"]: state_of_row(r) for r in rows}
            decisions = ops.decide(states, reports)
            final = ops.final_moves(decisions)
            if not final:
                return [Outcome(d) for d in decisions]
            moved = await conn.fetch(
                f"""
                WITH u AS (
                    UPDATE operation o
                       SET status = v.status, failure_reason = v.reason, status_time = now()
                      FROM unnest($1::bigint[], $2::text[], $3::text[]) AS v(id, status, reason)
                     WHERE o.id = v.id RETURNING o.*)
                SELECT u.*, {DEVICE_COLUMNS} FROM u JOIN managed_object m ON m.id = u.device_id
                """,  # noqa: S608 — fixed fragments
                list(final),
                [str(status) for status, _ in final.values()],
                [reason for _, reason in final.values()],
            )
            saved = {r["id"]: operation_of_row(r) for r in moved}
            snapshots = {r["id"]: r["snapshot_id"] for r in moved}
            successes = [op for op in saved.values() if op.status is Status.SUCCESSFUL]
            if successes:
                await self._save_successes(conn, successes, snapshots)
        return [_outcome(d, saved) for d in decisions]

    async def _save_successes(
        self, conn: Conn, successes: list[Operation], snapshots: dict[int, int | None]
    ) -> None:
        """What successful operations change in their devices' records (same transaction):
        the devices locked in one statement (in id order: two batches cannot wait on each
        other), their records changed in memory in the operations' order — a device's
        second success sees its first — and written back in one statement."""
        devices = await conn.fetch(
            "SELECT id, name, type, fragments, now() AS now FROM managed_object"
            " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
            sorted({op.device_id for op in successes}),
        )
        records = {
            d["id"]: commands.DeviceRecord(d["name"], d["type"], json.loads(d["fragments"]))
            for d in devices
        }
        assert len(records) == len({op.device_id for op in successes})
        now = devices[0]["now"]
        changed: dict[int, dict[str, Any]] = {}
        for op in sorted(successes, key=lambda o: o.id):
            record = records[op.device_id]
            snapshot_id = snapshots[op.id]
            url = f"{self._base_url}/inventory/binaries/{snapshot_id}" if snapshot_id else None
            effects = commands.success_effects(op, record, url, now)
            changes = effects.fragments
            if effects.entry is not None:
                entry = await insert_object(
                    conn,
                    op.tenant_id,
                    name=effects.entry.name,
                    type=commands.CONFIGURATION_ENTRY_TYPE,
                    owner=None,
                    fragments=effects.entry.fragments,
                )
                changes = effects.with_entry_id(entry["id"])
            if changes:
                records[op.device_id] = replace(record, fragments={**record.fragments, **changes})
                changed[op.device_id] = {**changed.get(op.device_id, {}), **changes}
        if changed:
            await conn.execute(
                "UPDATE managed_object m SET fragments = m.fragments || v.changes::jsonb,"
                " last_updated = now()"
                " FROM unnest($1::bigint[], $2::text[]) AS v(id, changes) WHERE m.id = v.id",
                list(changed),
                [json.dumps(c) for c in changed.values()],
            )

    async def attach_snapshot(self, operation_id: int, serial: str, binary_id: int) -> int | None:
        """Record the snapshot a device uploaded; returns the binary it replaces (or None).

        Raises Conflict unless the operation is the device's open c8y_UploadConfigFile.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT serial, status, fragment_type, snapshot_id FROM operation"
                " WHERE id = $1 FOR UPDATE",
                operation_id,
            )
            if (
                row is None
                or row["serial"] != serial
                or row["fragment_type"] != commands.UPLOAD_CONFIG
                or Status(row["status"]) not in ops.OPEN
            ):
                raise Conflict(
                    f"Operation {operation_id} is not an open configuration snapshot request"
                    f" of device {serial}",
                    code="devicecontrol/Conflict",
                )
            await conn.execute(
                "UPDATE operation SET snapshot_id = $2 WHERE id = $1", operation_id, binary_id
            )
        previous: int | None = row["snapshot_id"]
        return previous

    async def get_by_id(self, operation_id: int) -> Operation | None:
        """The operation whatever its tenant (for requests a signed URL authorises)."""
        row = await self._pool.fetchrow(f"{SELECT} WHERE o.id = $1", operation_id)
        return operation_of_row(row) if row else None

    async def open_for(
        self, devices: Sequence[str], children: Sequence[tuple[str, str]] = ()
    ) -> list[Operation]:
        """PENDING and EXECUTING operations, oldest first: for each of ``devices`` (a
        device asking for itself) its own — unless it is a child now, reached through its
        gateway only — and its children's; for each (child, gateway) of ``children`` the
        child's, while it is that gateway's child."""
        rows = await self._pool.fetch(
            f"""
            WITH asked AS (
                SELECT unnest($1::text[]) AS serial
                UNION
                SELECT ce.value
                  FROM external_id ge
                  JOIN managed_object_child c
                    ON c.parent_id = ge.managed_object_id AND c.kind = 'childDevices'
                  JOIN external_id ce
                    ON ce.managed_object_id = c.child_id AND ce.type = 'c8y_Serial'
                 WHERE ge.type = 'c8y_Serial' AND ge.value = ANY($1::text[])
                UNION
                SELECT unnest($2::text[]))
            SELECT * FROM ({SELECT}
                            WHERE o.serial IN (SELECT serial FROM asked)
                              AND o.status IN ('PENDING', 'EXECUTING') AND {BOUND}) q
             WHERE (q.gateway IS NULL AND q.serial = ANY($1::text[]))
                OR q.gateway = ANY($1::text[])
                OR q.serial || '/' || q.gateway = ANY($3::text[])
             ORDER BY q.id
            """,  # noqa: S608 — fixed fragments
            list(devices),
            [child for child, _ in children],
            [f"{child}/{gateway}" for child, gateway in children],
        )
        return [operation_of_row(r) for r in rows]

    async def undispatched(self, limit: int) -> list[Operation]:
        rows = await self._pool.fetch(
            f"{SELECT} WHERE o.status = 'PENDING' AND o.dispatched_at IS NULL"
            f" AND {BOUND} AND NOT {HELD} ORDER BY o.id LIMIT $1",
            limit,
        )
        return [operation_of_row(r) for r in rows]

    @contextlib.asynccontextmanager
    async def claim_undispatched(
        self, limit: int, older_than: float
    ) -> AsyncIterator[list[Operation]]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"{SELECT} WHERE o.status = 'PENDING' AND o.dispatched_at IS NULL"
                " AND o.creation_time <= now() - make_interval(secs => $2)"
                f" AND {BOUND} AND NOT {HELD} ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED",
                limit,
                older_than,
            )
            claimed = [operation_of_row(r) for r in rows]
            yield claimed
            if claimed:
                await conn.execute(
                    "UPDATE operation SET dispatched_at = now() WHERE id = ANY($1::bigint[])",
                    [op.id for op in claimed],
                )

    async def mark_dispatched(self, ids: Sequence[int]) -> None:
        await self._pool.execute(
            "UPDATE operation SET dispatched_at = now() WHERE id = ANY($1::bigint[])", list(ids)
        )

    async def time_out(self, pending_after: float, executing_after: float) -> list[Operation]:
        """FAIL every operation open past its limit; returns them."""
        rows = await self._pool.fetch(
            f"""
            WITH u AS (
                UPDATE operation
                   SET status = 'FAILED', status_time = now(),
                       failure_reason = format('Timed out: %s for more than %s s',
                                               status, CASE status WHEN 'PENDING' THEN $1
                                                               ELSE $2 END)
                 WHERE (status = 'PENDING' AND status_time < now() - make_interval(secs => $1))
                    OR (status = 'EXECUTING' AND status_time < now() - make_interval(secs => $2))
                RETURNING *)
            {SELECT.replace("operation o", "u o")}
            """,  # noqa: S608 — no input in the text
            pending_after,
            executing_after,
        )
        return [operation_of_row(r) for r in rows]
