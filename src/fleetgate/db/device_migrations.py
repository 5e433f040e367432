"""Device migrations between tenants in PostgreSQL (table ``device_migration``, migration
0020; decision 0014). The decisions are :mod:`fleetgate.domain.device_migrations`'; this
module gathers their facts under locks and applies them in the same transaction.

Concurrency (several service instances): a migration's row is locked ``FOR UPDATE`` by
whoever issues a code, enters one or cancels, so attempts are counted exactly and a code
confirms once. The move itself first takes the advisory lock of every moving device id
(:func:`fleetgate.db.locks.lock_device_id`, in id order: nobody registers, claims or
deletes those ids meanwhile) and then locks the moving managed objects ``FOR NO KEY
UPDATE`` (in id order, as every tree writer does), reads the tree again in a later
statement and moves what it finds then — all in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import asyncpg

from fleetgate.db.gateways import GATEWAY_OF
from fleetgate.db.locks import lock_device_id
from fleetgate.db.operation_rows import SELECT, operation_of_row
from fleetgate.db.users import user_of_row
from fleetgate.domain.device_migrations import (
    CA_FRAGMENT,
    Entered,
    Migration,
    MigrationStatus,
    Moved,
    Plan,
    TreeNode,
    TrustFacts,
    cancel,
    confirm,
    failed_reason,
    issue_code,
    migration_not_found,
    moved_fragments,
    needs_check,
    plan_move,
    untrusted,
)
from fleetgate.domain.devices import DEVICE_ID_TYPE, device_username
from fleetgate.domain.errors import Conflict, FleetgateError, NotFound, ValidationFailed
from fleetgate.domain.gateways import CHILD_DEVICES
from fleetgate.domain.users import Role

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
#: Compares a typed code with the stored hash (scrypt, constant time); may run in a thread.
Verifier = Callable[[str, str], Awaitable[bool]]

_ONE_OPEN = "device_migration_one_open"

_NODE = f"""
SELECT m.id, m.fragments ? 'c8y_IsDevice' AS is_device, e.value AS device_id,
       m.fragments -> '{CA_FRAGMENT}' ->> 'fingerprint' AS ca_fingerprint,
       {GATEWAY_OF} AS gateway, m.fragments
  FROM managed_object m
  LEFT JOIN external_id e ON e.managed_object_id = m.id AND e.type = 'c8y_Serial'
"""  # noqa: S608 — fixed fragments


def _migration(row: asyncpg.Record) -> Migration:
    return Migration(
        id=row["id"],
        source_tenant=row["source_tenant"],
        target_tenant=row["target_tenant"],
        object_id=row["object_id"],
        device_id=row["device_id"],
        with_children=row["with_children"],
        status=MigrationStatus(row["status"]),
        requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        expires_at=row["expires_at"],
        max_attempts=row["max_attempts"],
        attempts=row["attempts"],
        code_hash=row["code_hash"],
        code_issued_at=row["code_issued_at"],
        code_issued_to=row["code_issued_to"],
        finished_at=row["finished_at"],
        finished_by=row["finished_by"],
        moved=tuple(row["moved"]),
    )


def _node(row: asyncpg.Record) -> TreeNode:
    return TreeNode(
        object_id=row["id"],
        device_id=row["device_id"],
        is_device=row["is_device"],
        gateway=row["gateway"],
        ca_fingerprint=row["ca_fingerprint"],
    )


class PgDeviceMigrations:
    """A :class:`~fleetgate.services.ports.DeviceMigrationStore` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- reading ------------------------------------------------------------------------

    async def get(self, tenant_id: str, migration_id: int) -> Migration | None:
        """The migration, if ``tenant_id`` is its source or its target."""
        row = await self._pool.fetchrow(
            "SELECT * FROM device_migration WHERE id = $1"
            " AND (source_tenant = $2 OR target_tenant = $2)",
            migration_id,
            tenant_id,
        )
        return None if row is None else _migration(row)

    async def find(
        self, tenant_id: str, offset: int, limit: int, *, count: bool
    ) -> tuple[list[Migration], int | None]:
        """The tenant's migrations (out of it and into it), newest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM device_migration WHERE source_tenant = $1 OR target_tenant = $1"
            " ORDER BY id DESC OFFSET $2 LIMIT $3",
            tenant_id,
            offset,
            limit,
        )
        total = None
        if count:
            total = await self._pool.fetchval(
                "SELECT count(*) FROM device_migration"
                " WHERE source_tenant = $1 OR target_tenant = $1",
                tenant_id,
            )
        return [_migration(r) for r in rows], total

    # -- requesting ---------------------------------------------------------------------

    async def request(
        self,
        source: str,
        target: str,
        object_id: int,
        *,
        with_children: bool,
        by: str,
        now: datetime,
        ttl: timedelta,
        max_attempts: int,
    ) -> Migration:
        """A new REQUESTED migration of the source's device ``object_id``, after checking
        that it can move: a device that is no child, the target exists and trusts the CA
        of the device's certificate. An open request for the device is a 409."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The device first: another tenant's is a 404 whatever the rest says.
            plan = await _plan(conn, source, object_id, with_children)
            if target == source:
                raise ValidationFailed("The target tenant is the device's own tenant")
            status = await conn.fetchval("SELECT status FROM tenant WHERE id = $1", target)
            if status is None:
                raise ValidationFailed(f"Tenant {target} does not exist")
            if status != "ACTIVE":
                raise ValidationFailed(
                    f"Tenant {target} is suspended: its administrators cannot confirm a move"
                )
            refusal = await _trust_refusal(conn, plan, target)
            if refusal is not None:
                raise refusal
            await conn.execute(
                "UPDATE device_migration SET status = 'EXPIRED', finished_at = expires_at"
                " WHERE object_id = $1 AND status = 'REQUESTED' AND expires_at <= $2",
                object_id,
                now,
            )
            try:
                async with conn.transaction():
                    row = await conn.fetchrow(
                        """
                        INSERT INTO device_migration
                            (source_tenant, target_tenant, object_id, device_id,
                             with_children, requested_by, requested_at, expires_at,
                             max_attempts)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                        RETURNING *
                        """,
                        source,
                        target,
                        object_id,
                        plan.root.device_id,
                        with_children,
                        by,
                        now,
                        now + ttl,
                        max_attempts,
                    )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _ONE_OPEN:
                    raise
                open_id = await conn.fetchval(
                    "SELECT id FROM device_migration WHERE object_id = $1 AND status = 'REQUESTED'",
                    object_id,
                )
                raise Conflict(
                    f"Device {plan.root.device_id} has an open migration request"
                    f" ({open_id}): cancel it first",
                    code="inventory/migrationOpen",
                ) from None
        assert row is not None
        return _migration(row)

    # -- the code -----------------------------------------------------------------------

    async def issue_code(
        self, tenant_id: str, migration_id: int, by: str, code_hash: str, now: datetime
    ) -> Migration:
        """Store a new code's hash for the target's administrator ``by``."""
        async with self._pool.acquire() as conn:
            error: FleetgateError | None = None
            async with conn.transaction():
                found = await _locked(conn, tenant_id, migration_id)
                try:
                    issued = issue_code(found, tenant_id, by, code_hash, now)
                except FleetgateError as exc:
                    await _store_if_changed(conn, found, found.at(now))
                    error = exc
                else:
                    await _store(conn, issued)
            if error is not None:
                raise error
        return issued

    async def enter_code(
        self,
        tenant_id: str,
        migration_id: int,
        by: str,
        code: str,
        verify: Verifier,
        now: datetime,
    ) -> Entered:
        """Compare ``code`` with the issued one under the row's lock, count a wrong one,
        and move the device in the same transaction when it is right. The error of a
        refused code is raised after its attempt is committed."""
        async with self._pool.acquire() as conn:
            error: FleetgateError | None = None
            moved: Moved | None = None
            async with conn.transaction():
                found = await _locked(conn, tenant_id, migration_id)
                try:
                    current = needs_check(found, tenant_id, now)
                except FleetgateError as exc:
                    await _store_if_changed(conn, found, found.at(now))
                    error = exc
                else:
                    assert current.code_hash is not None
                    matches = await verify(code, current.code_hash)
                    outcome = confirm(current, tenant_id, by, matches, now)
                    if outcome.accepted:
                        moved = await _move(conn, outcome.migration, now)
                        outcome = replace(outcome, migration=moved.migration)
                    await _store(conn, outcome.migration)
                    error = outcome.error
            if error is not None:
                raise error
        assert moved is not None
        return Entered(outcome, moved)

    async def cancel(self, tenant_id: str, migration_id: int, by: str, now: datetime) -> Migration:
        async with self._pool.acquire() as conn:
            error: FleetgateError | None = None
            async with conn.transaction():
                found = await _locked(conn, tenant_id, migration_id)
                try:
                    cancelled = cancel(found, tenant_id, by, now)
                except FleetgateError as exc:
                    await _store_if_changed(conn, found, found.at(now))
                    error = exc
                else:
                    await _store(conn, cancelled)
            if error is not None:
                raise error
        return cancelled


async def _locked(conn: Conn, tenant_id: str, migration_id: int) -> Migration:
    row = await conn.fetchrow(
        "SELECT * FROM device_migration WHERE id = $1"
        " AND (source_tenant = $2 OR target_tenant = $2) FOR UPDATE",
        migration_id,
        tenant_id,
    )
    if row is None:
        raise migration_not_found(migration_id)
    return _migration(row)


async def _store(conn: Conn, m: Migration) -> None:
    await conn.execute(
        """
        UPDATE device_migration
           SET status = $2, attempts = $3, code_hash = $4, code_issued_at = $5,
               code_issued_to = $6, finished_at = $7, finished_by = $8, moved = $9
         WHERE id = $1
        """,
        m.id,
        m.status.value,
        m.attempts,
        m.code_hash,
        m.code_issued_at,
        m.code_issued_to,
        m.finished_at,
        m.finished_by,
        list(m.moved),
    )


async def _store_if_changed(conn: Conn, before: Migration, after: Migration) -> None:
    if after != before:
        await _store(conn, after)


async def _plan(conn: Conn, tenant_id: str, object_id: int, with_children: bool) -> Plan:
    """Lock the device and its children (in id order), then read them in a later
    statement and decide what moves."""
    locked = await conn.fetchval(
        "SELECT id FROM managed_object WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE",
        tenant_id,
        object_id,
    )
    if locked is None:
        raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
    await conn.execute(
        "SELECT 1 FROM managed_object WHERE id IN (SELECT child_id FROM managed_object_child"
        "  WHERE parent_id = $1 AND kind = $2) ORDER BY id FOR NO KEY UPDATE",
        object_id,
        CHILD_DEVICES,
    )
    root = await conn.fetchrow(f"{_NODE} WHERE m.id = $1", object_id)
    children = await conn.fetch(
        f"{_NODE} WHERE m.id IN (SELECT child_id FROM managed_object_child"  # noqa: S608
        "  WHERE parent_id = $1 AND kind = $2) ORDER BY m.id",
        object_id,
        CHILD_DEVICES,
    )
    assert root is not None
    return plan_move(_node(root), [_node(c) for c in children], with_children)


async def _trust_refusal(conn: Conn, plan: Plan, target: str) -> ValidationFailed | None:
    """The refusal when the target does not trust the CA of the gateway's certificate (its
    children log in through it and need no CA of their own)."""
    fingerprint = plan.root.ca_fingerprint
    if fingerprint is None or plan.root.device_id is None:
        return None
    subject = await conn.fetchval(
        "SELECT subject FROM trusted_certificate WHERE fingerprint = $1", fingerprint
    )
    subjects = await conn.fetch(
        "SELECT subject FROM trusted_certificate WHERE tenant_id = $1 AND status = 'ENABLED'",
        target,
    )
    facts = TrustFacts(fingerprint, subject, frozenset(r["subject"] for r in subjects))
    return untrusted(plan.root.device_id, target, facts)


async def _move(conn: Conn, migration: Migration, now: datetime) -> Moved:
    """Move the device (and its children, if asked) from the source to the target, in the
    caller's transaction, as the tree stands now."""
    source, target = migration.source_tenant, migration.target_tenant
    if migration.object_id is None:
        raise NotFound(f"The device {migration.device_id} of migration {migration.id} is gone")
    # The ids first (the lock order of fleetgate.db.locks), read as they are now.
    ids = await conn.fetch(
        "SELECT e.value FROM external_id e WHERE e.type = $1 AND e.tenant_id = $2"
        " AND (e.managed_object_id = $3 OR e.managed_object_id IN"
        "      (SELECT child_id FROM managed_object_child WHERE parent_id = $3 AND kind = $4))"
        " ORDER BY e.value",
        DEVICE_ID_TYPE,
        source,
        migration.object_id,
        CHILD_DEVICES,
    )
    for row in ids:
        await lock_device_id(conn, row["value"])
    plan = await _plan(conn, source, migration.object_id, migration.with_children)
    refusal = await _trust_refusal(conn, plan, target)
    if refusal is not None:
        raise refusal
    object_ids, device_ids = plan.object_ids, plan.device_ids
    await _check_target_free(conn, target, object_ids, device_ids)
    reason = failed_reason(target, migration.id)

    # Bulk targets first: a scheduler creating an operation for one of them right now
    # holds its row; once it has committed, the statement below sees that operation too.
    await _end_bulk_targets(conn, object_ids, reason)
    ended = await conn.fetch(
        "UPDATE operation SET status = 'FAILED', failure_reason = $3, status_time = $4"
        " WHERE tenant_id = $1 AND device_id = ANY($2::bigint[])"
        " AND status IN ('PENDING', 'EXECUTING') RETURNING id",
        source,
        object_ids,
        reason,
        now,
    )
    # References with one end moving and one staying: the source's groups lose the
    # device, the gateway loses the children that stay, the device its source assets.
    detached_rows = await conn.fetch(
        "DELETE FROM managed_object_child"
        " WHERE (parent_id = ANY($1::bigint[])) <> (child_id = ANY($1::bigint[]))"
        " RETURNING parent_id, child_id, kind",
        object_ids,
    )
    await conn.execute(
        "DELETE FROM child_connection"
        " WHERE (child_id = ANY($1::bigint[])) <> (gateway_id = ANY($1::bigint[]))",
        object_ids,
    )
    # What operators removed from the gateway in the source is the source's business.
    await conn.execute("DELETE FROM removed_child WHERE gateway_id = ANY($1::bigint[])", object_ids)
    rows = await conn.fetch(
        "SELECT id, fragments FROM managed_object WHERE id = ANY($1::bigint[])", object_ids
    )
    shown = {r["id"]: moved_fragments(json.loads(r["fragments"]), target, now) for r in rows}
    await conn.execute(
        """
        UPDATE managed_object m
           SET tenant_id = $2, connection_id = NULL, last_updated = $3,
               fragments = m.fragments || u.fragments::jsonb
          FROM unnest($1::bigint[], $4::text[]) AS u(id, fragments)
         WHERE m.id = u.id
        """,
        object_ids,
        target,
        now,
        [json.dumps(shown[i]) for i in object_ids],
    )
    await conn.execute(
        "UPDATE external_id SET tenant_id = $2 WHERE managed_object_id = ANY($1::bigint[])",
        object_ids,
        target,
    )
    await conn.execute(
        "DELETE FROM new_device_request WHERE tenant_id = $1 AND id = ANY($2::text[])",
        source,
        device_ids,
    )
    users = await conn.fetch(
        "UPDATE app_user SET tenant_id = $2"
        " WHERE tenant_id = $1 AND username = ANY($3::text[]) AND $4 = ANY (roles)"
        " RETURNING *",
        source,
        target,
        [device_username(d) for d in device_ids],
        Role.DEVICE.value,
    )
    moving_children = tuple(n.device_id for n in plan.moving[1:] if n.device_id is not None)
    staying = {n.object_id: n.device_id for n in plan.staying}
    detached = tuple(
        staying[r["child_id"]]
        for r in detached_rows
        if r["kind"] == CHILD_DEVICES and r["child_id"] in staying and staying[r["child_id"]]
    )
    assert plan.root.device_id is not None
    done = replace(migration, moved=tuple(device_ids))
    return Moved(
        migration=done,
        gateway=plan.root.device_id,
        users=tuple(user_of_row(u) for u in users),
        children=moving_children,
        detached=tuple(d for d in detached if d is not None),
        ended=tuple(
            operation_of_row(r)
            for r in await conn.fetch(
                f"{SELECT} WHERE o.id = ANY($1::bigint[]) ORDER BY o.id",
                [r["id"] for r in ended],
            )
        ),
    )


async def _check_target_free(
    conn: Conn, target: str, object_ids: Sequence[int], device_ids: Sequence[str]
) -> None:
    """Nothing of the target may already hold an external id or a user name that moves
    with the devices: a 409 that says which, and nothing moves."""
    clash = await conn.fetchrow(
        "SELECT t.type, t.value FROM external_id s JOIN external_id t"
        "  ON t.tenant_id = $1 AND t.type = s.type AND t.value = s.value"
        " WHERE s.managed_object_id = ANY($2::bigint[]) LIMIT 1",
        target,
        list(object_ids),
    )
    if clash is not None:
        raise Conflict(
            f"Tenant {target} has an external id {clash['type']}/{clash['value']} already:"
            " delete it there first, then enter the code again",
            code="inventory/migrationClash",
        )
    user = await conn.fetchval(
        "SELECT username FROM app_user WHERE tenant_id = $1 AND username = ANY($2::text[]) LIMIT 1",
        target,
        [device_username(d) for d in device_ids],
    )
    if user is not None:
        raise Conflict(
            f"Tenant {target} has a user {user} already: delete it there first, then enter"
            " the code again",
            code="inventory/migrationClash",
        )


async def _end_bulk_targets(conn: Conn, object_ids: Sequence[int], reason: str) -> None:
    """The source's bulk operations make no more operations for the moved devices: a
    target still waiting is SKIPPED (and counted so), a created one is retried no more."""
    skipped = await conn.fetch(
        """
        WITH t AS (
            SELECT bulk_operation_id, device_id, state FROM bulk_operation_target
             WHERE device_id = ANY($1::bigint[]) AND state IN ('WAITING', 'CREATED')
               FOR UPDATE)
        UPDATE bulk_operation_target b
           SET state = CASE WHEN t.state = 'WAITING' THEN 'SKIPPED' ELSE b.state END,
               attempts = CASE WHEN t.state = 'WAITING' THEN b.attempts ELSE 1000 END,
               reason = $2
          FROM t
         WHERE b.bulk_operation_id = t.bulk_operation_id AND b.device_id = t.device_id
        RETURNING b.bulk_operation_id, t.state AS was
        """,
        list(object_ids),
        reason,
    )
    counts: dict[int, int] = {}
    for row in skipped:
        if row["was"] == "WAITING":
            counts[row["bulk_operation_id"]] = counts.get(row["bulk_operation_id"], 0) + 1
    if counts:
        await conn.execute(
            "UPDATE bulk_operation b SET skipped = b.skipped + c.n"
            "  FROM unnest($1::bigint[], $2::int[]) AS c(id, n) WHERE b.id = c.id",
            list(counts),
            list(counts.values()),
        )
