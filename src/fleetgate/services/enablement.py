"""Disabling and enabling a device (decision 0012, docs/api.md "Enabling and disabling a
device").

Disabling commits the device's flag, its user's ``enabled`` and the lifecycle shown (the
device DISABLED, a gateway's children DISABLED by their parent), then pushes the broker
``device <id> <tenant> 0`` (and removes a password device's account): the plugin kicks a
live session at once and refuses the next CONNECT, "device is disabled" in its log. Its
open operations stay PENDING: they are not dispatched (:class:`Operations` holds them
back) until it is enabled. Enabling undoes all of it and dispatches them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from fleetgate.domain import broker_control as control
from fleetgate.domain.devices import ManagedObject, device_id_of_user
from fleetgate.domain.enablement import Switched
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.users import User
from fleetgate.services.broker import device_lines
from fleetgate.services.ports import BrokerPush, Inventory

log = logging.getLogger(__name__)


class EnablementStore(Protocol):
    """Devices' disabled flag (``fleetgate.db.enablement``)."""

    async def set_disabled(
        self, tenant_id: str, object_id: int, disabled: bool, at: datetime
    ) -> Switched | None:
        """Set the flag, the device user's ``enabled`` and the lifecycle shown (the
        device's and its children's) in one transaction; None: no such object."""

    async def object_of(self, tenant_id: str, device_id: str) -> int | None:
        """The managed object that holds ``device_id`` in ``tenant_id``."""


class OpenOperations(Protocol):
    """Dispatching what a device enabled again has waiting (``services.operations``)."""

    async def dispatch_open(
        self, devices: Sequence[str], children: Sequence[tuple[str, str]] = ()
    ) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class DeviceEnablement:
    def __init__(
        self,
        store: EnablementStore,
        inventory: Inventory,
        broker: BrokerPush,
        operations: OpenOperations,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._broker = broker
        self._operations = operations
        self._clock = clock

    async def disable(self, tenant_id: str, object_id: int) -> ManagedObject:
        """Disable the device ``object_id`` (idempotent); the managed object as it is now.
        NotFound for no such object, ValidationFailed (422) for one that is no device."""
        await self._switch(tenant_id, object_id, disabled=True)
        return await self._object(tenant_id, object_id)

    async def enable(self, tenant_id: str, object_id: int) -> ManagedObject:
        """Enable the device ``object_id`` again (idempotent) and dispatch its open
        operations (a gateway's: its children's too)."""
        await self._switch(tenant_id, object_id, disabled=False)
        return await self._object(tenant_id, object_id)

    async def set_device_user_enabled(
        self, tenant_id: str, username: str, enabled: bool
    ) -> User | None:
        """An operator changed ``enabled`` of the user ``username``: when it is a device's
        user (``device_<id>`` of a device of the tenant), the device follows — the same
        as :meth:`enable` / :meth:`disable` — and the user as it is now is returned.
        None when it is no device's user (the caller changes the user alone)."""
        device_id = device_id_of_user(username)
        if device_id is None:
            return None
        object_id = await self._store.object_of(tenant_id, device_id)
        if object_id is None:
            return None
        switched = await self._switch(tenant_id, object_id, disabled=not enabled)
        return switched.user

    async def _switch(self, tenant_id: str, object_id: int, *, disabled: bool) -> Switched:
        switched = await self._store.set_disabled(tenant_id, object_id, disabled, self._clock())
        if switched is None:
            raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
        if not switched.is_device:
            raise ValidationFailed(
                f"Managed object {object_id} is not a device (c8y_IsDevice): only devices"
                " are enabled and disabled",
                code="inventory/Invalid Data",
            )
        if switched.changed:
            log.info(
                "device %s (managed object %s) of tenant %s %s",
                switched.device_id,
                object_id,
                tenant_id,
                "disabled" if disabled else "enabled",
            )
        await self._broker.push(_broker_lines(tenant_id, switched, disabled))
        if not disabled and switched.device_id is not None:
            if switched.gateway is None:
                await self._operations.dispatch_open([switched.device_id])
            else:
                await self._operations.dispatch_open([], [(switched.device_id, switched.gateway)])
        return switched

    async def _object(self, tenant_id: str, object_id: int) -> ManagedObject:
        found = await self._inventory.get(tenant_id, object_id)
        if found is None:  # deleted meanwhile
            raise NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")
        return found


def _broker_lines(tenant_id: str, switched: Switched, disabled: bool) -> list[str]:
    """What the broker must know now. A device with a user: as every device user
    (:func:`device_lines`). One without (never logged in, or a child): ``device <id>
    <tenant> 0`` while disabled — its first certificate login is refused too — and
    forgotten again when enabled (it is as unknown as before)."""
    if switched.device_id is None:
        return []
    if switched.user is not None:
        return device_lines(switched.user, disabled)
    if disabled:
        return [control.device(switched.device_id, tenant_id, False)]
    return [control.device_remove(switched.device_id)]
