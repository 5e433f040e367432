"""Gateways' children (``db/gateways.py``): declarations decided by the domain's rules
under the same reads as the twin's, applied all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fleetgate.domain.device_messages import Declaration
from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict
from fleetgate.domain.gateways import (
    CHILD_DEVICES,
    TENANT_OPTION,
    ChildClaim,
    ChildDeclared,
    Holder,
    Removal,
    Verdict,
    child_registration,
    decide_child,
    gateway_auto_registration,
)

from memory.database import MemoryDatabase, merged, queries, without_nulls


@queries
class MemoryChildren:
    """A :class:`~fleetgate.services.gateways.ChildStore` (``PgChildren``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def _device(self, device_id: str) -> tuple[str, int] | None:
        """(tenant, object id) of the device holding ``device_id``, in any tenant."""
        for (tenant, kind, value), object_id in self._db.external_ids.items():
            if kind == DEVICE_ID_TYPE and value == device_id:
                return tenant, object_id
        return None

    async def declare_child(
        self, declaration: Declaration, connection: dict[str, Any], at: datetime
    ) -> ChildDeclared | None:
        gateway, child = declaration.gateway, declaration.device_id
        assert gateway is not None
        found = self._device(gateway)
        if found is None:
            return None
        tenant_id, gateway_id = found
        try:
            self._db.claim_device_id(tenant_id, child)
            held_elsewhere = False
        except Conflict:
            held_elsewhere = True
        holder_object = self._db.external_ids.get((tenant_id, DEVICE_ID_TYPE, child))
        removal = self._db.removed_children.get((gateway_id, child))
        category, key = TENANT_OPTION
        claim = ChildClaim(
            gateway=gateway,
            tenant_id=tenant_id,
            gateway_object_id=gateway_id,
            gateway_parent=self._db.gateway_of(gateway_id),
            held_elsewhere=held_elsewhere,
            holder=(
                Holder(
                    holder_object,
                    self._db.gateway_of(holder_object),
                    self._db.objects[holder_object].disabled,
                )
                if holder_object is not None
                else None
            ),
            removal=Removal(removal.how, removal.removed_at) if removal is not None else None,
            auto_registration=gateway_auto_registration(self._db.objects[gateway_id].fragments)
            and self._db.tenant_options.get((tenant_id, category, key)) != "false",
        )
        decision = decide_child(claim, child)
        if decision.verdict is Verdict.REFUSED:
            return ChildDeclared(decision, tenant_id)
        if decision.verdict is Verdict.KNOWN:
            assert claim.holder is not None
            row = self._db.objects[claim.holder.object_id]
            row.fragments = merged(row.fragments, declaration.fragments)
            row.name = declaration.plain.get("name", row.name)
            row.type = declaration.plain.get("type", row.type)
            row.last_updated = self._db.clock()
            return ChildDeclared(decision, tenant_id, row.id)
        plain = child_registration(child, gateway, declaration.plain)
        with self._db.transaction():
            row = self._db.insert_object(
                tenant_id,
                name=plain["name"],
                type=plain["type"],
                owner=plain["owner"],
                fragments={
                    "c8y_IsDevice": {},
                    **without_nulls(declaration.fragments),
                    **connection,
                },
                at=at,
            )
            self._db.external_ids[(tenant_id, DEVICE_ID_TYPE, child)] = row.id
            self._db.references.add((gateway_id, CHILD_DEVICES, row.id))
        return ChildDeclared(decision, tenant_id, row.id)

    async def attached(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for child, gateway in pairs:
            holder = self._device(child)
            if holder is not None and self._db.gateway_of(holder[1]) == gateway:
                found.add((child, gateway))
        return found

    async def disabled_children(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        return {
            (child, gateway)
            for child, gateway in await self.attached(pairs)
            if (found := self._device(child)) is not None and self._db.objects[found[1]].disabled
        }
