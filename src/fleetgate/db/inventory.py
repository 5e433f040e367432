"""Managed objects and external ids in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.db.inventory_query import compile_query
from fleetgate.domain.connections import disabled_lifecycle
from fleetgate.domain.devices import DEVICE_ID_TYPE, ManagedObject
from fleetgate.domain.inventory import PARENT_KINDS, Deleted, ObjectFilter, Reference
from fleetgate.domain.lifecycle import FRAGMENT as LIFECYCLE
from fleetgate.domain.lifecycle import with_initial_lifecycle

#: What a disabled device's lifecycle shows, whatever its connection does (a JSON object
#: to merge last).
DISABLED_SHOWN = {LIFECYCLE: disabled_lifecycle()}


def keep_disabled(row: str, connection: str, shown: str) -> str:
    """The SQL of ``row``'s fragments with the connection fragments (parameter
    ``connection``) merged, its lifecycle staying DISABLED (``shown``:
    :data:`DISABLED_SHOWN`) while the device is disabled: a disabled device's last
    disconnect must not show it OFFLINE."""
    return (
        f"CASE WHEN {row}.disabled THEN {row}.fragments || {connection}::jsonb || {shown}::jsonb"
        f" ELSE {row}.fragments || {connection}::jsonb END"
    )


def object_of_row(row: asyncpg.Record) -> ManagedObject:
    return ManagedObject(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        type=row["type"],
        owner=row["owner"],
        creation_time=row["creation_time"],
        last_updated=row["last_updated"],
        fragments=json.loads(row["fragments"]),
    )


#: The conditions of :class:`ObjectFilter`'s tree filters (``{}``: parameter numbers).
_PARENTS_OF = "id IN (SELECT parent_id FROM managed_object_child WHERE child_id = {} AND kind = {})"
_CHILD_DEVICES_OF = (
    "id IN (SELECT child_id FROM managed_object_child WHERE parent_id = {}"
    " AND kind = 'childDevices')"
)
_HAS_CHILD_DEVICES = (
    "EXISTS (SELECT 1 FROM managed_object_child c"
    " WHERE c.parent_id = managed_object.id AND c.kind = 'childDevices')"
)
_NO_CHILD_DEVICES = f"NOT {_HAS_CHILD_DEVICES}"
_ROOT = "NOT EXISTS (SELECT 1 FROM managed_object_child c WHERE c.child_id = managed_object.id)"


def _where(tenant_id: str, flt: ObjectFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    for column, value in (("type", flt.type), ("owner", flt.owner)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if flt.fragment_type is not None:
        args.append(flt.fragment_type)
        clauses.append(f"fragments ? ${len(args)}")
    if flt.ids is not None:
        args.append(list(flt.ids))
        clauses.append(f"id = ANY(${len(args)})")
    if flt.query is not None:
        clauses.append(compile_query(flt.query, args))
    for kind, child_id in flt.parents_of:
        args.extend((child_id, kind))
        clauses.append(_PARENTS_OF.format(f"${len(args) - 1}", f"${len(args)}"))
    if flt.device_parent is not None:
        args.append(flt.device_parent)
        clauses.append(_CHILD_DEVICES_OF.format(f"${len(args)}"))
    if flt.has_child_devices is not None:
        clauses.append(_HAS_CHILD_DEVICES if flt.has_child_devices else _NO_CHILD_DEVICES)
    if flt.only_roots:
        clauses.append(_ROOT)
    return " AND ".join(clauses), args


Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy | asyncpg.Pool


async def insert_object(
    conn: Conn,
    tenant_id: str,
    *,
    name: str | None,
    type: str | None,
    owner: str | None,
    fragments: dict[str, Any],
    at: datetime | None = None,
) -> asyncpg.Record:
    """Insert one managed object (created and last updated ``at``, default now); its row.
    A device gets its first lifecycle status (INACTIVE) unless it shows one."""
    row = await conn.fetchrow(
        "INSERT INTO managed_object (tenant_id, name, type, owner, fragments, creation_time,"
        " last_updated) VALUES ($1, $2, $3, $4, $5::jsonb, COALESCE($6::timestamptz, now()),"
        " COALESCE($6::timestamptz, now())) RETURNING *",
        tenant_id,
        name,
        type,
        owner,
        json.dumps(with_initial_lifecycle(fragments)),
        at,
    )
    assert row is not None
    return row


def _update_args(plain: dict[str, Any], fragments: dict[str, Any]) -> list[Any]:
    """The values of :func:`update_object`'s statement after the row's key, in order."""
    return [
        "name" in plain,
        plain.get("name"),
        "type" in plain,
        plain.get("type"),
        "owner" in plain,
        plain.get("owner"),
        json.dumps(_without_nulls(fragments)),
        [k for k, v in fragments.items() if v is None],
    ]


async def update_object(
    conn: Conn, tenant_id: str, object_id: int, plain: dict[str, Any], fragments: dict[str, Any]
) -> asyncpg.Record | None:
    """Set name/type/owner given in ``plain``; merge ``fragments`` (a null removes one);
    the object's row, or None when it is not the tenant's."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """
        UPDATE managed_object
           SET name = CASE WHEN $3 THEN $4 ELSE name END,
               type = CASE WHEN $5 THEN $6 ELSE type END,
               owner = CASE WHEN $7 THEN $8 ELSE owner END,
               fragments = (fragments || $9::jsonb) - $10::text[],
               last_updated = now()
         WHERE tenant_id = $1 AND id = $2
        RETURNING *
        """,
        tenant_id,
        object_id,
        *_update_args(plain, fragments),
    )
    return row


class PgInventory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject:
        row = await insert_object(
            self._pool,
            tenant_id,
            name=name,
            type=type,
            owner=owner,
            fragments=_without_nulls(fragments),
        )
        return object_of_row(row)

    async def get(self, tenant_id: str, object_id: int) -> ManagedObject | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM managed_object WHERE tenant_id = $1 AND id = $2", tenant_id, object_id
        )
        return object_of_row(row) if row else None

    async def find(
        self, tenant_id: str, flt: ObjectFilter, offset: int, limit: int
    ) -> list[ManagedObject]:
        where, args = _where(tenant_id, flt)
        rows = await self._pool.fetch(
            f"SELECT * FROM managed_object WHERE {where} ORDER BY id"  # noqa: S608 — built from fixed column names
            f" OFFSET ${len(args) + 1} LIMIT ${len(args) + 2}",
            *args,
            offset,
            limit,
        )
        return [object_of_row(r) for r in rows]

    async def count(self, tenant_id: str, flt: ObjectFilter) -> int:
        where, args = _where(tenant_id, flt)
        value = await self._pool.fetchval(
            f"SELECT count(*) FROM managed_object WHERE {where}",  # noqa: S608
            *args,
        )
        return int(value)

    async def update(
        self, tenant_id: str, object_id: int, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> ManagedObject | None:
        """Set name/type/owner given in ``plain``; merge ``fragments`` (a null removes one)."""
        row = await update_object(self._pool, tenant_id, object_id, plain, fragments)
        return object_of_row(row) if row else None

    async def update_device(
        self, device_id: str, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> bool:
        """:meth:`update` of the device holding ``device_id``: one statement, no row back."""
        status = await self._pool.execute(
            f"""
            UPDATE managed_object m
               SET name = CASE WHEN $2 THEN $3 ELSE m.name END,
                   type = CASE WHEN $4 THEN $5 ELSE m.type END,
                   owner = CASE WHEN $6 THEN $7 ELSE m.owner END,
                   fragments = (m.fragments || $8::jsonb) - $9::text[],
                   last_updated = now()
              FROM (SELECT tenant_id, managed_object_id FROM external_id
                     WHERE type = '{DEVICE_ID_TYPE}' AND value = $1) e
             WHERE m.id = e.managed_object_id AND m.tenant_id = e.tenant_id
            """,  # noqa: S608 — a constant; literal, so that the partial unique index serves
            device_id,
            *_update_args(plain, fragments),
        )
        return bool(status.endswith(" 1"))

    async def delete(
        self,
        tenant_id: str,
        object_id: int,
        *,
        through: frozenset[str] = frozenset(),
        removed_by: str | None = None,
    ) -> Deleted | None:
        """Delete the object and every descendant reached through the kinds of child
        reference in ``through`` (:func:`~fleetgate.domain.inventory.deletion_reach`), in
        one transaction; None if it did not exist. A deleted child device whose gateway
        stays is recorded as removed from it (``deleted``, by ``removed_by``), so that the
        gateway does not bring it back."""
        async with self._pool.acquire() as conn, conn.transaction():
            if through:
                rows = await conn.fetch(
                    """
                    WITH RECURSIVE tree(id) AS (
                        SELECT id FROM managed_object WHERE tenant_id = $1 AND id = $2
                        UNION
                        SELECT c.child_id FROM managed_object_child c
                          JOIN tree t ON c.parent_id = t.id
                          JOIN managed_object m ON m.id = c.child_id AND m.tenant_id = $1
                         WHERE c.kind = ANY($3)
                    )
                    SELECT id FROM tree
                    """,
                    tenant_id,
                    object_id,
                    sorted(through),
                )
                ids = [r["id"] for r in rows]
            else:
                ids = [object_id]
            device_ids = await conn.fetch(
                "SELECT value FROM external_id WHERE tenant_id = $1 AND managed_object_id = ANY($2)"
                " AND type = $3",
                tenant_id,
                ids,
                DEVICE_ID_TYPE,
            )
            files = await conn.fetch(
                "SELECT DISTINCT sha256 FROM binary_file WHERE managed_object_id = ANY($1)", ids
            )
            detached = await conn.fetch(
                "SELECT e.value FROM managed_object_child c"
                "  JOIN external_id e ON e.managed_object_id = c.child_id"
                "   AND e.tenant_id = $1 AND e.type = $3"
                " WHERE c.kind = 'childDevices' AND c.parent_id = ANY($2)"
                "   AND NOT c.child_id = ANY($2) ORDER BY e.value",
                tenant_id,
                ids,
                DEVICE_ID_TYPE,
            )
            await conn.execute(
                """
                INSERT INTO removed_child (gateway_id, device_id, removed_by, how)
                SELECT c.parent_id, e.value, $3, 'deleted'
                  FROM managed_object_child c
                  JOIN external_id e ON e.managed_object_id = c.child_id
                   AND e.tenant_id = $1 AND e.type = 'c8y_Serial'
                 WHERE c.kind = 'childDevices' AND c.child_id = ANY($2)
                   AND NOT c.parent_id = ANY($2)
                ON CONFLICT (gateway_id, device_id) DO UPDATE
                   SET removed_at = now(), removed_by = EXCLUDED.removed_by, how = EXCLUDED.how
                """,
                tenant_id,
                ids,
                removed_by,
            )
            status = await conn.execute(
                "DELETE FROM managed_object WHERE tenant_id = $1 AND id = ANY($2)", tenant_id, ids
            )
        if status.endswith(" 0"):
            return None
        return Deleted(
            [r["value"] for r in device_ids],
            [r["sha256"] for r in files],
            [r["value"] for r in detached],
        )

    async def is_binary(self, tenant_id: str, object_id: int) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT 1 FROM managed_object m JOIN binary_file b ON b.managed_object_id = m.id"
                " WHERE m.tenant_id = $1 AND m.id = $2",
                tenant_id,
                object_id,
            )
        )

    # -- child references ----------------------------------------------------------------

    async def add_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        """Reference ``child_id`` from ``parent_id``; False when either is not in the tenant.
        Adding a reference that exists changes nothing."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetch(
                "SELECT id FROM managed_object WHERE tenant_id = $1 AND id = ANY($2) FOR SHARE",
                tenant_id,
                [parent_id, child_id],
            )
            if len(found) != 2:
                return False
            await conn.execute(
                "INSERT INTO managed_object_child (parent_id, child_id, kind)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                parent_id,
                child_id,
                kind,
            )
        return True

    async def create_child(
        self,
        tenant_id: str,
        parent_id: int,
        kind: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject | None:
        """A new managed object referenced from ``parent_id``, in one transaction; None when
        the parent is not in the tenant."""
        async with self._pool.acquire() as conn, conn.transaction():
            parent = await conn.fetchval(
                "SELECT 1 FROM managed_object WHERE tenant_id = $1 AND id = $2 FOR SHARE",
                tenant_id,
                parent_id,
            )
            if not parent:
                return None
            row = await insert_object(
                conn,
                tenant_id,
                name=name,
                type=type,
                owner=owner,
                fragments=_without_nulls(fragments),
            )
            await conn.execute(
                "INSERT INTO managed_object_child (parent_id, child_id, kind) VALUES ($1, $2, $3)",
                parent_id,
                row["id"],
                kind,
            )
        return object_of_row(row)

    async def children(
        self, tenant_id: str, parent_id: int, kind: str, offset: int, limit: int
    ) -> list[ManagedObject]:
        rows = await self._pool.fetch(
            "SELECT m.* FROM managed_object_child c JOIN managed_object m ON m.id = c.child_id"
            " WHERE c.parent_id = $2 AND c.kind = $3 AND m.tenant_id = $1"
            " ORDER BY m.id OFFSET $4 LIMIT $5",
            tenant_id,
            parent_id,
            kind,
            offset,
            limit,
        )
        return [object_of_row(r) for r in rows]

    async def count_children(self, tenant_id: str, parent_id: int, kind: str) -> int:
        value = await self._pool.fetchval(
            "SELECT count(*) FROM managed_object_child c JOIN managed_object m ON m.id = c.child_id"
            " WHERE c.parent_id = $2 AND c.kind = $3 AND m.tenant_id = $1",
            tenant_id,
            parent_id,
            kind,
        )
        return int(value)

    async def child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> ManagedObject | None:
        row = await self._pool.fetchrow(
            "SELECT m.* FROM managed_object_child c JOIN managed_object m ON m.id = c.child_id"
            " WHERE c.parent_id = $2 AND c.kind = $3 AND c.child_id = $4 AND m.tenant_id = $1",
            tenant_id,
            parent_id,
            kind,
            child_id,
        )
        return object_of_row(row) if row else None

    async def remove_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        status = await self._pool.execute(
            "DELETE FROM managed_object_child c USING managed_object m"
            " WHERE c.parent_id = $2 AND c.kind = $3 AND c.child_id = $4"
            " AND m.id = c.parent_id AND m.tenant_id = $1",
            tenant_id,
            parent_id,
            kind,
            child_id,
        )
        return not status.endswith(" 0")

    async def references(
        self, tenant_id: str, object_ids: Sequence[int], *, children: bool = True
    ) -> dict[int, list[Reference]]:
        """The references from and to each of the objects, as each shows them
        (``childAdditions`` … for its children, ``additionParents`` … for its parents), in
        one query; without ``children`` only the parents. Ordered by kind, then the other
        object's id."""
        rows = await self._pool.fetch(
            """
            SELECT c.parent_id AS object_id, c.kind, c.child_id AS other, m.name,
                   true AS is_child
              FROM managed_object_child c JOIN managed_object m ON m.id = c.child_id
             WHERE $3 AND c.parent_id = ANY($2) AND m.tenant_id = $1
            UNION ALL
            SELECT c.child_id, c.kind, c.parent_id, m.name, false
              FROM managed_object_child c JOIN managed_object m ON m.id = c.parent_id
             WHERE c.child_id = ANY($2) AND m.tenant_id = $1
             ORDER BY 1, 2, 3, 5 DESC
            """,
            tenant_id,
            list(object_ids),
            children,
        )
        found: dict[int, list[Reference]] = {i: [] for i in object_ids}
        for r in rows:
            kind = r["kind"] if r["is_child"] else PARENT_KINDS[r["kind"]]
            found[r["object_id"]].append(Reference(kind, r["other"], r["name"]))
        return found

    async def set_connection(
        self,
        tenant_id: str,
        device_id: str,
        fragments: dict[str, Any],
        *,
        connection_id: str | None,
        only_if_connection: str | None = None,
        at: datetime,
    ) -> bool:
        """Merge connection fragments into the device with external id ``device_id``.

        With ``only_if_connection``, change nothing unless the device is still on that
        connection (a late disconnect of an older connection must not win).
        """
        status = await self._pool.execute(
            f"""
            UPDATE managed_object m
               SET fragments = {keep_disabled("m", "$3", "$7")}, connection_id = $4,
                   last_updated = $6
              FROM external_id e
             WHERE e.tenant_id = $1 AND e.type = 'c8y_Serial' AND e.value = $2
               AND m.id = e.managed_object_id
               AND ($5::text IS NULL OR m.connection_id = $5)
            """,  # noqa: S608 — fixed fragments
            tenant_id,
            device_id,
            json.dumps(fragments),
            connection_id,
            only_if_connection,
            at,
            json.dumps(DISABLED_SHOWN),
        )
        return not status.endswith(" 0")

    async def connected_devices(self) -> list[tuple[str, str]]:
        """(tenant, device id) of every device the database believes connected."""
        rows = await self._pool.fetch(
            """
            SELECT e.tenant_id, e.value FROM managed_object m
              JOIN external_id e ON e.managed_object_id = m.id AND e.type = 'c8y_Serial'
             WHERE m.connection_id IS NOT NULL
            """
        )
        return [(r["tenant_id"], r["value"]) for r in rows]


def _without_nulls(fragments: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fragments.items() if v is not None}
