"""Registering devices and their users (``db/devices.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fleetgate.domain.devices import Registration

from memory.database import MemoryDatabase, queries


@queries
class MemoryDeviceRegistry:
    """A :class:`~fleetgate.services.ports.DeviceRegistry` (``PgDevices``).

    ``failures`` (device id → error) makes registering that device fail as a database
    that cannot take it would; ``unavailable`` makes every registration fail as an absent
    database does (``fakes.unavailable`` tells it transient).
    """

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self.failures: dict[str, Exception] = {}
        self.unavailable = False

    async def register(
        self,
        tenant_id: str,
        device_id: str,
        *,
        fragments: dict[str, Any],
        connection: dict[str, Any],
        connection_id: str | None,
        at: datetime,
    ) -> Registration:
        """Find or make the device ``device_id`` and its user; mark it on ``connection_id``."""
        if self.unavailable:
            raise ConnectionRefusedError("the database is away")
        if device_id in self.failures:
            raise self.failures[device_id]
        with self._db.transaction():
            object_id, created = self._db.ensure_device(
                tenant_id, device_id, at, fragments=fragments
            )
            row = self._db.objects[object_id]
            row.fragments = self._db.connection_shown(row, connection)
            row.connection_id = connection_id
            row.last_updated = at
            user_created, user_enabled = self._db.ensure_device_user(tenant_id, device_id)
        return Registration(object_id, created, user_created, user_enabled)

    async def ensure_user(self, tenant_id: str, device_id: str) -> tuple[bool, bool]:
        return self._db.ensure_device_user(tenant_id, device_id)

    async def released(self, limit: int) -> list[str]:
        """Released device ids whose broker sessions are still to discard, oldest first."""
        by_time = sorted(self._db.released.items(), key=lambda item: item[1])
        return [device_id for device_id, _ in by_time[:limit]]

    async def discarded(self, device_ids: list[str]) -> None:
        for device_id in device_ids:
            self._db.released.pop(device_id, None)
