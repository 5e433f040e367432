"""Managed objects and their references (``db/inventory.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fleetgate.domain.devices import DEVICE_ID_TYPE, ManagedObject
from fleetgate.domain.inventory import PARENT_KINDS, Deleted, ObjectFilter, Reference
from fleetgate.domain.inventory_query import QueryTarget, matches

from memory.database import (
    MemoryDatabase,
    ObjectRow,
    RemovedChildRow,
    merged,
    page,
    queries,
    without_nulls,
)


def _matches(db: MemoryDatabase, row: ObjectRow, tenant_id: str, flt: ObjectFilter) -> bool:
    references = db.references
    has_child_devices = any(p == row.id and k == "childDevices" for p, k, _ in references)
    return (
        row.tenant_id == tenant_id
        and (flt.type is None or row.type == flt.type)
        and (flt.owner is None or row.owner == flt.owner)
        and (flt.fragment_type is None or flt.fragment_type in row.fragments)
        and (flt.ids is None or row.id in flt.ids)
        and (
            flt.query is None
            or matches(
                flt.query,
                QueryTarget(row.id, row.name, row.type, row.owner, row.fragments),
                lambda group: assets_of(db, group),
            )
        )
        and all((row.id, kind, child) in references for kind, child in flt.parents_of)
        and (flt.device_parent is None or (flt.device_parent, "childDevices", row.id) in references)
        and (flt.has_child_devices is None or flt.has_child_devices == has_child_devices)
        and not (flt.only_roots and any(c == row.id for _, _, c in references))
    )


def assets_of(db: MemoryDatabase, group_id: int) -> frozenset[int]:
    """The ids of the child assets of ``group_id`` (``bygroupid``)."""
    return frozenset(c for p, k, c in db.references if p == group_id and k == "childAssets")


@queries
class MemoryInventory:
    """An :class:`~fleetgate.services.ports.Inventory` (``PgInventory``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def create(
        self,
        tenant_id: str,
        *,
        name: str | None,
        type: str | None,
        owner: str | None,
        fragments: dict[str, Any],
    ) -> ManagedObject:
        row = self._db.insert_object(
            tenant_id, name=name, type=type, owner=owner, fragments=without_nulls(fragments)
        )
        return row.shown()

    async def get(self, tenant_id: str, object_id: int) -> ManagedObject | None:
        found = self._db.object_in(tenant_id, object_id)
        return found.shown() if found else None

    async def find(
        self, tenant_id: str, flt: ObjectFilter, offset: int, limit: int
    ) -> list[ManagedObject]:
        return [o.shown() for o in page(self._found(tenant_id, flt), offset, limit)]

    async def count(self, tenant_id: str, flt: ObjectFilter) -> int:
        return len(self._found(tenant_id, flt))

    def _found(self, tenant_id: str, flt: ObjectFilter) -> list[ObjectRow]:
        return [
            o for _, o in sorted(self._db.objects.items()) if _matches(self._db, o, tenant_id, flt)
        ]

    async def update(
        self, tenant_id: str, object_id: int, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> ManagedObject | None:
        """Set name/type/owner given in ``plain``; merge ``fragments`` (a null removes one)."""
        row = self._db.object_in(tenant_id, object_id)
        if row is None:
            return None
        row.fragments = merged(row.fragments, fragments)
        row.name = plain.get("name", row.name)
        row.type = plain.get("type", row.type)
        row.owner = plain.get("owner", row.owner)
        row.last_updated = self._db.clock()
        return row.shown()

    async def update_device(
        self, device_id: str, plain: dict[str, Any], fragments: dict[str, Any]
    ) -> bool:
        held = [
            (tenant, object_id)
            for (tenant, kind, value), object_id in self._db.external_ids.items()
            if kind == DEVICE_ID_TYPE and value == device_id
        ]
        return bool(held) and await self.update(*held[0], plain, fragments) is not None

    async def delete(
        self,
        tenant_id: str,
        object_id: int,
        *,
        through: frozenset[str] = frozenset(),
        removed_by: str | None = None,
    ) -> Deleted | None:
        """Delete the object and every descendant (in the tenant) through the kinds of
        reference in ``through``; a deleted child device whose gateway stays is recorded as
        removed from it. None if it did not exist."""
        if self._db.object_in(tenant_id, object_id) is None:
            return None
        ids = [object_id]
        for parent in ids:  # the list grows while it is walked: breadth first
            for p, kind, child in sorted(self._db.references):
                if (
                    p == parent
                    and kind in through
                    and child not in ids
                    and self._db.object_in(tenant_id, child)
                ):
                    ids.append(child)
        device_ids = sorted(
            v
            for (t, kind, v), o in self._db.external_ids.items()
            if t == tenant_id and kind == DEVICE_ID_TYPE and o in ids
        )
        files = sorted({f.sha256 for o, f in self._db.binary_files.items() if o in ids})
        detached = sorted(
            serial
            for gateway, kind, child in self._db.references
            if kind == "childDevices" and gateway in ids and child not in ids
            if (serial := self._db.serial_of(child)) is not None
        )
        with self._db.transaction():
            for gateway, kind, child in sorted(self._db.references):
                serial = self._db.serial_of(child)
                if kind == "childDevices" and child in ids and gateway not in ids and serial:
                    self._db.removed_children[(gateway, serial)] = RemovedChildRow(
                        "deleted", self._db.clock(), removed_by
                    )
            self._db.delete_objects(ids)
        return Deleted(device_ids, files, detached)

    async def is_binary(self, tenant_id: str, object_id: int) -> bool:
        return self._db.object_in(tenant_id, object_id) is not None and (
            object_id in self._db.binary_files
        )

    async def references(
        self, tenant_id: str, object_ids: Sequence[int], *, children: bool = True
    ) -> dict[int, list[Reference]]:
        """Every reference from and to each object, as the object shows them (ordered by
        the reference's kind, then the other object's id); without ``children`` only the
        parents."""
        return {i: self._references(tenant_id, i, children) for i in object_ids}

    def _references(self, tenant_id: str, object_id: int, children: bool) -> list[Reference]:
        found: list[tuple[str, int, bool, Reference]] = []
        for parent, kind, child in self._db.references:
            if children and parent == object_id and (other := self._db.object_in(tenant_id, child)):
                found.append((kind, child, False, Reference(kind, child, other.name)))
            if child == object_id and (other := self._db.object_in(tenant_id, parent)):
                shown = Reference(PARENT_KINDS[kind], parent, other.name)
                found.append((kind, parent, True, shown))
        return [r for *_, r in sorted(found, key=lambda f: f[:3])]

    async def add_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        """Reference ``child_id`` from ``parent_id``; False when either is not in the tenant.
        Adding a reference that exists changes nothing."""
        both = self._db.object_in(tenant_id, parent_id) and self._db.object_in(tenant_id, child_id)
        if parent_id == child_id or not both:
            return False  # the twin finds one row of the two it looks for
        check_reference(self._db.references, parent_id, kind, child_id)
        self._db.references.add((parent_id, kind, child_id))
        return True

    async def children(
        self, tenant_id: str, parent_id: int, kind: str, offset: int, limit: int
    ) -> list[ManagedObject]:
        return [o.shown() for o in page(self._children(tenant_id, parent_id, kind), offset, limit)]

    async def count_children(self, tenant_id: str, parent_id: int, kind: str) -> int:
        return len(self._children(tenant_id, parent_id, kind))

    async def child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> ManagedObject | None:
        if (parent_id, kind, child_id) not in self._db.references:
            return None
        found = self._db.object_in(tenant_id, child_id)
        return found.shown() if found else None

    def _children(self, tenant_id: str, parent_id: int, kind: str) -> list[ObjectRow]:
        ids = sorted(c for p, k, c in self._db.references if p == parent_id and k == kind)
        return [o for o in (self._db.object_in(tenant_id, c) for c in ids) if o is not None]

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
        """A new object referenced from ``parent_id`` (one transaction); None: no parent."""
        if self._db.object_in(tenant_id, parent_id) is None:
            return None
        with self._db.transaction():
            row = self._db.insert_object(
                tenant_id, name=name, type=type, owner=owner, fragments=without_nulls(fragments)
            )
            check_reference(self._db.references, parent_id, kind, row.id)
            self._db.references.add((parent_id, kind, row.id))
        return row.shown()

    async def remove_child(self, tenant_id: str, parent_id: int, kind: str, child_id: int) -> bool:
        if self._db.object_in(tenant_id, parent_id) is None:
            return False
        before = len(self._db.references)
        self._db.references.discard((parent_id, kind, child_id))
        return len(self._db.references) < before

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
        """Merge connection fragments into the device with external id ``device_id``; with
        ``only_if_connection``, nothing unless the device is still on that connection."""
        object_id = self._db.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))
        row = self._db.objects.get(object_id) if object_id is not None else None
        if row is None or (
            only_if_connection is not None and row.connection_id != only_if_connection
        ):
            return False
        row.fragments = self._db.connection_shown(row, fragments)
        row.connection_id = connection_id
        row.last_updated = at
        return True

    async def connected_devices(self) -> list[tuple[str, str]]:
        """(tenant, device id) of every device on a connection."""
        return sorted(
            (t, v)
            for (t, kind, v), o in self._db.external_ids.items()
            if kind == DEVICE_ID_TYPE and self._db.objects[o].connection_id is not None
        )


def check_reference(
    references: set[tuple[int, str, int]], parent_id: int, kind: str, child_id: int
) -> None:
    """The table's CHECKs (a known kind, no object its own child) and its unique index
    ``managed_object_one_gateway`` (a child device has one parent)."""
    if kind not in PARENT_KINDS or parent_id == child_id:
        raise ValueError(f"check constraint: reference {parent_id} -{kind}-> {child_id}")
    if kind == "childDevices" and any(
        k == kind and c == child_id and p != parent_id for p, k, c in references
    ):
        raise ValueError(f"unique violation: {child_id} has a gateway already")
