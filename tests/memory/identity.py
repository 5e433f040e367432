"""External ids (``db/identity.py``): a ``c8y_Serial`` is a device id, global."""

from __future__ import annotations

from fleetgate.domain.devices import DEVICE_ID_TYPE
from fleetgate.domain.errors import Conflict, NotFound
from fleetgate.domain.inventory import ExternalId

from memory.database import MemoryDatabase, queries


@queries
class MemoryIdentity:
    """An :class:`~fleetgate.services.ports.Identity` (``PgIdentity``): a ``c8y_Serial`` is
    a device id, global across tenants, and an object holds at most one."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def add(self, tenant_id: str, object_id: int, type: str, value: str) -> ExternalId:
        if type == DEVICE_ID_TYPE:
            self._db.claim_device_id(tenant_id, value)
        if self._db.object_in(tenant_id, object_id) is None:
            raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
        if type == DEVICE_ID_TYPE:
            held = self._db.serial_of(object_id)
            if held is not None and held != value:
                raise Conflict(
                    f"Managed object {object_id} has the device id {held} already; delete"
                    f" that {DEVICE_ID_TYPE} first",
                    code="identity/Duplicate",
                )
        key = (tenant_id, type, value)
        if key in self._db.external_ids:
            raise Conflict(f"External id {type}/{value} already exists", code="identity/Duplicate")
        self._db.external_ids[key] = object_id
        return ExternalId(tenant_id, type, value, object_id)

    async def get(self, tenant_id: str, type: str, value: str) -> ExternalId | None:
        object_id = self._db.external_ids.get((tenant_id, type, value))
        return ExternalId(tenant_id, type, value, object_id) if object_id is not None else None

    async def device(self, device_id: str) -> ExternalId | None:
        """The device that holds ``device_id``, in whatever tenant."""
        return next(
            (
                ExternalId(t, kind, v, o)
                for (t, kind, v), o in self._db.external_ids.items()
                if kind == DEVICE_ID_TYPE and v == device_id
            ),
            None,
        )

    async def of_object(self, tenant_id: str, object_id: int) -> list[ExternalId]:
        return [
            ExternalId(t, kind, v, o)
            for (t, kind, v), o in sorted(self._db.external_ids.items())
            if t == tenant_id and o == object_id
        ]

    async def delete(self, tenant_id: str, type: str, value: str) -> bool:
        return self._db.delete_external_id((tenant_id, type, value))
