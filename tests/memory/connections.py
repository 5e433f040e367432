"""Gateway children's online and offline (``db/connections.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fleetgate.domain import lifecycle
from fleetgate.domain.connections import (
    C8Y_CONNECTION,
    FRAGMENT,
    ConnectionFacts,
    Reported,
    decide,
)
from fleetgate.domain.device_messages import ConnectivityReport
from fleetgate.domain.gateways import CHILD_DEVICES

from memory.database import ChildReportRow, MemoryDatabase, jsonb, queries


@queries
class MemoryChildConnections:
    """A :class:`~fleetgate.services.ports.ChildConnections` (``PgChildConnections``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def report(
        self, reports: Sequence[ConnectivityReport], at: datetime
    ) -> list[ConnectivityReport]:
        """Keep each child's last report and bring those children up to date; the reports
        about a device that is not the reporting gateway's child."""
        refused: list[ConnectivityReport] = []
        kept: set[int] = set()
        for report in reports:
            pair = self._attached_pair(report.gateway, report.device_id)
            if pair is None:
                refused.append(report)
                continue
            gateway_id, child_id = pair
            self._db.child_reports[child_id] = ChildReportRow(
                gateway_id, report.connected, report.reason, at
            )
            kept.add(child_id)
        self._bring_up_to_date(sorted(kept), at)
        return refused

    def _attached_pair(self, gateway: str, child: str) -> tuple[int, int] | None:
        """(gateway object, child object) when ``child`` is ``gateway``'s child, in the
        gateway's tenant."""
        found = next(
            ((t, o) for (t, kind, v), o in self._db.external_ids.items()
             if kind == "c8y_Serial" and v == gateway),
            None,
        )  # fmt: skip
        if found is None:
            return None
        tenant_id, gateway_id = found
        child_id = self._db.object_of(tenant_id, child)
        if child_id is None or (gateway_id, CHILD_DEVICES, child_id) not in self._db.references:
            return None
        return gateway_id, child_id

    async def refresh(self, devices: Sequence[tuple[str, str]], at: datetime) -> None:
        named = {o for t, d in devices if (o := self._db.object_of(t, d)) is not None}
        targets = {c for p, k, c in self._db.references if p in named and k == CHILD_DEVICES}
        targets |= {o for o in named if self._is_target(o)}
        self._bring_up_to_date(sorted(targets), at)

    async def refresh_all(self, at: datetime) -> None:
        self._bring_up_to_date(sorted(o for o in self._db.objects if self._is_target(o)), at)

    async def attached(self) -> list[tuple[str, str]]:
        pairs = [
            (child, gateway)
            for p, k, c in self._db.references
            if k == CHILD_DEVICES
            and (child := self._db.serial_of(c)) is not None
            and (gateway := self._db.serial_of(p)) is not None
        ]
        return sorted(pairs)

    def _is_target(self, object_id: int) -> bool:
        """A child, or a device that still shows a gateway."""
        shown = self._db.objects[object_id].fragments.get(FRAGMENT)
        return self._db.parent_of(object_id) is not None or (
            isinstance(shown, dict) and "gateway" in shown
        )

    def _bring_up_to_date(self, ids: list[int], at: datetime) -> None:
        for object_id in ids:
            row = self._db.objects[object_id]
            parent = self._db.parent_of(object_id)
            report = self._db.child_reports.get(object_id)
            if report is not None and report.gateway_id != parent:
                del self._db.child_reports[object_id]  # a former gateway's word
                report = None
            gateway = self._db.serial_of(parent) if parent is not None else None
            shown: dict[str, Any] = {
                k: row.fragments[k]
                for k in (C8Y_CONNECTION, FRAGMENT, lifecycle.FRAGMENT)
                if k in row.fragments
            }
            wanted = decide(
                ConnectionFacts(
                    shown=shown,
                    gateway=gateway,
                    gateway_connected=(
                        gateway is not None
                        and parent is not None
                        and self._db.objects[parent].connection_id is not None
                    ),
                    reported=Reported(report.connected, report.reason) if report else None,
                    own_connection=row.connection_id is not None,
                    disabled=row.disabled,
                    gateway_disabled=(
                        gateway is not None
                        and parent is not None
                        and self._db.objects[parent].disabled
                    ),
                )
            )
            if wanted is not None:
                row.fragments = {**row.fragments, **jsonb(wanted.fragments(at))}
                row.connection_id = None
                row.last_updated = at
