"""How operations are read from PostgreSQL: the columns an :class:`Operation` shows of
its device, the rule that a device id still belongs to the operation's device, a row as
an :class:`Operation` or the :class:`OperationState` a decision needs, and a filter as
a WHERE clause. Shared by :mod:`fleetgate.db.operations` and the rollout steps."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from fleetgate.db.gateways import GATEWAY_OF
from fleetgate.domain.operations import Operation, OperationFilter, OperationState, Status

#: The gateway its device is a child of now, by device id (``m``: the device's object).
GATEWAY = f"{GATEWAY_OF} AS gateway"
#: Whether the device ``m``, or its gateway, is disabled: its commands are held back.
HELD = """
(m.disabled OR EXISTS (SELECT 1 FROM managed_object_child c
                         JOIN managed_object g ON g.id = c.parent_id
                        WHERE c.child_id = m.id AND c.kind = 'childDevices' AND g.disabled))
"""
#: What an :class:`Operation` shows of its device, beside the operation's own columns.
DEVICE_COLUMNS = f"m.name AS device_name, {GATEWAY}, {HELD} AS held"

#: The device's columns come from its managed object only while it is in the operation's
#: tenant: the history of a device that moved to another tenant stays with the source
#: (decision 0014) and shows nothing of the device's life in the target.
DEVICE_JOIN = "LEFT JOIN managed_object m ON m.id = o.device_id AND m.tenant_id = o.tenant_id"

SELECT = f"""
SELECT o.*, {DEVICE_COLUMNS}
  FROM operation o {DEVICE_JOIN}
"""  # noqa: S608 — fixed fragments

#: True for an operation whose device still holds the device id the operation was made
#: for (in the operation's tenant): only then may that id receive its command or report
#: its status. An id that was taken from the device and given to another — in another
#: tenant, perhaps — never reaches the old device's operations (decision 0006).
BOUND = """
EXISTS (SELECT 1 FROM external_id e
         WHERE e.type = 'c8y_Serial' AND e.value = o.serial
           AND e.tenant_id = o.tenant_id AND e.managed_object_id = o.device_id)
"""


def state_of_row(row: asyncpg.Record) -> OperationState:
    return OperationState(
        id=row["id"],
        tenant_id=row["tenant_id"],
        serial=row["serial"],
        status=Status(row["status"]),
        fragment_type=row["fragment_type"],
        has_snapshot=row["snapshot_id"] is not None,
        bound=row["bound"],
        gateway=row["gateway"],
    )


def operation_of_row(row: asyncpg.Record) -> Operation:
    return Operation(
        id=row["id"],
        tenant_id=row["tenant_id"],
        device_id=row["device_id"],
        serial=row["serial"],
        device_name=row["device_name"],
        fragment_type=row["fragment_type"],
        status=Status(row["status"]),
        failure_reason=row["failure_reason"],
        description=row["description"],
        fragments=json.loads(row["fragments"]),
        bulk_operation_id=row["bulk_operation_id"],
        creation_time=row["creation_time"],
        status_time=row["status_time"],
        gateway=row["gateway"],
        held=row["held"],
    )


def where_clause(tenant_id: str, flt: OperationFilter) -> tuple[str, list[Any]]:
    clauses = ["o.tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.format(f"${len(args)}"))

    if flt.device_id is not None:
        add("o.device_id = {}", flt.device_id)
    if flt.statuses:
        add("o.status = ANY({})", [str(s) for s in flt.statuses])
    if flt.fragment_type is not None:
        add("o.fragments ? {}", flt.fragment_type)
    if flt.bulk_operation_id is not None:
        add("o.bulk_operation_id = {}", flt.bulk_operation_id)
    if flt.date_from is not None:
        add("o.creation_time >= {}", flt.date_from)
    if flt.date_to is not None:
        add("o.creation_time <= {}", flt.date_to)
    return " AND ".join(clauses), args
