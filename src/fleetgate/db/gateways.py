"""Gateways' children in PostgreSQL: a gateway's declaration of a child, decided by
:func:`fleetgate.domain.gateways.decide_child` under the child id's lock and applied in
the same transaction, and which children a gateway speaks for."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.db.device_ids import claim_device_id
from fleetgate.db.inventory import insert_object, update_object
from fleetgate.db.tenant_options import child_auto_registration_of
from fleetgate.domain.device_messages import Declaration
from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict
from fleetgate.domain.gateways import (
    CHILD_DEVICES,
    ChildClaim,
    ChildDeclared,
    Holder,
    Removal,
    Verdict,
    child_registration,
    decide_child,
    gateway_auto_registration,
)

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: The device id of the gateway that the object ``m`` is a child of, if any.
GATEWAY_OF = """
(SELECT g.value FROM managed_object_child c
   JOIN external_id g ON g.managed_object_id = c.parent_id AND g.type = 'c8y_Serial'
  WHERE c.child_id = m.id AND c.kind = 'childDevices')
"""


class PgChildren:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def declare_child(
        self, declaration: Declaration, connection: dict[str, Any], at: datetime
    ) -> ChildDeclared | None:
        """Apply a gateway's declaration of a child: merged into the child when it is the
        gateway's already, registering it first when the rules allow (with
        ``connection``'s fragments), or refused with nothing changed. None when the
        gateway itself is not registered (yet)."""
        gateway, child = declaration.gateway, declaration.device_id
        assert gateway is not None
        async with self._pool.acquire() as conn, conn.transaction():
            # The gateway's row is locked first (an operator attaching the gateway below
            # another one waits, and vice versa), and its parent read after the lock:
            # nobody makes it a child while it registers one (one level). Its tenant is
            # read from the locked row (the newest version once the lock is ours): a
            # migration that moved it meanwhile (decision 0014) is seen.
            found = await conn.fetchrow(
                """
                SELECT m.tenant_id, m.id, m.fragments
                  FROM external_id e JOIN managed_object m ON m.id = e.managed_object_id
                 WHERE e.type = $1 AND e.value = $2
                   FOR NO KEY UPDATE OF m
                """,
                DEVICE_ID_TYPE,
                gateway,
            )
            if found is None:
                return None
            parent = await conn.fetchval(
                f"SELECT {GATEWAY_OF} FROM managed_object m WHERE m.id = $1",  # noqa: S608
                found["id"],
            )
            tenant_id: str = found["tenant_id"]
            claim = ChildClaim(
                gateway=gateway,
                tenant_id=tenant_id,
                gateway_object_id=found["id"],
                gateway_parent=parent,
                held_elsewhere=not await _claim(conn, tenant_id, child),
                holder=await _holder(conn, tenant_id, child),
                removal=await _removal(conn, found["id"], child),
                auto_registration=gateway_auto_registration(json.loads(found["fragments"]))
                and await child_auto_registration_of(conn, tenant_id),
            )
            decision = decide_child(claim, child)
            if decision.verdict is Verdict.REFUSED:
                return ChildDeclared(decision, tenant_id)
            if decision.verdict is Verdict.KNOWN:
                assert claim.holder is not None
                object_id = claim.holder.object_id
                await update_object(
                    conn, tenant_id, object_id, declaration.plain, declaration.fragments
                )
                return ChildDeclared(decision, tenant_id, object_id)
            object_id = await _register(conn, claim, declaration, connection, at)
        return ChildDeclared(decision, tenant_id, object_id)

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs are a gateway and its child now."""
        if not pairs:
            return set()
        rows = await self._pool.fetch(
            """
            SELECT ce.value AS child, ge.value AS gateway
              FROM unnest($1::text[], $2::text[]) AS p(child, gateway)
              JOIN external_id ce ON ce.type = 'c8y_Serial' AND ce.value = p.child
              JOIN managed_object_child c
                ON c.child_id = ce.managed_object_id AND c.kind = 'childDevices'
              JOIN external_id ge ON ge.managed_object_id = c.parent_id
                                 AND ge.type = 'c8y_Serial' AND ge.value = p.gateway
            """,
            [child for child, _ in pairs],
            [gateway for _, gateway in pairs],
        )
        return {(r["child"], r["gateway"]) for r in rows}

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (child, gateway) pairs name a gateway's child that is disabled."""
        if not pairs:
            return set()
        rows = await self._pool.fetch(
            """
            SELECT ce.value AS child, ge.value AS gateway
              FROM unnest($1::text[], $2::text[]) AS p(child, gateway)
              JOIN external_id ce ON ce.type = 'c8y_Serial' AND ce.value = p.child
              JOIN managed_object m ON m.id = ce.managed_object_id AND m.disabled
              JOIN managed_object_child c
                ON c.child_id = m.id AND c.kind = 'childDevices'
              JOIN external_id ge ON ge.managed_object_id = c.parent_id
                                 AND ge.type = 'c8y_Serial' AND ge.value = p.gateway
            """,
            [child for child, _ in pairs],
            [gateway for _, gateway in pairs],
        )
        return {(r["child"], r["gateway"]) for r in rows}


async def _claim(conn: Conn, tenant_id: str, child: str) -> bool:
    """Lock the child's id for this transaction; False when another tenant holds it."""
    try:
        await claim_device_id(conn, tenant_id, child)
    except Conflict:
        return False
    return True


async def _holder(conn: Conn, tenant_id: str, child: str) -> Holder | None:
    row = await conn.fetchrow(
        f"""
        SELECT m.id, m.disabled, {GATEWAY_OF} AS gateway
          FROM external_id e JOIN managed_object m ON m.id = e.managed_object_id
         WHERE e.tenant_id = $1 AND e.type = $2 AND e.value = $3
        """,  # noqa: S608 — fixed fragments
        tenant_id,
        DEVICE_ID_TYPE,
        child,
    )
    return Holder(row["id"], row["gateway"], row["disabled"]) if row else None


async def _removal(conn: Conn, gateway_object_id: int, child: str) -> Removal | None:
    row = await conn.fetchrow(
        "SELECT how, removed_at FROM removed_child WHERE gateway_id = $1 AND device_id = $2",
        gateway_object_id,
        child,
    )
    return Removal(row["how"], row["removed_at"]) if row else None


async def _register(
    conn: Conn,
    claim: ChildClaim,
    declaration: Declaration,
    connection: dict[str, Any],
    at: datetime,
) -> int:
    """The new child: its object (declared fragments merged), its device id and its
    reference from the gateway, in the caller's transaction."""
    child = declaration.device_id
    plain = child_registration(child, claim.gateway, declaration.plain)
    declared = {k: v for k, v in declaration.fragments.items() if v is not None}
    row = await insert_object(
        conn,
        claim.tenant_id,
        name=plain["name"],
        type=plain["type"],
        owner=plain["owner"],
        fragments={"c8y_IsDevice": {}, **declared, **connection},
        at=at,
    )
    object_id: int = row["id"]
    await conn.execute(
        "INSERT INTO external_id (tenant_id, type, value, managed_object_id)"
        " VALUES ($1, $2, $3, $4)",
        claim.tenant_id,
        DEVICE_ID_TYPE,
        child,
        object_id,
    )
    await conn.execute(
        "INSERT INTO managed_object_child (parent_id, kind, child_id) VALUES ($1, $2, $3)",
        claim.gateway_object_id,
        CHILD_DEVICES,
        object_id,
    )
    return object_id
