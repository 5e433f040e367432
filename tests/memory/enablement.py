"""Devices' disabled flag (``db/enablement.py``): the flag, the device user and the
lifecycle shown — the device's and its children's — changed together."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from fleetgate.domain.connections import shown_lifecycle
from fleetgate.domain.devices import DEVICE_ID_TYPE, device_username
from fleetgate.domain.enablement import Switched
from fleetgate.domain.gateways import CHILD_DEVICES
from fleetgate.domain.lifecycle import DEVICE_FRAGMENT
from fleetgate.domain.lifecycle import FRAGMENT as LIFECYCLE
from fleetgate.domain.users import Role

from memory.database import MemoryDatabase, queries


@queries
class MemoryEnablement:
    """A :class:`~fleetgate.services.enablement.EnablementStore` (``PgEnablement``)."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    async def set_disabled(
        self, tenant_id: str, object_id: int, disabled: bool, at: datetime
    ) -> Switched | None:
        row = self._db.objects.get(object_id)
        if row is None or row.tenant_id != tenant_id:
            return None
        if DEVICE_FRAGMENT not in row.fragments:
            return Switched(object_id, None, None, False, False, None)
        changed = row.disabled != disabled
        row.disabled = disabled
        row.last_updated = at
        serial = self._db.serial_of(object_id)
        user = None
        if serial is not None:
            key = (tenant_id, device_username(serial))
            found = self._db.users.users.get(key)
            if found is not None and Role.DEVICE in found.roles:
                user = replace(found, enabled=not disabled)
                self._db.users.users[key] = user
        children = [
            child
            for parent, kind, child in self._db.references
            if parent == object_id and kind == CHILD_DEVICES
        ]
        for shown_id in (object_id, *children):
            self._show_lifecycle(shown_id, at)
        return Switched(object_id, serial, self._db.gateway_of(object_id), True, changed, user)

    def _show_lifecycle(self, object_id: int, at: datetime) -> None:
        row = self._db.objects[object_id]
        if DEVICE_FRAGMENT not in row.fragments:
            return
        gateway = next(
            (
                parent
                for parent, kind, child in self._db.references
                if child == object_id and kind == CHILD_DEVICES
            ),
            None,
        )
        disabled_gateway = (
            self._db.serial_of(gateway)
            if gateway is not None and self._db.objects[gateway].disabled
            else None
        )
        wanted = shown_lifecycle(
            row.fragments, disabled=row.disabled, disabled_gateway=disabled_gateway
        )
        if row.fragments.get(LIFECYCLE) != wanted:
            row.fragments = {**row.fragments, LIFECYCLE: wanted}
            row.last_updated = at

    async def object_of(self, tenant_id: str, device_id: str) -> int | None:
        return self._db.external_ids.get((tenant_id, DEVICE_ID_TYPE, device_id))

    async def disabled_devices(self) -> dict[str, str]:
        return {
            value: tenant
            for (tenant, kind, value), object_id in self._db.external_ids.items()
            if kind == DEVICE_ID_TYPE and self._db.objects[object_id].disabled
        }
