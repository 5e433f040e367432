"""Device use cases: inventory, identity, device users; the broker's connect events are
:mod:`fleetgate.services.connections` (``Devices.connections``).

Every change that the broker must know (a device registered, enabled, disabled or
deleted) is pushed to the plugin right after it is committed, so it is live at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fleetgate.domain import broker_control as control
from fleetgate.domain.binaries import binary_id_of_url, check_binary_update, check_not_binary_fields
from fleetgate.domain.child_devices import check_gateway_settings
from fleetgate.domain.device_messages import Declaration
from fleetgate.domain.devices import (
    DEVICE_ID_TYPE,
    ManagedObject,
    check_device_id,
    device_id_of_user,
    device_username,
    split_managed_object_body,
)
from fleetgate.domain.errors import NotFound, ValidationFailed
from fleetgate.domain.inventory import ExternalId, ObjectFilter, Reference, deletion_reach
from fleetgate.domain.lifecycle import LifecycleStatus, devices_in
from fleetgate.domain.repositories import check_repository_object
from fleetgate.domain.users import Role, User
from fleetgate.services.broker import device_lines, removed_device_lines, removed_user_lines
from fleetgate.services.connections import Clock, Connections
from fleetgate.services.ports import (
    BrokerPush,
    ChildConnections,
    DeviceRegistry,
    DeviceUsers,
    Identity,
    Inventory,
    TransientCheck,
)
from fleetgate.services.profiles import check_profile_object

log = logging.getLogger(__name__)

#: Told the SHA-256 of binaries' files deleted with managed objects (the file store may
#: drop those no binary uses any more: ``Binaries.release``).
FilesReleased = Callable[[list[str]], Awaitable[None]]
#: The kind of child reference that repositories use (firmware → its versions).
CHILD_ADDITIONS = "childAdditions"
#: Released device ids whose broker sessions are discarded per round.
_DISCARD_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC)


def _object_not_found(object_id: int) -> NotFound:
    return NotFound(f"Managed object {object_id} not found", code="inventory/Not Found")


#: How a 404 names each kind of child reference.
_KIND_NAMES = {
    "childAdditions": "child addition",
    "childAssets": "child asset",
    "childDevices": "child device",
}


def _reference_not_found(parent_id: int, kind: str, child_id: int) -> NotFound:
    return NotFound(
        f"Managed object {child_id} is not a {_KIND_NAMES[kind]} of {parent_id}",
        code="inventory/Not Found",
    )


class Devices:
    def __init__(
        self,
        inventory: Inventory,
        identity: Identity,
        users: DeviceUsers,
        registrar: DeviceRegistry,
        broker: BrokerPush,
        clock: Clock = _now,
        *,
        is_transient: TransientCheck,
        files_released: FilesReleased | None = None,
        child_connections: ChildConnections | None = None,
    ) -> None:
        self._is_transient = is_transient
        self._inventory = inventory
        self._identity = identity
        self._users = users
        self._registrar = registrar
        self._broker = broker
        self._clock = clock
        self._files_released = files_released
        #: The broker's connect and disconnect events (registration, online status), and
        #: gateways' children's online status and logins.
        self.connections = Connections(
            inventory,
            registrar,
            broker,
            clock,
            is_transient=is_transient,
            child_connections=child_connections,
        )

    # -- inventory ---------------------------------------------------------------------

    async def create_object(self, tenant_id: str, body: dict[str, Any]) -> ManagedObject:
        plain, fragments = split_managed_object_body(body)
        check_gateway_settings(fragments)
        check_not_binary_fields(fragments)
        await self._check_repository(tenant_id, plain.get("name"), plain.get("type"), fragments)
        return await self._inventory.create(
            tenant_id,
            name=plain.get("name"),
            type=plain.get("type"),
            owner=plain.get("owner"),
            fragments=fragments,
        )

    async def get_object(self, tenant_id: str, object_id: int) -> ManagedObject:
        found = await self._inventory.get(tenant_id, object_id)
        if found is None:
            raise _object_not_found(object_id)
        return found

    async def find_objects(
        self, tenant_id: str, flt: ObjectFilter, offset: int, limit: int, *, count: bool
    ) -> tuple[list[ManagedObject], int | None]:
        objects = await self._inventory.find(tenant_id, flt, offset, limit)
        total = await self._inventory.count(tenant_id, flt) if count else None
        return objects, total

    async def count_objects(self, tenant_id: str, flt: ObjectFilter) -> int:
        return await self._inventory.count(tenant_id, flt)

    async def lifecycle_counts(self, tenant_id: str) -> dict[LifecycleStatus, int]:
        """How many of the tenant's devices are in each lifecycle status (every status
        named, 0 included)."""
        return {
            status: await self._inventory.count(tenant_id, ObjectFilter(query=devices_in(status)))
            for status in LifecycleStatus
        }

    async def update_object(
        self, tenant_id: str, object_id: int, body: dict[str, Any]
    ) -> ManagedObject:
        plain, fragments = split_managed_object_body(body, object_id)
        check_gateway_settings(fragments)
        current = await self.get_object(tenant_id, object_id)
        check_binary_update(current.fragments, fragments)
        merged = {k: v for k, v in {**current.fragments, **fragments}.items() if v is not None}
        await self._check_repository(
            tenant_id,
            plain.get("name", current.name),
            plain.get("type", current.type),
            merged,
        )
        updated = await self._inventory.update(tenant_id, object_id, plain, fragments)
        if updated is None:
            raise _object_not_found(object_id)
        if updated.is_device and not current.is_device:
            # Made a device after it got its c8y_Serial: pre-registered now, as when the
            # c8y_Serial comes second.
            for ext in await self._identity.of_object(tenant_id, object_id):
                if ext.type == DEVICE_ID_TYPE:
                    await self._pre_register(tenant_id, object_id, ext.value)
        return updated

    async def _check_repository(
        self, tenant_id: str, name: str | None, type: str | None, fragments: dict[str, Any]
    ) -> None:
        """Firmware, software and configuration entries must be usable by devices; a URL
        that names one of our binaries must name one that exists in the tenant; device
        profiles keep the seed's rules (services/profiles)."""
        await check_profile_object(self._inventory, tenant_id, name, type, fragments)
        url = check_repository_object(type, name, fragments)
        binary_id = binary_id_of_url(url) if url is not None else None
        if binary_id is not None and not await self._inventory.is_binary(tenant_id, binary_id):
            raise ValidationFailed(f"the url names binary {binary_id}, which does not exist")

    async def delete_object(
        self,
        tenant_id: str,
        object_id: int,
        *,
        cascade: bool = False,
        force_cascade: bool = False,
        by: str | None = None,
    ) -> None:
        """Delete the object and what Cumulocity's ``cascade`` and ``forceCascade`` say goes
        with it (:func:`~fleetgate.domain.inventory.deletion_reach`); children that stay
        lose this parent (a deleted gateway's children are detached: the broker and their
        connection state are told). Deleted devices' users go too and the broker is told; a
        deleted child device is remembered as removed from its gateway (by the user ``by``)."""
        found = await self.get_object(tenant_id, object_id)
        through = deletion_reach(found.fragments, cascade=cascade, force_cascade=force_cascade)
        deleted = await self._inventory.delete(tenant_id, object_id, through=through, removed_by=by)
        if deleted is None:
            raise _object_not_found(object_id)
        device_ids = deleted.device_ids
        for device_id in device_ids:
            await self._users.delete_user(tenant_id, device_username(device_id))
        if device_ids:
            await self._broker.push(
                [line for d in device_ids for line in removed_device_lines(tenant_id, d)]
            )
            await self.discard_released_sessions()
        if deleted.detached_children:
            await self.connections.children_changed(
                tenant_id, [(child, None) for child in deleted.detached_children]
            )
        if deleted.file_sha256s and self._files_released is not None:
            await self._files_released(deleted.file_sha256s)

    async def references_of(self, tenant_id: str, object_id: int) -> list[Reference]:
        return (await self._inventory.references(tenant_id, [object_id]))[object_id]

    async def references_of_page(
        self, tenant_id: str, object_ids: list[int], *, children: bool
    ) -> dict[int, list[Reference]]:
        """The references of a page of objects, in one query (never one per object)."""
        return await self._inventory.references(tenant_id, object_ids, children=children)

    # -- child references -----------------------------------------------------------------

    async def children(
        self,
        tenant_id: str,
        parent_id: int,
        kind: str,
        offset: int,
        limit: int,
        *,
        count: bool,
    ) -> tuple[list[ManagedObject], int | None]:
        """One page of the object's children through ``kind`` (``childAdditions``,
        ``childDevices``…), by id."""
        await self.get_object(tenant_id, parent_id)
        children = await self._inventory.children(tenant_id, parent_id, kind, offset, limit)
        total = await self._inventory.count_children(tenant_id, parent_id, kind) if count else None
        return children, total

    async def child(
        self, tenant_id: str, parent_id: int, kind: str, child_id: int
    ) -> ManagedObject:
        found = await self._inventory.child(tenant_id, parent_id, kind, child_id)
        if found is None:
            raise _reference_not_found(parent_id, kind, child_id)
        return found

    async def add_child_addition(
        self, tenant_id: str, parent_id: int, child_id: int
    ) -> ManagedObject:
        """Reference an existing object as a child addition; the child."""
        if parent_id == child_id:
            raise ValidationFailed("a managed object cannot be its own child addition")
        if not await self._inventory.add_child(tenant_id, parent_id, CHILD_ADDITIONS, child_id):
            await self.get_object(tenant_id, parent_id)
            raise _object_not_found(child_id)
        return await self.get_object(tenant_id, child_id)

    async def create_child_addition(
        self, tenant_id: str, parent_id: int, body: dict[str, Any]
    ) -> ManagedObject:
        """A new managed object, made a child addition of ``parent_id`` in one transaction."""
        plain, fragments = split_managed_object_body(body)
        check_gateway_settings(fragments)
        check_not_binary_fields(fragments)
        await self._check_repository(tenant_id, plain.get("name"), plain.get("type"), fragments)
        created = await self._inventory.create_child(
            tenant_id,
            parent_id,
            CHILD_ADDITIONS,
            name=plain.get("name"),
            type=plain.get("type"),
            owner=plain.get("owner"),
            fragments=fragments,
        )
        if created is None:
            raise _object_not_found(parent_id)
        return created

    async def remove_child_addition(self, tenant_id: str, parent_id: int, child_id: int) -> None:
        """Drop the reference (the child object stays)."""
        if not await self._inventory.remove_child(tenant_id, parent_id, CHILD_ADDITIONS, child_id):
            raise _reference_not_found(parent_id, CHILD_ADDITIONS, child_id)

    async def declare(self, declaration: Declaration, last_try: bool) -> bool:
        """Merge what a device declared about itself (``fg/d/<id>/inventory``, read and
        checked at the edge) into its managed object. False when the device is not
        registered yet (its registration, on its connect event, may not be committed);
        ValidationFailed when it still is not on the ``last_try``."""
        if await self._inventory.update_device(
            declaration.device_id, declaration.plain, declaration.fragments
        ):
            return True
        if not last_try:
            return False
        raise ValidationFailed(f"Device {declaration.device_id} is not registered")

    # -- identity ----------------------------------------------------------------------

    async def add_external_id(
        self, tenant_id: str, object_id: int, type: str, value: str
    ) -> ExternalId:
        if not type or not value:
            raise ValidationFailed("type and externalId are required")
        if type == DEVICE_ID_TYPE:
            check_device_id(value)
        added = await self._identity.add(tenant_id, object_id, type, value)
        if type == DEVICE_ID_TYPE:
            await self._pre_register(tenant_id, object_id, value)
        return added

    async def _pre_register(self, tenant_id: str, object_id: int, device_id: str) -> None:
        """A device with a c8y_Serial (given in whichever order): it may now connect with
        its certificate from any enabled CA of the tenant, even one without
        auto-registration."""
        found = await self._inventory.get(tenant_id, object_id)
        if found is None or not found.is_device:
            return
        _, enabled = await self._registrar.ensure_user(tenant_id, device_id)
        await self._broker.push([control.device(device_id, tenant_id, enabled)])

    async def get_external_id(self, tenant_id: str, type: str, value: str) -> ExternalId:
        found = await self._identity.get(tenant_id, type, value)
        if found is None:
            raise NotFound(f"External id {type}/{value} not found", code="identity/Not Found")
        return found

    async def external_ids_of(self, tenant_id: str, object_id: int) -> list[ExternalId]:
        await self.get_object(tenant_id, object_id)
        return await self._identity.of_object(tenant_id, object_id)

    async def delete_external_id(self, tenant_id: str, type: str, value: str) -> None:
        if not await self._identity.delete(tenant_id, type, value):
            raise NotFound(f"External id {type}/{value} not found", code="identity/Not Found")
        if type == DEVICE_ID_TYPE:
            await self._users.delete_user(tenant_id, device_username(value))
            await self._broker.push(removed_device_lines(tenant_id, value))
            await self.discard_released_sessions()

    # -- device users ("device credentials") ---------------------------------------------

    async def list_users(
        self, tenant_id: str, *, only_devices: bool, offset: int, limit: int, count: bool
    ) -> tuple[list[User], int | None]:
        users = await self._users.list_users(
            tenant_id, only_devices=only_devices, offset=offset, limit=limit
        )
        total = (
            await self._users.count_users(tenant_id, only_devices=only_devices) if count else None
        )
        return users, total

    async def get_user(self, tenant_id: str, username: str) -> User:
        found = await self._users.find_user(tenant_id, username)
        if found is None:
            raise NotFound(f"User {username} not found", code="user/Not Found")
        return found[1]

    async def set_user_enabled(self, tenant_id: str, username: str, enabled: bool) -> User:
        user = await self._users.set_enabled(tenant_id, username, enabled)
        if user is None:
            raise NotFound(f"User {username} not found", code="user/Not Found")
        lines = device_lines(user)
        if lines:
            await self._broker.push(lines)
        return user

    async def delete_user(self, tenant_id: str, username: str) -> None:
        found = await self._users.find_user(tenant_id, username)
        if found is None or not await self._users.delete_user(tenant_id, username):
            raise NotFound(f"User {username} not found", code="user/Not Found")
        device_id = device_id_of_user(username)
        if device_id is not None and Role.DEVICE in found[1].roles:
            await self._broker.push(removed_user_lines(tenant_id, device_id))

    async def discard_released_sessions(self) -> None:
        """Have the broker discard the sessions kept under device ids that lost their
        device (deleted, or their ``c8y_Serial`` removed): queued commands and signed file
        URLs must never reach the id's next holder, maybe in another tenant (decision
        0006). The database remembers what is left to do, so what the broker could not
        take now is done before its state is pushed at the next connect."""
        while ids := await self._registrar.released(_DISCARD_BATCH):
            done = await self._broker.discard_sessions(ids)
            if done:
                await self._registrar.discarded(done)
            if len(done) < len(ids):
                return
