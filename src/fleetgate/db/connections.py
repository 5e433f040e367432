"""Gateway children's online and offline in PostgreSQL: what gateways reported about their
children (``child_connection``, migration 0012), the connection each child shows, and
which devices the broker must keep from logging in by themselves (decision 0008).

Children are brought up to date set-based: one transaction of a few statements however
many children a gateway has, never a round trip per child. What to show is decided by
:func:`fleetgate.domain.connections.decide`; only rows whose shown state changes are
written.

Concurrency (several service instances, events and reports in parallel): every writer of
a child's connection first locks the children's managed-object rows (in id order, so two
writers never deadlock), and only then reads what decides — in a new statement, which
sees everything committed before it got the locks. A report is kept under the lock of
its child; a gateway's own connection is committed before its children are brought up to
date. So a child never ends showing a state older than the facts it was decided from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from fleetgate.domain import lifecycle
from fleetgate.domain.connections import (
    C8Y_CONNECTION,
    FRAGMENT,
    ConnectionFacts,
    Reported,
    decide,
)
from fleetgate.domain.device_messages import ConnectivityReport

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

#: Children brought up to date per transaction when all of them are (after a reconnect).
_CHUNK = 1000

_LOCK = """
SELECT id FROM managed_object WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE
"""

#: The named devices (tenant, device id) that are children, or still show a gateway, and
#: every child of theirs.
_TARGETS = """
WITH named AS (
    SELECT e.managed_object_id AS id
      FROM unnest($1::text[], $2::text[]) AS n(tenant_id, device_id)
      JOIN external_id e
        ON e.tenant_id = n.tenant_id AND e.type = 'c8y_Serial' AND e.value = n.device_id
)
SELECT c.child_id AS id FROM managed_object_child c JOIN named ON c.parent_id = named.id
 WHERE c.kind = 'childDevices'
UNION
SELECT m.id FROM managed_object m JOIN named ON named.id = m.id
 WHERE m.fragments -> 'fleetgate_Connection' ? 'gateway'
    OR EXISTS (SELECT 1 FROM managed_object_child c
                WHERE c.child_id = m.id AND c.kind = 'childDevices')
"""

#: Every child, and every device that still shows a gateway.
_ALL_TARGETS = """
SELECT child_id AS id FROM managed_object_child WHERE kind = 'childDevices'
UNION
SELECT id FROM managed_object WHERE fragments -> 'fleetgate_Connection' ? 'gateway'
ORDER BY id
"""

#: A former gateway's word no longer counts (the child was detached or moved).
_FORGET_FORMER_REPORTS = """
DELETE FROM child_connection r
 WHERE r.child_id = ANY($1::bigint[])
   AND NOT EXISTS (SELECT 1 FROM managed_object_child c
                    WHERE c.child_id = r.child_id AND c.parent_id = r.gateway_id
                      AND c.kind = 'childDevices')
"""

#: What decides each device's connection (a parent without a device id is no gateway).
_FACTS = """
SELECT m.id,
       m.fragments -> 'c8y_Connection' AS c8y_connection,
       m.fragments -> 'fleetgate_Connection' AS fleetgate_connection,
       m.fragments -> 'fleetgate_Lifecycle' AS fleetgate_lifecycle,
       m.connection_id IS NOT NULL AS own_connection,
       m.disabled,
       coalesce(g.disabled, false) AS gateway_disabled,
       ge.value AS gateway,
       g.connection_id IS NOT NULL AS gateway_connected,
       r.connected AS reported,
       r.reason AS reported_reason
  FROM managed_object m
  LEFT JOIN managed_object_child c ON c.child_id = m.id AND c.kind = 'childDevices'
  LEFT JOIN managed_object g ON g.id = c.parent_id
  LEFT JOIN external_id ge ON ge.managed_object_id = g.id AND ge.type = 'c8y_Serial'
  LEFT JOIN child_connection r ON r.child_id = m.id AND r.gateway_id = c.parent_id
 WHERE m.id = ANY($1::bigint[])
"""

#: A child is never on a connection of its own: a late event of a session it had before
#: it was attached must find nothing to change.
_SHOW = """
UPDATE managed_object m
   SET fragments = m.fragments || u.fragments::jsonb, connection_id = NULL, last_updated = $3
  FROM unnest($1::bigint[], $2::text[]) AS u(id, fragments)
 WHERE m.id = u.id
"""

#: (gateway, child) pairs that name an attached child: both device ids in one tenant.
_ATTACHED_PAIRS = """
SELECT n.gateway, n.child, c.parent_id AS gateway_id, c.child_id
  FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS p(gateway, child)) AS n
  JOIN external_id g ON g.type = 'c8y_Serial' AND g.value = n.gateway
  JOIN external_id e
    ON e.tenant_id = g.tenant_id AND e.type = 'c8y_Serial' AND e.value = n.child
  JOIN managed_object_child c
    ON c.parent_id = g.managed_object_id AND c.child_id = e.managed_object_id
   AND c.kind = 'childDevices'
"""

#: Keep the last report of each child, if the child is (still) the gateway's.
_KEEP_REPORTS = """
INSERT INTO child_connection (child_id, gateway_id, connected, reason, reported_at)
SELECT u.child_id, u.gateway_id, u.connected, u.reason, $5
  FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::text[])
       AS u(child_id, gateway_id, connected, reason)
 WHERE EXISTS (SELECT 1 FROM managed_object_child c
                WHERE c.parent_id = u.gateway_id AND c.child_id = u.child_id
                  AND c.kind = 'childDevices')
ON CONFLICT (child_id) DO UPDATE
   SET gateway_id = EXCLUDED.gateway_id, connected = EXCLUDED.connected,
       reason = EXCLUDED.reason, reported_at = EXCLUDED.reported_at
RETURNING child_id
"""

_ATTACHED = """
SELECT ce.value AS child, ge.value AS gateway
  FROM managed_object_child c
  JOIN external_id ce ON ce.managed_object_id = c.child_id AND ce.type = 'c8y_Serial'
  JOIN external_id ge ON ge.managed_object_id = c.parent_id AND ge.type = 'c8y_Serial'
 WHERE c.kind = 'childDevices'
 ORDER BY ce.value
"""


class PgChildConnections:
    """A :class:`~fleetgate.services.ports.ChildConnections` on PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def report(
        self, reports: Sequence[ConnectivityReport], at: datetime
    ) -> list[ConnectivityReport]:
        """Keep what gateways reported of their children (the last report of a child in
        ``reports`` wins) and bring those children's connection up to date, in one
        transaction; the reports refused because the device is not (or no longer) that
        gateway's child — nothing of them is kept."""
        if not reports:
            return []
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _ATTACHED_PAIRS, [r.gateway for r in reports], [r.device_id for r in reports]
            )
            pairs = {(r["gateway"], r["child"]): (r["gateway_id"], r["child_id"]) for r in rows}
            await conn.execute(_LOCK, sorted({child for _, child in pairs.values()}))
            last: dict[int, tuple[int, ConnectivityReport]] = {}
            for report in reports:
                found = pairs.get((report.gateway, report.device_id))
                if found is not None:
                    last[found[1]] = (found[0], report)
            kept = {
                row["child_id"]
                for row in await conn.fetch(
                    _KEEP_REPORTS,
                    list(last),
                    [gateway_id for gateway_id, _ in last.values()],
                    [r.connected for _, r in last.values()],
                    [r.reason for _, r in last.values()],
                    at,
                )
            }
            await _bring_up_to_date(conn, sorted(kept), at)
        return [
            r
            for r in reports
            if (found := pairs.get((r.gateway, r.device_id))) is None or found[1] not in kept
        ]

    async def refresh(self, devices: Sequence[tuple[str, str]], at: datetime) -> None:
        """Bring up to date the connection shown by these devices ((tenant, device id))
        that are children or still show a gateway, and by every child of theirs."""
        if not devices:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                _TARGETS, [tenant for tenant, _ in devices], [device for _, device in devices]
            )
            await _bring_up_to_date(conn, sorted(r["id"] for r in rows), at)

    async def refresh_all(self, at: datetime) -> None:
        """The same for every child and every device that still shows a gateway, in
        transactions of a bounded number of devices."""
        ids = [r["id"] for r in await self._pool.fetch(_ALL_TARGETS)]
        for start in range(0, len(ids), _CHUNK):
            async with self._pool.acquire() as conn, conn.transaction():
                await _bring_up_to_date(conn, ids[start : start + _CHUNK], at)

    async def attached(self) -> list[tuple[str, str]]:
        """(child device id, gateway device id) of every attached child, in every tenant."""
        return [(r["child"], r["gateway"]) for r in await self._pool.fetch(_ATTACHED)]


async def _bring_up_to_date(conn: Conn, ids: list[int], at: datetime) -> None:
    """Lock these managed objects, then show each one's connection as decided from what
    is committed now (inside the caller's transaction; ``ids`` sorted)."""
    if not ids:
        return
    await conn.execute(_LOCK, ids)
    await conn.execute(_FORGET_FORMER_REPORTS, ids)
    changed: list[tuple[int, str]] = []
    for row in await conn.fetch(_FACTS, ids):
        wanted = decide(_facts(row))
        if wanted is not None:
            changed.append((row["id"], json.dumps(wanted.fragments(at))))
    if changed:
        await conn.execute(_SHOW, [i for i, _ in changed], [f for _, f in changed], at)


def _facts(row: asyncpg.Record) -> ConnectionFacts:
    shown: dict[str, Any] = {}
    for key, column in (
        (C8Y_CONNECTION, "c8y_connection"),
        (FRAGMENT, "fleetgate_connection"),
        (lifecycle.FRAGMENT, "fleetgate_lifecycle"),
    ):
        if row[column] is not None:
            shown[key] = json.loads(row[column])
    gateway = row["gateway"]
    reported = row["reported"]
    return ConnectionFacts(
        shown=shown,
        gateway=gateway,
        gateway_connected=bool(row["gateway_connected"]) and gateway is not None,
        reported=Reported(reported, row["reported_reason"]) if reported is not None else None,
        own_connection=row["own_connection"],
        disabled=row["disabled"],
        gateway_disabled=row["gateway_disabled"] and gateway is not None,
    )
